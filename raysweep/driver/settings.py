"""How to run a sweep beyond what its YAML says: resources, budget, retries, where results go.

The defaults of `raysweep.run` and of the ``raysweep`` command's options are
these dataclasses' defaults; the CLI reads them from here, which imports no
Ray, so building its parser stays cheap.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from raysweep.errors import RaysweepError

if TYPE_CHECKING:
    from raysweep.driver.cluster import ClusterInfo

DEFAULT_OUT = Path("raysweep-runs")


@dataclass(frozen=True)
class Resources:
    """What each trial asks of the cluster; fractions of a GPU pack several runs on one."""

    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int | None = None

    def as_ray(self) -> dict[str, float]:
        return {"cpu": self.cpus_per_trial, "gpu": self.gpus_per_trial}

    def slots(self, info: ClusterInfo) -> int | None:
        """How many runs the cluster's resources hold at once (None: no limit)."""
        slots = [info.cpus / self.cpus_per_trial if self.cpus_per_trial else float("inf"),
                 info.gpus / self.gpus_per_trial if self.gpus_per_trial else float("inf")]
        if self.max_concurrent:
            slots.append(self.max_concurrent)
        return int(min(slots)) if min(slots) != float("inf") else None

    def describe(self, info: ClusterInfo) -> str:
        """The packing a sweep runs with, e.g. `2 runs at once (1 CPU, 0.5 GPU each)`."""
        at_once = self.slots(info)
        return (f"up to {'unlimited' if at_once is None else at_once} runs at once "
                f"({self.cpus_per_trial:g} CPU, {self.gpus_per_trial:g} GPU each)")


@dataclass(frozen=True)
class FunctionTarget:
    """A sweep's function by name, ``module:function`` imported from `directory`.

    ``--function`` names the function a sweep runs; ``sweep.json`` keeps the
    name and the directory it was imported from (`record`), so that
    ``--resume`` and a later agent run the same function without being told
    again, from wherever they are started.  A function handed over in Python
    (a notebook's ``train``) has no such name: `UNNAMED` says so in
    ``sweep.json``, and `launched_function` asks for it again.
    """

    target: str
    directory: str
    recorded: bool = field(default=False, compare=False)  # read from sweep.json, not given

    @classmethod
    def parse(cls, target: str, directory: str | os.PathLike[str] | None = None) -> FunctionTarget:
        """``--function TARGET``, imported from `directory` (default: the current one)."""
        module, _, attr = target.partition(":")
        if not module or not attr:
            raise RaysweepError(f"--function {target}: write it as module:function, e.g. train:main")
        return cls(target, str(Path(directory or Path.cwd()).resolve()))

    def load(self) -> Callable[..., Any]:
        """The function itself; a clear error when it does not import (any more)."""
        module_name, _, attr = self.target.partition(":")
        if self.directory not in sys.path:
            sys.path.insert(0, self.directory)
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise self._error(f"cannot import {module_name}: {exc}") from exc
        if not callable(getattr(module, attr, None)):
            raise self._error(f"{module_name} has no function {attr}")
        return getattr(module, attr)

    def _error(self, reason: str) -> RaysweepError:
        if not self.recorded:
            return RaysweepError(f"--function {self.target}: {reason}")
        return RaysweepError(f"the sweep's function {self.target} (recorded in sweep.json, imported from "
                             f"{self.directory}) no longer imports: {reason}; pass --function module:function")

    def record(self) -> dict[str, Any]:
        """sweep.json's ``function``."""
        return {"target": self.target, "directory": self.directory}


#: sweep.json's ``function`` for a function handed over in Python, which cannot be imported by name.
UNNAMED: dict[str, Any] = {"target": None, "directory": None}


def function_record(function: FunctionTarget | None, programs: bool) -> dict[str, Any] | None:
    """What sweep.json records of what a driver runs: the function's name, `UNNAMED`, or None (the program)."""
    if function is not None:
        return function.record()
    return None if programs else UNNAMED


def launched_function(launched: Mapping[str, Any]) -> FunctionTarget | None:
    """The function a sweep ran, from its sweep.json (`launched`); None: its program.

    A sweep whose function was handed over in Python cannot be continued
    without it: running its program instead would crash every run.
    """
    entry = launched.get("function")
    if entry is None:
        return None
    if entry.get("target") is None:
        raise RaysweepError(
            "this sweep ran a function handed over in Python (raysweep.agent(..., function=train) or "
            "raysweep.run(..., train_fn)), which sweep.json cannot name: give it again, as "
            "--function module:function (or function=/train_fn= in Python)")
    return FunctionTarget(entry["target"], entry["directory"], recorded=True)


@dataclass(frozen=True)
class Settings:
    """How to run a sweep, beyond what its YAML says."""

    count: int | None = None
    resources: Resources = field(default_factory=Resources)
    seed: int | None = None
    verbose: bool = False
    progress: bool = True
    max_failures: int = 2
    run_timeout: float | None = None
    kill_grace: float = 30.0  # seconds between SIGTERM and SIGKILL when a run is stopped
    storage: str | None = None
    reuse_actors: bool | None = None  # None: reuse unless the cluster has (or may add) other nodes
    function: FunctionTarget | None = None  # the function to run by name (--function), recorded in sweep.json
