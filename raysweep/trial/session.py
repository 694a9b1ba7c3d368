"""What a trial reports to Ray: W&B history rows, one Ray result per step.

Every result a raysweep trial sends is the row the user logged plus W&B's
`_step`, `_runtime` and `_timestamp`, so the run log can write it as a history
line unchanged and Ray's searchers and schedulers see the user's metric under
the name the sweep file gives.  Summary updates that arrive after the last
row (`wandb.summary["best"] = ...` at the end of a script) travel as a result
marked ``_raysweep: {"history": False}``; it repeats the last row's values so
searchers that read a trial's last result still find the metric, and the
early-stopping scheduler does not count it as an iteration.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ray import tune

from raysweep.protocol import META_KEY

#: Marks the result a trial sends just before it raises an error of its own.
FINAL_ERROR = "final_error"


@dataclass
class _RunClock:
    """Step counter and start time of the trial that is running in this worker."""

    trial_id: str
    started: float = field(default_factory=time.time)
    next_step: int = 0
    last_row: dict[str, Any] = field(default_factory=dict)


_clock: _RunClock | None = None


def _current_clock() -> _RunClock:
    """The clock of the current trial; a new trial in a reused actor starts a new one."""
    global _clock
    trial_id = tune.get_context().get_trial_id() or ""
    if _clock is None or _clock.trial_id != trial_id:
        _clock = _RunClock(trial_id)
    return _clock


def report_row(row: dict[str, Any] | None, *, summary: dict[str, Any] | None = None) -> None:
    """Send one W&B history row (or, with ``row=None``, only summary updates) to Ray.

    A row may carry its own ``_step`` (W&B's explicit ``step=``); otherwise the
    next step number is used.  Must be called from the trial's training thread:
    when Ray stops the trial, the call raises ``SystemExit`` there.
    """
    clock = _current_clock()
    now = time.time()
    if row is None:
        result = {**clock.last_row, META_KEY: {"history": False, "summary": dict(summary or {})}}
    else:
        result = dict(row)
        step = result.pop("_step", None)
        step = clock.next_step if step is None else int(step)
        clock.next_step = step + 1
        result.update(_step=step, _runtime=now - clock.started, _timestamp=now)
        clock.last_row = {k: v for k, v in result.items() if not k.startswith("_")}
        if summary:
            result[META_KEY] = {"history": True, "summary": dict(summary)}
    tune.report(result)


def errors_are_final(trainable: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    """Wrap a trainable so that a run failing on its own is marked so before it raises.

    Ray retries every failed trial (``--max-failures``), which is right when a
    node died under a run and wrong when the training code raised or the program
    exited non-zero: W&B's agent never re-runs those, and a buggy script would
    run three times.  The marker result (not a history row) lets the driver
    turn retries off for this run; a lost node raises nothing here, so it is
    still retried.
    """

    def wrapped(config: dict[str, Any]) -> None:
        try:
            trainable(config)
        except Exception:
            tune.report({**_current_clock().last_row, META_KEY: {"history": False, FINAL_ERROR: True}})
            raise

    wrapped.__name__ = getattr(trainable, "__name__", "train")
    return wrapped


def is_final_error(result: dict[str, Any]) -> bool:
    """Whether a result announces that its run failed on its own (see `errors_are_final`)."""
    return bool(result.get(META_KEY, {}).get(FINAL_ERROR, False))


class RetryOnlyLostRuns(tune.Callback):
    """Driver side of `errors_are_final`: no retry for a run that failed on its own."""

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any,
                        result: dict[str, Any], **info: Any) -> None:
        if is_final_error(result):
            trial.max_failures = 0  # Trial.should_recover() reads it when the error arrives


def log(row: dict[str, Any], step: int | None = None) -> None:
    """Log one step of metrics from a function-mode trial, like ``wandb.log``.

    >>> raysweep.log({"loss": 0.25, "epoch": 3})   # doctest: +SKIP
    """
    if not isinstance(row, dict):
        raise TypeError(f"raysweep.log takes a dict of metrics, got {type(row).__name__}")
    report_row(row if step is None else {**row, "_step": step})
