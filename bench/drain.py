"""Drain: seconds from SIGTERM to the driver's exit, with 4 program runs in flight.

Each repetition starts ``raysweep run`` (a fresh process with its own local
Ray) on a grid of 4 runs of a small W&B-style script, 4 at once; once every
program has logged, the benchmark sends the driver SIGTERM and times its exit.
Variants: ``prompt`` (the programs die of the SIGTERM they get, as most do)
and ``linger`` (they ignore it, so the drain lasts ``--kill-grace`` until their
SIGKILL).  Also checked: the exit code (143) and that 5 s later none of the
programs is alive.  SLURM sends SIGKILL ``KillWait`` (30 s by default) after
its SIGTERM: the drain must end before that.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

VARIANTS = ("prompt", "linger")
RUNS = 4
SCRIPT = '''\
import argparse, os, signal, time
import wandb
parser = argparse.ArgumentParser()
parser.add_argument("--x", type=float)
parser.add_argument("--pidfile")
parser.add_argument("--linger", type=lambda s: s == "True")
args = parser.parse_args()
if args.linger:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
wandb.init()
for step in range(100000):
    wandb.log({"loss": args.x + 1.0 / (step + 1)})
    if step == 0:
        with open(args.pidfile, "a") as pids:
            pids.write(f"{os.getpid()}\\n")
    time.sleep(0.2)
'''


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def one_drain(out: Path, variant: str, grace: float) -> dict[str, Any]:
    """One driver, drained by SIGTERM once its 4 programs have logged."""
    out.mkdir(parents=True)
    pidfile = out / "pids"
    (out / "script.py").write_text(SCRIPT)
    sweep = {"name": "drain", "method": "grid", "metric": {"name": "loss"}, "program": str(out / "script.py"),
             "parameters": {"x": {"values": list(range(RUNS))}, "pidfile": {"value": str(pidfile)},
                            "linger": {"value": variant == "linger"}}}
    (out / "sweep.yaml").write_text(yaml.safe_dump(sweep))
    driver = subprocess.Popen([sys.executable, "-m", "raysweep.cli", "run", "sweep.yaml", "--out", "runs",
                               "--cpus-per-trial", str(os.cpu_count() / RUNS), "--kill-grace", str(grace)],
                              cwd=out, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while len(pidfile.read_text().split() if pidfile.exists() else []) < RUNS:
        if driver.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the sweep did not start its {RUNS} runs: {driver.communicate()[1][-2000:]}")
        time.sleep(0.05)
    started = time.perf_counter()
    driver.send_signal(signal.SIGTERM)
    _, err = driver.communicate(timeout=grace + 120)
    seconds = time.perf_counter() - started
    time.sleep(5)
    pids = [int(p) for p in pidfile.read_text().split()]
    return {"variant": variant, "drain_s": round(seconds, 2), "exit": driver.returncode,
            "alive_after_5s": sum(map(alive, pids)), "stderr_tail": err[-400:], "load": _common.load()}


def main() -> None:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, help="repetitions of each variant (default 3; --quick 1)")
    p.add_argument("--kill-grace", type=float, help="the driver's --kill-grace (default 20; --quick 2)")
    args = p.parse_args()
    _common.isolate_ray()
    out, results_path = _common.prepare(args, "drain")
    reps, grace = args.reps or (1 if args.quick else 3), args.kill_grace or (2.0 if args.quick else 20.0)
    results = [one_drain(out / f"{variant}-{rep}", variant, grace)
               for rep in range(reps) for variant in VARIANTS]
    (out / "drain.json").write_text(json.dumps(results, indent=1))
    rows = []
    for variant in VARIANTS:
        mine = [r for r in results if r["variant"] == variant]
        seconds = [r["drain_s"] for r in mine]
        rows.append([f"`{variant}`", len(mine), f"{statistics.median(seconds):.1f}",
                     f"{min(seconds):.1f}–{max(seconds):.1f}", sorted({r["exit"] for r in mine}),
                     sum(r["alive_after_5s"] for r in mine)])
    _common.write_section(results_path, "drain", "\n".join([
        _common.header("Drain: SIGTERM to driver exit" + (" (quick smoke run — not a result)" if args.quick
                                                           else "")),
        (f"`raysweep run` of a program-mode grid of {RUNS} runs, all {RUNS} in flight, `--kill-grace {grace:g}`, "
         "a fresh process and Ray per repetition; SIGTERM once every program has logged, timed to the driver's "
         "exit. `prompt`: the programs die of their SIGTERM; `linger`: they ignore it and are killed after the "
         "grace. Programs alive 5 s after the exit are counted from `/proc`."), "",
        _common.table(["variant", "repetitions", "median s", "range s", "exit codes", "programs alive after 5 s"],
                      rows), ""]))


if __name__ == "__main__":
    main()
