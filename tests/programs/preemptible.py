"""A preemptible sweep script written as W&B's docs advise, for the preemption tests.

On SIGTERM it saves nothing more (each epoch is checkpointed to ``wandb.run.dir``
as it ends), calls ``wandb.run.mark_preempting()`` if ``--mark`` is true, and
exits ``128 + signum``.  On start it loads the checkpoint when ``wandb.run.resumed``,
so a requeued run goes on with the next epoch.  Each row logs the epoch, whether
the run is resumed and W&B's ``WANDB_RESUME``; the first attempt appends its pid
to ``--pidfile`` once it has logged ``--ready`` epochs, for the test to send SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

import wandb


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mark", type=lambda text: text == "True", default=True)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--sleep", type=float, default=0.3)
    parser.add_argument("--ready", type=int, default=3)
    parser.add_argument("--pidfile", required=True)
    args = parser.parse_args()
    run = wandb.init()
    checkpoint = Path(run.dir) / "checkpoint.json"

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if args.mark:
            run.mark_preempting()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    start = json.loads(checkpoint.read_text())["epoch"] + 1 if run.resumed and checkpoint.exists() else 0
    for epoch in range(start, args.epochs):
        time.sleep(args.sleep)
        wandb.log({"loss": 1.0 / (epoch + 1), "epoch": epoch, "resumed": run.resumed,
                   "wandb_resume": os.environ.get("WANDB_RESUME", ""), "started_at_step": run.starting_step})
        checkpoint.write_text(json.dumps({"epoch": epoch}))
        if epoch + 1 == args.ready and not run.resumed:
            with open(args.pidfile, "a") as pids:
                pids.write(f"{os.getpid()}\n")


if __name__ == "__main__":
    main()
