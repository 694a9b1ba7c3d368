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

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ray import tune

from raysweep.names import run_id_for
from raysweep.protocol import META_KEY
from raysweep.trial import attempt
from raysweep.trial.attempt import Attempt

CheckpointLike = str | os.PathLike | tune.Checkpoint

#: Marks the result a trial sends just before it raises an error of its own.
FINAL_ERROR = "final_error"
#: Marks the result a preempted run sends before it raises: it is requeued (W&B's mark_preempting).
PREEMPTED = "preempted"


@dataclass
class _RunClock:
    """Step counter and start time of the trial that is running in this worker."""

    trial_id: str
    started: float = field(default_factory=time.time)
    next_step: int = 0
    last_row: dict[str, Any] = field(default_factory=dict)
    attempt: Attempt | None = None  # when the run log is on this machine


_clock: _RunClock | None = None


def _current_clock() -> _RunClock:
    """The clock of the current trial; a new trial in a reused actor starts a new one."""
    global _clock
    trial_id = tune.get_context().get_trial_id() or ""
    if _clock is None or _clock.trial_id != trial_id:
        _clock = _RunClock(trial_id)
    return _clock


def report_row(row: dict[str, Any] | None, *, summary: dict[str, Any] | None = None,
               checkpoint: CheckpointLike | None = None) -> None:
    """Send one W&B history row (or, with ``row=None``, only summary updates) to Ray.

    A row may carry its own ``_step`` (W&B's explicit ``step=``); otherwise the
    next step number is used.  Must be called from the trial's training thread:
    when Ray stops the trial, the call raises ``SystemExit`` there.  A
    `checkpoint` (a directory or a Ray `Checkpoint`) is saved by Ray with the row.
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
    if checkpoint is None:
        tune.report(result)
    else:
        tune.report(result, checkpoint=checkpoint if isinstance(checkpoint, tune.Checkpoint)
                    else tune.Checkpoint.from_directory(os.fspath(checkpoint)))


def get_checkpoint() -> tune.Checkpoint | None:
    """The run's last checkpoint (`log(..., checkpoint=...)`) when this attempt resumes it, else None.

    Ray's own for a retried trial; for a run restarted by a later driver
    (``--resume``), the one its run log recorded.

    >>> checkpoint = raysweep.get_checkpoint()   # doctest: +SKIP
    >>> start = 0 if checkpoint is None else load_epoch(checkpoint.path) + 1   # doctest: +SKIP
    """
    checkpoint = tune.get_checkpoint()
    clock = _current_clock()
    if checkpoint is None and clock.attempt is not None and clock.attempt.checkpoint:
        checkpoint = tune.Checkpoint(clock.attempt.checkpoint)  # a local path or a URI
    return checkpoint


def start_attempt(runs_dir: str | os.PathLike[str] | None, sweep_id: str) -> Attempt | None:
    """Begin this trial's attempt of its run when this machine has the run log; steps go on from the last.

    None elsewhere: a trial on a node without the run log starts its steps at 0.
    """
    if runs_dir is None or not os.path.isdir(runs_dir):
        return None
    current = attempt.begin(Path(runs_dir, run_id_for(sweep_id, tune.get_context().get_trial_id())))
    clock = _current_clock()
    clock.next_step, clock.attempt = current.next_step, current
    return current


def errors_are_final(trainable: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    """Wrap a trainable so that a run failing on its own is marked so before it raises.

    Ray retries every failed trial (``--max-failures``), which is right when a
    node died under a run and wrong when the training code raised or the program
    exited non-zero: W&B's agent never re-runs those, and a buggy script would
    run three times.  The marker result (not a history row) lets the driver
    turn retries off for this run; a lost node raises nothing here, so it is
    still retried.  A preempted run (its error's ``state`` is ``preempted``)
    sends the other marker: it is requeued whatever its retries so far.
    """

    def wrapped(config: dict[str, Any]) -> None:
        try:
            trainable(config)
        except Exception as exc:
            marker = PREEMPTED if getattr(exc, "state", None) == PREEMPTED else FINAL_ERROR
            tune.report({**_current_clock().last_row, META_KEY: {"history": False, marker: True}})
            raise

    wrapped.__name__ = getattr(trainable, "__name__", "train")
    return wrapped


def is_final_error(result: dict[str, Any]) -> bool:
    """Whether a result announces that its run failed on its own (see `errors_are_final`)."""
    return bool(result.get(META_KEY, {}).get(FINAL_ERROR, False))


class RetryOnlyLostRuns(tune.Callback):
    """Driver side of `errors_are_final`: no retry for a run that failed on its own; a requeue for a preempted one.

    A requeue does not use up the retries left for lost nodes (``--max-failures``).
    """

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any,
                        result: dict[str, Any], **info: Any) -> None:
        if is_final_error(result):
            trial.max_failures = 0  # Trial.should_recover() reads it when the error arrives
        elif result.get(META_KEY, {}).get(PREEMPTED) and trial.max_failures >= 0:
            trial.max_failures += 1


def log(row: dict[str, Any], step: int | None = None, checkpoint: CheckpointLike | None = None) -> None:
    """Log one step of metrics from a function-mode trial, like ``wandb.log``; optionally a checkpoint.

    The checkpoint (a directory, or a Ray `Checkpoint`) is what `get_checkpoint`
    returns when the run is attempted again (its node lost, the sweep resumed).

    >>> raysweep.log({"loss": 0.25, "epoch": 3})   # doctest: +SKIP
    >>> raysweep.log({"loss": 0.25, "epoch": 3}, checkpoint=folder)   # doctest: +SKIP
    """
    if not isinstance(row, dict):
        raise TypeError(f"raysweep.log takes a dict of metrics, got {type(row).__name__}")
    report_row(row if step is None else {**row, "_step": step}, checkpoint=checkpoint)
