"""`raysweep validate` wall time and peak memory, this checkout against another, side by side.

    nice python bench/validate_time.py --other DIR [--runs 10] [--sweep configs/digits_mlp.yaml]

DIR holds another checkout's ``raysweep/`` (e.g. ``git archive <rev> raysweep | tar -x -C DIR``).
Runs alternate between the two, each ``python -m raysweep.cli validate SWEEP`` in a fresh
process, so both see the same machine load; prints the median and the slowest of each, and
the same for ``python -c "import numpy, yaml"``, the floor under any validate that parses
YAML into numpy-backed distributions.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


def one_run(checkout: Path | None, sweep: Path) -> tuple[float, float]:
    """Seconds and peak resident MB of one `validate` whose `raysweep` comes from `checkout`.

    Without a checkout: the interpreter importing numpy and yaml only.
    """
    env = {**os.environ, "PYTHONPATH": str(checkout or HERE)}
    argv = ["-m", "raysweep.cli", "validate", str(sweep)] if checkout else ["-c", "import numpy, yaml"]
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, *argv], cwd=checkout or HERE, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{argv} failed in {checkout}")
    return seconds, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--other", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--sweep", type=Path, default=HERE / "configs" / "digits_mlp.yaml")
    args = parser.parse_args()
    sides: dict[str, Path | None] = {"this checkout": HERE, f"other ({args.other})": args.other.resolve(),
                                     "floor (import numpy, yaml)": None}
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in sides}
    for _ in range(args.runs):
        for name, checkout in sides.items():
            times[name].append(one_run(checkout, args.sweep.resolve()))
    for name, runs in times.items():
        seconds = [s for s, _ in runs]
        print(f"{name}: median {statistics.median(seconds):.2f} s, slowest {max(seconds):.2f} s, "
              f"peak RSS {max(mb for _, mb in runs):.0f} MB over {len(runs)} runs")


if __name__ == "__main__":
    main()
