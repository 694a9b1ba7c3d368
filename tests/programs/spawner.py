"""A training program with helper processes, for the no-orphan tests.

It starts two ``multiprocessing`` children, like a data loader's workers: one
stays in the program's process group, the other leaves it (``os.setsid``), as
a daemonised helper would.  Every pid (its own and the helpers') goes to
``--pidfile``; then it logs ``loss`` for ``--steps`` steps, ``--sleep`` apart.
With ``--linger S`` it takes S seconds to stop after a SIGTERM (saving, say).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import time

import wandb


def helper(pidfile: str, leave_group: bool) -> None:
    if leave_group:
        os.setsid()
    with open(pidfile, "a") as pids:
        pids.write(f"{os.getpid()}\n")
    while True:
        time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--x", type=float, default=0.0)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--sleep", type=float, default=0.2)
    parser.add_argument("--pidfile", required=True)
    parser.add_argument("--linger", type=float, default=0.0)
    args = parser.parse_args()
    if args.linger:
        signal.signal(signal.SIGTERM, lambda *_: (time.sleep(args.linger), os._exit(143)))
    with open(args.pidfile, "a") as pids:
        pids.write(f"{os.getpid()}\n")
    helpers = [multiprocessing.Process(target=helper, args=(args.pidfile, leave), daemon=leave)
               for leave in (False, True)]
    for process in helpers:
        process.start()
    wandb.init()
    for step in range(args.steps):
        wandb.log({"loss": (args.x - 0.5) ** 2 + 1.0 / (step + 1)})
        time.sleep(args.sleep)
    os._exit(0)  # leave the helpers running: ending them is raysweep's job


if __name__ == "__main__":
    main()
