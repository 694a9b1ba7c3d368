"""A well-behaved training program that takes its time, for the driver-fault tests.

It logs ``loss`` once per step for ``--steps`` steps, ``--sleep`` seconds
apart, and appends its pid to ``--pidfile`` so a test can check that nothing
is left running after the driver was interrupted or killed.  Its first line of
output says an attempt starts, so a test can tell whose output.log it landed in.

With ``--fill_disk_under OUT``, the first run with ``--x`` equal to
``--fill_disk_at`` makes its own history file in the run log under ``OUT`` a
link to ``/dev/full`` before it logs, so the driver's next write there fails
as on a full disk (once: a marker file in ``OUT`` remembers it was done).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import wandb


def fill_disk(out: Path) -> None:
    """Make this run's history file unwritable (ENOSPC), once per `out`."""
    marker = out / "disk-filled"
    if marker.exists():
        return
    marker.touch()
    run_id = os.environ["WANDB_RUN_ID"]
    deadline = time.time() + 30
    while not list(out.glob(f"*/runs/{run_id}/wandb-metadata.json")):  # the driver records the start
        assert time.time() < deadline, "the run's directory never appeared"
        time.sleep(0.05)
    run_dir = next(out.glob(f"*/runs/{run_id}"))
    (run_dir / "wandb-history.jsonl").symlink_to("/dev/full")


def main() -> None:
    print(f"attempt starts (pid {os.getpid()})", flush=True)  # an attempt's first line of output.log
    parser = argparse.ArgumentParser()
    parser.add_argument("--x", type=float, default=0.0)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--sleep", type=float, default=0.2)
    parser.add_argument("--pidfile")
    parser.add_argument("--fill_disk_under", type=Path)
    parser.add_argument("--fill_disk_at", type=float)
    args = parser.parse_args()
    if args.pidfile:
        with open(args.pidfile, "a") as pids:
            pids.write(f"{os.getpid()}\n")
    wandb.init()
    if args.fill_disk_under and args.x == args.fill_disk_at:
        fill_disk(args.fill_disk_under)
    for step in range(args.steps):
        wandb.log({"loss": (args.x - 0.5) ** 2 + 1.0 / (step + 1)})
        time.sleep(args.sleep)


if __name__ == "__main__":
    main()
