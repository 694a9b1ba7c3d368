"""Train a one-hidden-layer MLP on scikit-learn's digits, written the way W&B's tutorials write scripts.

argparse gives the defaults, ``wandb.init(config=...)`` records them (a sweep
overrides them), the loop reads ``wandb.config``, logs once per epoch and
puts the best validation accuracy in ``wandb.summary``.  It runs unchanged
under ``wandb agent`` and under ``raysweep run configs/program_digits.yaml``.
The data ships with scikit-learn (no download) and the model is plain numpy,
so a run of 27 epochs takes about a second.
"""

from __future__ import annotations

import argparse

import numpy as np
import wandb
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--learning_rate", type=float, default=0.1)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--weight_decay", type=float, default=1e-4)
    parser.add_argument("--epochs", type=int, default=27)
    parser.add_argument("--val_fraction", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def load_data(val_fraction: float, seed: int) -> tuple[np.ndarray, ...]:
    digits = load_digits()
    x = digits.data / 16.0
    return tuple(train_test_split(x, digits.target, test_size=val_fraction, random_state=seed,
                                  stratify=digits.target))


def init_params(hidden: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {"w1": rng.normal(0, np.sqrt(2 / 64), (64, hidden)), "b1": np.zeros(hidden),
            "w2": rng.normal(0, np.sqrt(1 / hidden), (hidden, 10)), "b2": np.zeros(10)}


def forward(params: dict[str, np.ndarray], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    hidden = np.maximum(x @ params["w1"] + params["b1"], 0.0)
    logits = hidden @ params["w2"] + params["b2"]
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    return hidden, probs / probs.sum(axis=1, keepdims=True)


def loss_and_accuracy(params: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    _, probs = forward(params, x)
    loss = -np.log(probs[np.arange(len(y)), y] + 1e-12).mean()
    return float(loss), float((probs.argmax(axis=1) == y).mean())


def train_epoch(params: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray, config: wandb.Config,
                rng: np.random.Generator) -> None:
    order = rng.permutation(len(y))
    for start in range(0, len(y), config.batch_size):
        batch = order[start:start + config.batch_size]
        hidden, probs = forward(params, x[batch])
        grad_logits = probs
        grad_logits[np.arange(len(batch)), y[batch]] -= 1.0
        grad_logits /= len(batch)
        grad_hidden = (grad_logits @ params["w2"].T) * (hidden > 0)
        grads = {"w2": hidden.T @ grad_logits, "b2": grad_logits.sum(axis=0),
                 "w1": x[batch].T @ grad_hidden, "b1": grad_hidden.sum(axis=0)}
        for name, grad in grads.items():
            decay = config.weight_decay * params[name] if name.startswith("w") else 0.0
            params[name] -= config.learning_rate * (grad + decay)


def main() -> None:
    args = parse_args()
    with wandb.init(project="raysweep-digits", config=vars(args)) as run:
        config = wandb.config
        rng = np.random.default_rng(config.seed)
        x_train, x_val, y_train, y_val = load_data(config.val_fraction, config.seed)
        params = init_params(config.hidden, rng)
        best_acc = 0.0
        for epoch in range(config.epochs):
            train_epoch(params, x_train, y_train, config, rng)
            train_loss, _ = loss_and_accuracy(params, x_train, y_train)
            val_loss, val_acc = loss_and_accuracy(params, x_val, y_val)
            best_acc = max(best_acc, val_acc)
            run.log({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "val_acc": val_acc})
            print(f"epoch {epoch:2d}  train_loss {train_loss:.4f}  val_loss {val_loss:.4f}  val_acc {val_acc:.3f}")
        wandb.summary["best_val_acc"] = best_acc


if __name__ == "__main__":
    main()
