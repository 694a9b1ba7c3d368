"""How to run a sweep beyond what its YAML says: resources, budget, retries, where results go.

The defaults of `raysweep.run` and of the ``raysweep`` command's options are
these dataclasses' defaults; the CLI reads them from here, which imports no
Ray, so building its parser stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

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
