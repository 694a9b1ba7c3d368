"""Ray Tune's side of the run log: each trial of the sweep recorded as one W&B run.

`RunLogCallback` is the one place that knows both Ray's trial lifecycle and the
run log: it maps trials to runs (a retried or requeued trial stays one run with
one history, its attempts listed), turns Ray results into W&B history rows
(`history_row`), and reads how a failed trial ended from what Ray left behind
(`_failure`).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ray import cloudpickle, tune

from raysweep.names import run_id_for
from raysweep.protocol import META_KEY
from raysweep.runlog.log import RUN_STATES, RunLog
from raysweep.search.stopping import STOPPED_AT_RUNG

if TYPE_CHECKING:
    from ray.tune.experiment import Trial


#: Keys Ray adds to every result: its bookkeeping, not what the run logged.
RAY_RESULT_KEYS = frozenset({
    "timestamp", "checkpoint_dir_name", "done", "training_iteration", "trial_id", "date",
    "time_this_iter_s", "time_total_s", "pid", "hostname", "node_ip", "time_since_restore",
    "iterations_since_restore", "config", "experiment_tag", "should_checkpoint"})
_ERROR_LINES = 20
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # Ray colours the worker's name in its error text


def history_row(result: Mapping[str, Any]) -> dict[str, Any]:
    """The W&B history row in a Ray result: what the run logged, with ``_step``.

    Rows from `raysweep.log` carry ``_step``/``_runtime``; a plain
    ``ray.tune.report`` result gets ``training_iteration - 1`` and Ray's clock
    of this attempt (``time_since_restore``: the run log adds the earlier
    attempts' runtime, which a restored trial's ``time_total_s`` partly holds).
    """
    row = {k: v for k, v in result.items()
           if k not in RAY_RESULT_KEYS and not k.startswith(META_KEY)}
    if "_step" not in row and "training_iteration" in result:
        row["_step"] = int(result["training_iteration"]) - 1
    if "_runtime" not in row and "time_since_restore" in result:
        row["_runtime"] = result["time_since_restore"]
    return row


@dataclass
class _Attempt:
    """What the callback remembers of a trial's running attempt between Ray's hooks."""

    run_id: str
    done: bool = False  # the last result had done=True: a scheduler or stopper ended it
    rung: int | None = None
    exit_code: int | None = None
    placed: bool = False  # host and node recorded from a result of this attempt


class RunLogCallback(tune.Callback):
    """Records each Ray trial of the sweep as one W&B run, on the driver, as results arrive.

    `stopped_at_rung(trial_id)` (the early-stopping scheduler's method) says at
    which rung a run was stopped: Ray 2.60 hands schedulers a flattened copy of
    each result, so a rung they write into it never reaches callbacks (a
    ``_raysweep_stopped_at_rung`` key that does, e.g. from a Stopper, is read too).

    Ray pickles its callbacks into the experiment (``tuner.pkl``, together with
    the scheduler); this one leaves its open `RunLog` out and reopens it when
    unpickled.  The run log on disk, not the callback, says which runs exist
    and which have ended, so a restore from an older Ray checkpoint (with
    Ray's own `Tuner.restore`) cannot duplicate a run.
    """

    def __init__(self, log: RunLog,
                 stopped_at_rung: Callable[[str], int | None] | None = None, *, programs: bool = False) -> None:
        self.path, self.sweep_id = log.path, log.sweep_id
        self.stopped_at_rung = stopped_at_rung
        #: Runs are the sweep's program: one that finishes without an error exited 0, as W&B records.
        self.programs = programs
        self._log: RunLog | None = log
        self._attempts: dict[str, _Attempt] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "sweep_id": self.sweep_id,
                "stopped_at_rung": self.stopped_at_rung, "programs": self.programs}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.path, self.sweep_id = state["path"], state["sweep_id"]
        self.stopped_at_rung = state["stopped_at_rung"]
        self.programs = state.get("programs", False)
        self._log, self._attempts = None, {}

    @property
    def log(self) -> RunLog:
        if self._log is None:
            self._log = RunLog.open(self.path)
        return self._log

    def setup(self, stop: Any = None, num_samples: int | None = None, total_num_samples: int | None = None,
              **info: Any) -> None:
        """Open the log before any trial starts, so a log that cannot be read fails first."""
        _ = self.log

    def on_trial_start(self, iteration: int, trials: list[Trial], trial: Trial,
                       **info: Any) -> None:
        run_id = run_id_for(self.sweep_id, trial.trial_id)
        self._attempts[trial.trial_id] = _Attempt(run_id)
        self.log.start_run(run_id, self.log.name_for(run_id), trial.config, _placement(trial))

    def on_trial_result(self, iteration: int, trials: list[Trial], trial: Trial,
                        result: dict[str, Any], **info: Any) -> None:
        attempt = self._attempt(trial)
        extra = result.get(META_KEY) or {}
        attempt.done = bool(result.get("done"))
        attempt.rung = result.get(STOPPED_AT_RUNG, attempt.rung)
        attempt.exit_code = extra.get("exit_code", attempt.exit_code)
        metadata = {**({} if attempt.placed else _node(result)), **extra.get("metadata", {})}
        if metadata:
            self.log.update_metadata(attempt.run_id, metadata)
            attempt.placed = True
        if extra.get("output"):
            self.log.append_output(attempt.run_id, extra["output"])
        if extra.get("history", True):
            self.log.append_history(attempt.run_id, history_row(result))
        if extra.get("summary"):
            self.log.update_summary(attempt.run_id, extra["summary"])

    def on_checkpoint(self, iteration: int, trials: list[Trial], trial: Trial,
                      checkpoint: tune.Checkpoint, **info: Any) -> None:
        fs = checkpoint.filesystem.type_name if checkpoint.filesystem is not None else "local"
        uri = checkpoint.path if fs == "local" else f"{fs}://{checkpoint.path}"
        self.log.record_checkpoint(self._attempt(trial).run_id, uri)

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial,
                          **info: Any) -> None:
        attempt = self._attempt(trial)
        del self._attempts[trial.trial_id]
        if attempt.rung is None and self.stopped_at_rung is not None:
            attempt.rung = self.stopped_at_rung(trial.trial_id)
        if attempt.done or attempt.rung is not None:
            self.log.end_run(attempt.run_id, "killed", stopped_at_rung=attempt.rung,
                             early_stopped=True)
        else:
            exit_code = 0 if attempt.exit_code is None and self.programs else attempt.exit_code
            self.log.end_run(attempt.run_id, _failed_or(exit_code, "finished"), exit_code=exit_code)

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial,
                       **info: Any) -> None:
        attempt = self._attempt(trial)
        del self._attempts[trial.trial_id]
        failure = _failure(trial, attempt.exit_code)
        if failure["state"] == "preempted":  # not requeued here: left unended, the next driver runs it again
            self.log.fail_attempt(attempt.run_id, **failure)
            return
        self.log.end_run(attempt.run_id, **failure)

    def on_trial_recover(self, iteration: int, trials: list[Trial], trial: Trial,
                         **info: Any) -> None:
        """The attempt failed and Ray will retry: record it; `on_trial_start` follows."""
        attempt = self._attempt(trial)
        del self._attempts[trial.trial_id]
        self.log.fail_attempt(attempt.run_id, **_failure(trial, attempt.exit_code))

    def _attempt(self, trial: Trial) -> _Attempt:
        """The trial's attempt; a trial Ray reports on before starting it is started first."""
        if trial.trial_id not in self._attempts:
            self.on_trial_start(0, [], trial)
        return self._attempts[trial.trial_id]


def _failed_or(exit_code: int | None, otherwise: str) -> str:
    """W&B's state for a run's end: ``failed`` when its program exited non-zero."""
    return "failed" if exit_code not in (None, 0) else otherwise


def _node(result: Mapping[str, Any]) -> dict[str, Any]:
    """Where an attempt runs, from Ray's fields of one of its results."""
    found = {"host": result.get("hostname"), "node_ip": result.get("node_ip"),
             "pid": result.get("pid")}
    return {k: v for k, v in found.items() if v is not None}


def _placement(trial: Trial) -> dict[str, Any]:
    """wandb-metadata.json fields known when a trial starts: node, resources, Ray ids."""
    factory = trial.placement_group_factory
    return {**_node(trial.last_result or {}), "resources": dict(
                factory.required_resources) if factory else {},
            "ray_trial_id": trial.trial_id, "ray_trial_name": str(trial),
            "ray_trial_path": trial.path}


def _failure(trial: Trial, exit_code: int | None) -> dict[str, Any]:
    """How the trial's attempt failed: W&B state, error text, exit code.

    Ray pickles the exception next to error.txt.  raysweep's program trainable
    raises one carrying ``exit_code`` and ``state`` (``failed`` for a non-zero
    exit, ``crashed`` for a signal or a timeout); anything else is ``crashed``,
    or ``failed`` when a result reported a non-zero exit code.
    """
    cause = None
    if trial.pickled_error_file and os.path.exists(trial.pickled_error_file):
        with contextlib.suppress(Exception):  # e.g. an exception class not importable here
            with open(trial.pickled_error_file, "rb") as f:
                error = cloudpickle.load(f)
            cause = getattr(error, "cause", error)
    code = getattr(cause, "exit_code", exit_code)
    state = getattr(cause, "state", None)
    return {"state": state if state in (*RUN_STATES, "preempted") else _failed_or(code, "crashed"),
            "error": _error_text(trial), "exit_code": code}


def _error_text(trial: Trial) -> str | None:
    """The last lines of the trial's latest failure, from Ray's error.txt."""
    text = None
    if trial.error_file and os.path.exists(trial.error_file):
        text = Path(trial.error_file).read_text(encoding="utf-8", errors="replace")
    else:
        with contextlib.suppress(OSError):
            error = trial.get_error()
            text = str(error) if error else None
    if not text:
        return None
    last = _ANSI.sub("", text).rsplit("Failure # ", 1)
    lines = last[-1].strip().splitlines()[1 if len(last) > 1 else 0:]
    return "\n".join(lines[-_ERROR_LINES:])
