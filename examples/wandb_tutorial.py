"""W&B's PyTorch sweep tutorial, run by raysweep: the notebook flow.

`train` and its helpers (`build_dataset`, `build_network`, `build_optimizer`,
`train_epoch`) are written the way W&B's tutorial ("Tune Hyperparameters with
Sweeps", PyTorch) writes them; ``sweep_config`` is the tutorial's, with
Hyperband early stopping and a few epochs.  Two differences: the data is
scikit-learn's digits (1,797 8x8 images, shipped with the package) instead of
an MNIST download, so the network takes 64 inputs, not 784; and where the
real ``wandb`` package is not installed, raysweep's stand-in is imported under
its name, as the README says.  A notebook switches from W&B by changing two
calls; run this file to see it::

    python examples/wandb_tutorial.py     # was: wandb.sweep(...) + wandb.agent(...)
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 - the tutorial's name
from sklearn.datasets import load_digits
from torch import nn, optim
from torch.utils.data import DataLoader, Subset, TensorDataset

try:
    import wandb
except ImportError:  # no W&B here: raysweep's stand-in has the calls train() makes
    from raysweep.trial import capture as wandb

import raysweep

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

sweep_config: dict[str, Any] = {
    "method": "random",
    "metric": {"name": "loss", "goal": "minimize"},
    "early_terminate": {"type": "hyperband", "min_iter": 1},  # eta 3, W&B's default
    "parameters": {
        "optimizer": {"values": ["adam", "sgd"]},
        "fc_layer_size": {"values": [128, 256, 512]},
        "dropout": {"values": [0.3, 0.4, 0.5]},
        "epochs": {"value": 4},
        "learning_rate": {"distribution": "uniform", "min": 0, "max": 0.1},
        "batch_size": {"distribution": "q_log_uniform_values", "q": 8, "min": 32, "max": 256},
    },
}


def train(config: dict[str, Any] | None = None) -> None:
    # Initialize a new wandb run
    with wandb.init(config=config):
        # If called by wandb.agent, as below,
        # this config will be set by Sweep Controller
        config = wandb.config

        loader = build_dataset(config.batch_size)
        network = build_network(config.fc_layer_size, config.dropout)
        optimizer = build_optimizer(network, config.optimizer, config.learning_rate)

        for epoch in range(config.epochs):
            avg_loss = train_epoch(network, loader, optimizer)
            wandb.log({"loss": avg_loss, "epoch": epoch})


def build_dataset(batch_size: int) -> DataLoader:
    # digits ship with scikit-learn: no download (the tutorial downloads MNIST)
    digits = load_digits()
    data = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    normalized = (data - data.mean()) / data.std()  # the tutorial's transforms.Normalize
    dataset = TensorDataset(normalized, torch.tensor(digits.target))
    sub_dataset = Subset(dataset, indices=range(0, len(dataset), 5))
    loader = DataLoader(sub_dataset, batch_size=batch_size)
    return loader


def build_network(fc_layer_size: int, dropout: float) -> nn.Module:
    network = nn.Sequential(  # fully connected, single hidden layer
        nn.Flatten(),
        nn.Linear(64, fc_layer_size), nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(fc_layer_size, 10),
        nn.LogSoftmax(dim=1))
    return network.to(device)


def build_optimizer(network: nn.Module, optimizer: str, learning_rate: float) -> optim.Optimizer:
    if optimizer == "sgd":
        optimizer = optim.SGD(network.parameters(),
                              lr=learning_rate, momentum=0.9)
    elif optimizer == "adam":
        optimizer = optim.Adam(network.parameters(),
                               lr=learning_rate)
    return optimizer


def train_epoch(network: nn.Module, loader: DataLoader, optimizer: optim.Optimizer) -> float:
    cumu_loss = 0
    for _, (data, target) in enumerate(loader):
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()

        # ➡ Forward pass
        loss = F.nll_loss(network(data), target)
        cumu_loss += loss.item()

        # ⬅ Backward pass + weight update
        loss.backward()
        optimizer.step()

        wandb.log({"batch loss": loss.item()})

    return cumu_loss / len(loader)


if __name__ == "__main__":
    sweep_id = raysweep.sweep(sweep_config)             # was: wandb.sweep(sweep_config, project=...)
    raysweep.agent(sweep_id, function=train, count=8)  # was: wandb.agent(sweep_id, train, count=5)
