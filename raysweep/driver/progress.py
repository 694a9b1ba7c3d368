"""A sweep's progress on the terminal: one line each time a run ends.

Ray's own table is switched off (it reprints every trial every few seconds);
this prints what a person watching a sweep asks: how many runs are running,
finished, early-stopped or crashed, and the best metric so far with its config.
Plain lines work the same in a terminal, a notebook and a CI log.
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

from ray import tune

from raysweep.spec.tree import leaves
from raysweep.spec.distributions import Constant
from raysweep.names import run_id_for
from raysweep.protocol import is_history

if TYPE_CHECKING:
    from ray.tune.experiment import Trial

    from raysweep.runlog.log import RunLog
    from raysweep.spec.load import SweepSpec


class ProgressCallback(tune.Callback):
    """Prints a line per ended run and keeps the best metric seen so far."""

    def __init__(self, spec: SweepSpec, log: RunLog, budget: int | None,
                 rung_of: Callable[[str], int | None] | None = None,
                 stream: IO[str] | None = None) -> None:
        self._metric = spec.metric
        self._log = log
        self._rung_of = rung_of
        self._budget = budget
        self._stream = stream
        self._counts: Counter[str] = Counter()
        self._constants = {path for path, dist in spec.flat_parameters().items()
                           if isinstance(dist, Constant)}
        self._last: dict[str, dict[str, Any]] = {}
        self._best: tuple[float, dict[str, Any]] | None = None

    def on_trial_result(self, iteration: int, trials: list[Trial], trial: Trial,
                        result: dict[str, Any], **info: Any) -> None:
        if is_history(result):
            self._last[trial.trial_id] = result

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        rung = self._rung_of(trial.trial_id) if self._rung_of else None
        detail = f" at iteration {rung}" if rung is not None else ""
        self._end(trials, trial, "early-stopped" if rung is not None else "finished", detail)

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self._end(trials, trial, "crashed", "")

    def _end(self, trials: list[Trial], trial: Trial, state: str, detail: str) -> None:
        """Count the run, judge its final metric (W&B's summary: the last value), print a line."""
        last = self._last.pop(trial.trial_id, {})
        self._counts[state] += 1
        value = self._value(last)
        if value is not None and not math.isnan(value) and self._is_better(value):
            self._best = (value, trial.config)
        done = sum(self._counts.values())
        total = f"/{self._budget}" if self._budget is not None else ""
        metric = f" {self._metric.name}={value:.4g}" if value is not None else ""
        name = self._log.name_for(run_id_for(self._log.sweep_id, trial.trial_id))
        running = sum(1 for t in trials if t.status == "RUNNING" and t is not trial)
        print(f"[{done}{total}] {name} {state}{detail}{metric} | running {running}, "
              f"{self._status()}", file=self._stream or sys.stdout, flush=True)

    def _is_better(self, value: float) -> bool:
        if self._best is None:
            return True
        return value < self._best[0] if self._metric.goal == "minimize" else value > self._best[0]

    def _value(self, result: dict[str, Any]) -> float | None:
        if self._metric is None:
            return None
        value = result.get(self._metric.name)
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    def _status(self) -> str:
        counts = ", ".join(f"{key} {self._counts[key]}" for key in ("finished", "early-stopped", "crashed"))
        if self._best is None:
            return counts
        config = ", ".join(f"{'.'.join(path)}={_short(v)}" for path, v in leaves(self._best[1]).items()
                           if path not in self._constants)
        return f"{counts} | best {self._metric.name}={self._best[0]:.4g} ({config})"


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
