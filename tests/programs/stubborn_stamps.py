"""A program that ignores SIGTERM and stamps the time, for the --run-timeout/--kill-grace test.

It prints a line with each of wandb's termlog, termwarn and termerror and logs one
row, then appends ``alive <time>`` to the file ``--stamps`` every
0.05 s; on SIGTERM it appends ``term <time>`` and carries on, so only the
SIGKILL that follows the grace period ends it.
"""

from __future__ import annotations

import argparse
import os
import signal
import time

import wandb


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stamps", required=True)
    args = parser.parse_args()

    def stamp(word: str) -> None:
        with open(args.stamps, "a") as stamps:
            stamps.write(f"{word} {time.time()} {os.getpid()}\n")

    signal.signal(signal.SIGTERM, lambda *_: stamp("term"))
    wandb.init()
    wandb.termlog("a log line")
    wandb.termwarn("a warning")
    wandb.termerror("an error")
    wandb.log({"loss": 1.0})
    while True:
        stamp("alive")
        time.sleep(0.05)


if __name__ == "__main__":
    main()
