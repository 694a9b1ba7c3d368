"""A training script written the way W&B's tutorials write them: argparse defaults, wandb.init, log per epoch."""

from __future__ import annotations

import argparse
import math
import os
import time

import wandb


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--sleep", type=float, default=0.0)
    args = parser.parse_args()
    if "RAYSWEEP_TEST_PIDFILE" in os.environ:
        with open(os.environ["RAYSWEEP_TEST_PIDFILE"], "a") as pids:
            pids.write(f"{os.getpid()}\n")
    with wandb.init(project="tutorial", config=vars(args)) as run:
        config = wandb.config
        best = math.inf
        for epoch in range(config.epochs):
            loss = 1.0 / (1.0 + config.lr * (epoch + 1))
            best = min(best, loss)
            run.log({"loss": loss, "epoch": epoch})
            print(f"epoch {epoch} loss {loss:.4f}", flush=True)
            time.sleep(config.sleep)
        wandb.summary["best_loss"] = best


if __name__ == "__main__":
    main()
