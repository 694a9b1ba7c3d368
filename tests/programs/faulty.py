"""A program that fails in the way ``--mode`` says, for the fault tests.

It appends its pid (and any helper's) to ``--pidfile`` (default: the
``RAYSWEEP_TEST_PIDFILE`` environment variable) when given, so a test can check
that stopping a run leaves no process behind.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import subprocess
import sys
import time

import wandb


def _record(pidfile: str | None, pid: int) -> None:
    if pidfile:
        with open(pidfile, "a") as pids:
            pids.write(f"{pid}\n")


def _log_forever(interval: float) -> None:
    step = 0
    while True:
        wandb.log({"loss": 1.0 / (step + 1)})
        step += 1
        time.sleep(interval)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", default="ok")
    parser.add_argument("--pidfile", default=os.environ.get("RAYSWEEP_TEST_PIDFILE"))
    args = parser.parse_args()
    mode = args.mode
    _record(args.pidfile, os.getpid())
    wandb.init(config={"mode": mode})
    if mode == "silent":
        print("training without logging")
        return
    wandb.log({"loss": 1.0})
    print(f"mode {mode}", flush=True)
    if mode == "crash":
        raise RuntimeError("boom")
    if mode == "exit3":
        sys.exit(3)
    if mode == "abort":
        os.abort()
    if mode == "segfault":
        ctypes.string_at(0)
    if mode == "hang":
        time.sleep(600)
    if mode == "stubborn":
        signal.signal(signal.SIGTERM, lambda *_: print("ignoring SIGTERM", flush=True))
        _log_forever(0.05)
    if mode == "spawn":
        _record(args.pidfile, subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"]).pid)
        _log_forever(0.05)
    if mode == "slow":
        _log_forever(0.05)


if __name__ == "__main__":
    main()
