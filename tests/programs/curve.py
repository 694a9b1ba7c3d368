"""A W&B-tutorial-style script (argparse defaults, ``wandb.init``, one ``wandb.log`` per epoch).

Its loss falls as ``1 / (1 + lr * epochs_done)``, so a larger ``--lr`` is a
better run at every epoch and Hyperband's cuts are predictable.  With
``--pid_dir`` it writes ``<pid_dir>/<run id>.json`` (its pid, interpreter and
which ``wandb`` it got), so a test can check that a stopped run's process is gone.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import wandb


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--pid_dir", default=None)
    args = parser.parse_args()
    with wandb.init(project="curve", config=vars(args)) as run:
        config = wandb.config
        if config.pid_dir:
            seen = {"pid": os.getpid(), "python": sys.executable, "wandb": wandb.__name__}
            Path(config.pid_dir, f"{run.id}.json").write_text(json.dumps(seen))
        for epoch in range(config.epochs):
            loss = 1.0 / (1.0 + config.lr * (epoch + 1))
            wandb.log({"loss": loss, "epoch": epoch})
            print(f"epoch {epoch} loss {loss:.4f}", flush=True)
            time.sleep(config.sleep)
        wandb.summary["final_loss"] = loss
        print("done", flush=True)


if __name__ == "__main__":
    main()
