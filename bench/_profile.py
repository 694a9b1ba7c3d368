"""Where a raysweep driver spends its time: cProfile of a sweep's driver, summed by function.

`overhead.py` runs one more sweep of a variant with `PROFILE_ENV` set in the
child's environment; the child profiles its `raysweep.run` with `profiled` and
answers `driver_costs`, which `section` tabulates against the fit time.
"""

from __future__ import annotations

import contextlib
import cProfile
import os
import pstats
from collections.abc import Iterator
from typing import Any

import _common

#: Set in a child's environment to profile its sweep.
PROFILE_ENV = "RAYSWEEP_BENCH_PROFILE"
#: Where a driver's time goes: label -> (path suffix, function name), cumulative seconds.
DRIVER_COSTS = {
    "Ray's controller loop, all of it (`TuneController.step`)": ("tune/execution/tune_controller.py", "step"),
    "Ray experiment-state saves (`TuneController.checkpoint`)": ("tune/execution/tune_controller.py",
                                                               "checkpoint"),
    "↳ of which JSON of every trial (`json.dump`)": ("json/__init__.py", "dump"),
    "↳ of which the searcher's state (`SearchGenerator.save_to_dir`)": ("search/search_generator.py",
                                                                       "save_to_dir"),
    "run log: `RunLogCallback.on_trial_start`": ("raysweep/recorder.py", "on_trial_start"),
    "run log: `RunLogCallback.on_trial_result`": ("raysweep/recorder.py", "on_trial_result"),
    "run log: `RunLogCallback.on_trial_complete`": ("raysweep/recorder.py", "on_trial_complete"),
    "↳ of which `RunLog.name_for`": ("raysweep/runlog.py", "name_for"),
    "waiting for workers (`ray.wait`)": ("ray/_private/worker.py", "wait"),
}


@contextlib.contextmanager
def profiled(into: dict[str, Any]) -> Iterator[None]:
    """Profile the block when `PROFILE_ENV` is set; put its `driver_costs` in ``into["profile"]``."""
    if not os.environ.get(PROFILE_ENV):
        yield
        return
    profiler = cProfile.Profile()
    with profiler:
        yield
    into["profile"] = driver_costs(profiler)


def driver_costs(profiler: cProfile.Profile) -> dict[str, float]:
    """Cumulative seconds of each `DRIVER_COSTS` entry (0 when it never ran)."""
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    return {label: sum(entry[3] for (path, _, name), entry in stats.items()
                       if name == function and path.endswith(suffix))
            for label, (suffix, function) in DRIVER_COSTS.items()}


def section(found: list[dict[str, Any]]) -> str:
    """A table: each driver function's seconds and share of the fit time, one column per profiled run."""
    rows = [[label, *(f"{r['profile'][label]:.1f} ({r['profile'][label] / r['fit_s']:.0%})" for r in found)]
            for label in DRIVER_COSTS]
    return "\n".join([
        "### Where raysweep's driver spends its time", "",
        "One more run of each, the driver under cProfile (which slows it; shares are what count): cumulative "
        "seconds and share of the fit time. Load: " + ", ".join(f"{r['load']}" for r in found) + ".", "",
        _common.table(["driver function", *(f"`{r['variant']}`: {r['runs']} runs, fit {r['fit_s']:.0f} s"
                                            for r in found)], rows)])
