"""A program that talks: per epoch one ``wandb.log``, a stdout line and a stderr line.

Its loss is ``1 / (1 + lr * epoch)``, so a larger ``--lr`` is the better run;
each line names the epoch and the stream, so a test of ``--verbose`` can find
every line on the driver's terminal under the run's name.
"""

from __future__ import annotations

import argparse
import sys
import time

import wandb


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--sleep", type=float, default=0.0)
    args = parser.parse_args()
    with wandb.init(config=vars(args)):
        for epoch in range(1, args.epochs + 1):
            wandb.log({"loss": 1.0 / (1.0 + args.lr * epoch)})
            print(f"stdout line {epoch} of lr {args.lr}", flush=True)
            print(f"stderr line {epoch} of lr {args.lr}", file=sys.stderr, flush=True)
            time.sleep(args.sleep)


if __name__ == "__main__":
    main()
