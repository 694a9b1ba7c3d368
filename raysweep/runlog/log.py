"""The run log: a W&B-shaped record of a sweep, written on the driver as results arrive.

Layout of ``OUT/<sweep-name>-<sweep-id>/``: ``sweep.yaml`` (the file as given),
``sweep.json``, ``runs.jsonl`` (one line per ended run) and per run
``runs/<run-id>/{config.yaml, wandb-history.jsonl, wandb-summary.json,
wandb-metadata.json, output.log}`` in the formats of a W&B run's files, the
history and summary those of the whole run across its attempts
(`raysweep.runlog.rundir`).  One process writes it, the sweep's driver, through
`RunLog`; `raysweep.runlog.recorder` feeds it from Ray Tune's callbacks.  Every file
is written so that a driver killed at any instant leaves it readable
(`raysweep.runlog.atomic`), and `load` reads it, finished or still running.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import yaml

from raysweep.runlog.atomic import (append, append_line, dumps, io_error, read_json, read_jsonl,
                             write_atomic)
from raysweep.values import plain
from raysweep.errors import RunLogError
from raysweep.names import check_id, new_sweep_id, run_id_for, run_name, slug
from raysweep.runlog.rundir import (CONFIG, HISTORY, METADATA, OUTPUT, SUMMARY, OpenRun, best_entry,
                             attempts_runtime, close_attempt, config_yaml, current_summary, load_run,
                             metric_warning, iso, now, run_record)
from raysweep.trial.attempt import CHECKPOINT

if TYPE_CHECKING:
    from raysweep.runlog.lease import Ledger
    from raysweep.spec.load import SweepSpec

# new_sweep_id and run_id_for (raysweep.names) are re-exported: bench/ imports them from here.
__all__ = ["COLUMNS", "RUN_STATES", "SWEEP_STATES", "RunLog", "load", "new_sweep_id",
           "run_id_for"]

#: Seconds between rewrites of a running run's wandb-summary.json.
SUMMARY_EVERY_S = 1.0
RUN_STATES = ("finished", "crashed", "failed", "killed")
SWEEP_STATES = ("running", "finished", "cancelled")
RUNS = "runs.jsonl"
_LOST = "lost: the sweep ended while this run was still recorded as running"
#: A file holding back space while a driver runs: on a full disk, deleting it lets
#: sweep.json still record how the sweep ended (the atomic rewrite needs a new file).
RESERVE = ".reserve"
RESERVE_BYTES = 64 * 1024


class RunLog:
    """One sweep's run log directory, written by its drivers.

    A run's files are written by the one driver that owns the run.  With
    `shared` set (`raysweep.runlog.lease.Ledger`: other drivers may work on
    the sweep), what all drivers write (sweep.json) is rewritten under the
    sweep's lock, runs are named by their place among every driver's runs,
    and a driver that finishes closes only its own runs.
    """

    def __init__(self, path: Path, sweep_id: str) -> None:
        """Use `RunLog.create` for a new sweep and `RunLog.open` for an existing one."""
        self.path = path
        self.sweep_id = check_id(sweep_id, "sweep id")
        self._runs: dict[str, OpenRun] = {}
        self._ended = {record.get("id") for record in read_jsonl(path / RUNS)}
        self._started: set[str] | None = None  # ids of runs with files, read once (one writer)
        self.shared: Ledger | None = None

    def __getstate__(self) -> dict[str, Any]:
        """Ray pickles callbacks holding the log into its experiment; the shared state is this process's."""
        return {**self.__dict__, "shared": None}

    @classmethod
    def create(cls, out: str | os.PathLike[str], spec: SweepSpec, sweep_id: str) -> RunLog:
        """Start ``out/<sweep-name>-<sweep_id>/`` with ``sweep.yaml`` and ``sweep.json``."""
        name = spec.name or (Path(spec.source).stem if spec.source else "sweep")
        path = Path(out).resolve() / f"{slug(name)}-{check_id(sweep_id, 'sweep id')}"
        try:
            path.mkdir(parents=True)
            (path / "runs").mkdir()
        except FileExistsError as exc:
            raise RunLogError(f"run log {path} already exists: pass another --out, or "
                              f"continue it with `raysweep run --resume {path}`") from exc
        except OSError as exc:
            raise io_error(path, exc, "create") from exc
        source = spec.source_text if spec.source_text is not None else yaml.safe_dump(
            plain(spec.raw), sort_keys=False, allow_unicode=True)
        write_atomic(path / "sweep.yaml", source)
        metric = {"name": spec.metric.name, "goal": spec.metric.goal} if spec.metric else None
        log = cls(path, sweep_id)
        log._write_sweep({"id": sweep_id, "name": name, "method": spec.method, "metric": metric,
                          "state": "running", "created_at": now(), "finished_at": None,
                          "run_count": 0, "best_run": None, "ray_experiment_path": None})
        return log

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> RunLog:
        """An existing run log (to resume a sweep, or to read it)."""
        path = Path(path).resolve()
        sweep = read_json(path / "sweep.json")
        if not sweep.get("id"):
            raise RunLogError(f"{path} is not a raysweep run log (no sweep.json): give the "
                              "directory `raysweep run` made, e.g. raysweep-runs/<name>-<id>")
        return cls(path, sweep["id"])

    def run_dir(self, run_id: str) -> Path:
        """``runs/<run_id>``; ids that are not plain ids are refused (no ``..``, no ``/``)."""
        return self.path / "runs" / check_id(run_id)

    def run_metadata(self, run_id: str) -> dict[str, Any]:
        """The run's wandb-metadata.json (name, state, host...); empty for a run not started."""
        return read_json(self.run_dir(run_id) / METADATA)

    def name_for(self, run_id: str) -> str:
        """The run's name if it exists, else the next W&B-style name of this sweep."""
        known = self.run_metadata(run_id).get("name")
        number = self.shared.number(run_id) if self.shared is not None else None
        return known or run_name(number or len(self._run_ids()) + 1, seed=self.sweep_id)

    def start_run(self, run_id: str, name: str, config: Mapping[str, Any],
                  metadata: Mapping[str, Any]) -> None:
        """Create the run (config.yaml, wandb-metadata.json), or start its next attempt.

        A run that already has files (a retried trial, a requeued one, or one
        restarted after the driver died) keeps its id, name and creation time,
        and, as a resumed W&B run, its history and summary: the new attempt's
        steps follow the last one recorded.  The earlier attempt is listed in
        the metadata with its steps, its output moves to ``attempts/<n>/``.
        """
        run_dir = self.run_dir(run_id)
        prior = read_json(run_dir / METADATA)
        attempts = close_attempt(run_dir, prior) if prior else []
        started = time.time()
        created = prior.get("startedAt") or iso(started)
        meta = {**plain(metadata), "run_id": run_id, "name": name, "sweep_id": self.sweep_id,
                "startedAt": created, "attempt": len(attempts) + 1,
                "attemptStartedAt": iso(started), "attempts": attempts}
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise io_error(run_dir, exc, "create") from exc
        values = plain(config)
        write_atomic(run_dir / CONFIG, config_yaml(values))
        write_atomic(run_dir / METADATA, dumps(meta))
        run = OpenRun(name, created, started, values, meta, runtime_before=attempts_runtime(attempts))
        if prior:
            rows = self.history(run_id)
            run.summary, run.nonfinite = current_summary(run_dir), self._nonfinite(rows)
            run.last_step = max((row["_step"] for row in rows), default=-1)
        self._runs[run_id] = run
        self._run_ids().add(run_id)

    def append_history(self, run_id: str, row: Mapping[str, Any]) -> None:
        """One history line (W&B ``_step``, ``_runtime``, ``_timestamp`` filled in if absent).

        ``_runtime``, the attempt's clock where the row was logged, goes on from
        the runtime of the run's earlier attempts, as a resumed W&B run's does.

        The history is the whole run's, each step once, in order.  An attempt
        whose first step is not after the run's last one could not know where
        the run was (a node without the run log, Ray's iteration count
        starting again from a checkpoint): its steps are moved to follow it,
        as a resumed W&B run's ``wandb.log`` goes on from the run's step.
        Within an attempt steps only go up, as in W&B: a row for a step
        already passed is left out, with W&B's warning in output.log once.
        """
        run = self._run(run_id)
        stamp = time.time()
        line: dict[str, Any] = plain(row)
        line.setdefault("_step", run.last_step + 1)
        if run.step_shift is None:  # the attempt's first row
            run.step_shift = max(0, run.last_step + 1 - line["_step"])
        line["_step"] += run.step_shift
        if line["_step"] <= run.last_step:
            self._ignore_step(run_id, run, line["_step"])
            return
        runtime = line.get("_runtime")
        line["_runtime"] = run.runtime_before + (
            runtime if isinstance(runtime, (int, float)) else stamp - run.started)
        line.setdefault("_timestamp", stamp)
        append_line(self.run_dir(run_id) / HISTORY, line)
        run.last_step = line["_step"]
        run.nonfinite += self._nonfinite([line])
        self._set_summary(run_id, run, line)

    def _ignore_step(self, run_id: str, run: OpenRun, step: int) -> None:
        """Say once per attempt, as W&B does, that rows for earlier steps are not recorded."""
        if not run.ignored_steps:
            self.append_output(run_id, f"wandb: WARNING Tried to log to step {step} that is less than "
                               f"the current step {run.last_step + 1}. Steps must be monotonically "
                               "increasing, so this data will be ignored.\n")
        run.ignored_steps += 1

    def _nonfinite(self, rows: list[dict[str, Any]]) -> int:
        """How many of `rows` hold a NaN or infinite value of the sweep metric."""
        values = [row.get(self._metric) for row in rows] if self._metric else []
        return sum(isinstance(value, float) and not math.isfinite(value) for value in values)

    def update_summary(self, run_id: str, values: Mapping[str, Any]) -> None:
        """Explicit summary values (``wandb.summary[k] = v``); a later history row overrides."""
        self._set_summary(run_id, self._run(run_id), plain(values), force=True)

    def update_metadata(self, run_id: str, values: Mapping[str, Any]) -> None:
        """Add to wandb-metadata.json (where the attempt runs, the program's command)."""
        run = self._run(run_id)
        run.metadata.update(plain(values))
        write_atomic(self.run_dir(run_id) / METADATA, dumps(run.metadata))

    def record_checkpoint(self, run_id: str, uri: str) -> None:
        """Note where the run's last checkpoint is (``runs/<id>/checkpoint.json``), for its next attempt.

        Ray hands a retried trial its checkpoint itself; a run restarted by a
        later driver (``--resume``, an agent) finds it here.
        """
        write_atomic(self.run_dir(run_id) / CHECKPOINT, dumps({"uri": uri}))

    def append_output(self, run_id: str, text: str) -> None:
        """Append console output of the run to its output.log, as given."""
        self._run(run_id)
        append(self.run_dir(run_id) / OUTPUT, text.encode("utf-8", "replace"), lines=False)

    def fail_attempt(self, run_id: str, error: str | None = None, *, state: str = "crashed",
                     exit_code: int | None = None) -> None:
        """Close the run's current attempt as failed; Ray will start it again."""
        run = self._run(run_id)
        self._set_summary(run_id, run, {}, force=True)
        prior = {**run.metadata, "state": state, "error": error, "exit_code": exit_code,
                 "endedAt": now()}
        prior["attempts"] = close_attempt(self.run_dir(run_id), prior)
        write_atomic(self.run_dir(run_id) / METADATA, dumps(prior))
        del self._runs[run_id]

    def end_run(self, run_id: str, state: str, *, stopped_at_rung: int | None = None,
                error: str | None = None, exit_code: int | None = None,
                early_stopped: bool = False) -> None:
        """Record the run's end: its line in runs.jsonl (replacing an earlier one), sweep.json."""
        if state not in RUN_STATES:
            raise ValueError(f"run state must be one of {RUN_STATES}, got {state!r}")
        run = self._run(run_id)
        ended_at = time.time()
        runtime = round(run.runtime(ended_at), 3)
        self._set_summary(run_id, run, {}, force=True)
        run.metadata.update(state=state, endedAt=iso(ended_at), error=error, exit_code=exit_code,
                            runtime=runtime)
        write_atomic(self.run_dir(run_id) / METADATA, dumps(run.metadata))
        ended = run_record(run_id, run, state, runtime,
                           early_stopped=early_stopped or stopped_at_rung is not None,
                           stopped_at_rung=stopped_at_rung, error=error, exit_code=exit_code,
                           warning=metric_warning(run, self._metric))
        with self._locked():  # another driver's append must not meet a line being written
            self._write_record(ended)
            del self._runs[run_id]
            sweep = self.sweep_info()
            best = best_entry([ended, *filter(None, [sweep.get("best_run")])], sweep.get("metric"))
            self._write_sweep({**sweep, "run_count": self._run_count(), "best_run": best})

    def finish(self, state: str, *, target_reached: bool = False, **fields: Any) -> None:
        """Mark the sweep finished or cancelled in sweep.json (with its best run).

        When it finished, runs still recorded as running can no longer end (cut
        off by an earlier driver and left out of this one's budget, or unknown
        to Ray after its own `Tuner.restore`): they are recorded as crashed, as
        W&B does for runs that stop reporting.  When a run reached
        ``metric.target``, Ray ends the sweep without a word on the runs still
        going: the sweep stopped them, so they are ``killed``.
        """
        if state not in SWEEP_STATES[1:]:
            raise ValueError(f"sweep state must be one of {SWEEP_STATES[1:]}, got {state!r}")
        with contextlib.suppress(OSError):
            (self.path / RESERVE).unlink(missing_ok=True)  # its space is for what follows
        with self._locked():
            self._ended = {record["id"] for record in self.finished_runs()}
            orphans = self._run_ids() - self._ended if state == "finished" else set()
            if self.shared is not None:  # the others' runs are theirs, or will be adopted
                orphans &= self.shared.owned_unended()
            for run_id in sorted(orphans):
                if target_reached:
                    self.end_run(run_id, "killed")
                else:
                    self.end_run(run_id, "crashed", error=_LOST)
            sweep = self.sweep_info()
            if self.shared is not None and not self.shared.retire():
                state, fields = "running", {**fields, "finished_at": None}  # others still run it
            self._write_sweep({**sweep, "state": state, "finished_at": now(),
                               "run_count": self._run_count(),
                               "best_run": best_entry(self.finished_runs(), sweep.get("metric")),
                               **plain(fields)})

    @functools.cached_property
    def _metric(self) -> str | None:
        """The sweep metric's name (runs that cannot be ranked by it get a warning)."""
        return (self.sweep_info().get("metric") or {}).get("name")

    def reserve_space(self) -> None:
        """Hold back `RESERVE_BYTES` until `finish`; best effort (a disk already full holds none)."""
        with contextlib.suppress(OSError):
            (self.path / RESERVE).write_bytes(bytes(RESERVE_BYTES))

    def update_sweep(self, **fields: Any) -> None:
        """Set fields of sweep.json (``ray_experiment_path``; ``state="running"`` on resume)."""
        with self._locked():
            self._write_sweep({**self.sweep_info(), **plain(fields)})

    def _locked(self) -> contextlib.AbstractContextManager[Any]:
        """The sweep's lock when drivers share the log (sweep.json is read, changed, written)."""
        return self.shared.locked() if self.shared is not None else contextlib.nullcontext()

    def _run_count(self) -> int:
        return self.shared.run_count() if self.shared is not None else len(self._run_ids())

    def started_ids(self) -> set[str]:
        """Ids of the runs that have files (started by any driver so far)."""
        return set(self._run_ids())

    def finished_runs(self) -> list[dict[str, Any]]:
        """The records of runs.jsonl, one per ended run, in the order they ended."""
        records: dict[str, dict[str, Any]] = {}
        for record in read_jsonl(self.path / RUNS):
            records[record["id"]] = record
        return list(records.values())

    def running_runs(self) -> list[dict[str, Any]]:
        """Records, as runs.jsonl would hold them, of started runs that have not ended."""
        return [run_record(run.metadata["run_id"], run, "running", run.summary.get("_runtime"))
                for run in self._unended()]

    def cut_off_runs(self) -> dict[str, dict[str, Any]]:
        """Ray trial id → config of each run that started and never ended, oldest first.

        When the sweep is not running, these are runs its driver left behind
        (killed, interrupted, out of disk): `raysweep.run` starts them again
        under their own trial ids, so they keep their run ids.
        """
        return {run.metadata["ray_trial_id"]: run.config for run in self._unended()
                if run.metadata.get("ray_trial_id")}

    def history(self, run_id: str) -> list[dict[str, Any]]:
        """The run's history rows, every attempt's, each step once, as wandb-history.jsonl holds them."""
        return read_jsonl(self.run_dir(run_id) / HISTORY)

    def _unended(self) -> list[OpenRun]:
        ended = {record["id"] for record in self.finished_runs()}
        runs = [load_run(self.run_dir(run_id)) for run_id in self._run_ids() - ended]
        return sorted(runs, key=lambda run: (run.created_at or "", run.metadata["run_id"]))

    def _run(self, run_id: str) -> OpenRun:
        if run_id not in self._runs:
            self._runs[run_id] = load_run(self.run_dir(run_id))
        return self._runs[run_id]

    def _run_ids(self) -> set[str]:
        """Ids of the sweep's started runs: listed from ``runs/`` once, then kept as runs start.

        Listing (and checking) a directory per run start or end would make each
        cost grow with the sweep; this process is the log's only writer.
        """
        if self._started is None:
            runs = self.path / "runs"
            try:
                self._started = {entry.name for entry in os.scandir(runs)
                                 if entry.is_dir() and (Path(entry.path) / METADATA).exists()}
            except OSError as exc:
                raise io_error(runs, exc, "read") from exc
        return self._started

    def _set_summary(self, run_id: str, run: OpenRun, values: dict[str, Any], *,
                     force: bool = False) -> None:
        """Update the summary; its file is rewritten at most every `SUMMARY_EVERY_S`.

        History lines are the record as results arrive; the summary is derived
        from them, and rewriting (and fsyncing) a whole file per step would
        make a result's cost grow with the run.  A run's end always writes it.
        """
        run.summary.update(values)
        clock = time.monotonic()
        if force or clock - run.summary_written >= SUMMARY_EVERY_S:
            write_atomic(self.run_dir(run_id) / SUMMARY, dumps(run.summary))
            run.summary_written = clock

    def _write_record(self, record: dict[str, Any]) -> None:
        """Append the run's line to runs.jsonl; a run that ended before gets its line replaced."""
        runs = self.path / RUNS
        if record["id"] in self._ended:
            kept = [r for r in self.finished_runs() if r["id"] != record["id"]]
            write_atomic(runs, "".join(dumps(r) + "\n" for r in [*kept, record]))
        else:
            append_line(runs, record)
        self._ended.add(record["id"])

    def sweep_info(self) -> dict[str, Any]:
        """The fields of sweep.json (state, metric, best run, Ray's experiment path...)."""
        return read_json(self.path / "sweep.json")

    def _write_sweep(self, sweep: dict[str, Any]) -> None:
        write_atomic(self.path / "sweep.json", json.dumps(sweep, indent=2, ensure_ascii=False))


#: The columns `load` always has, before ``config.*`` and ``summary.*``.
COLUMNS = ["id", "name", "state", "early_stopped", "stopped_at_rung", "created_at", "runtime",
           "exit_code", "error", "warning"]


def load(path: str | os.PathLike[str]) -> pd.DataFrame:
    """The sweep's runs, one row each, as W&B's run export shapes them.

    Columns: `COLUMNS`, then ``config.<key>`` (nested keys dotted) and
    ``summary.<key>``.  Ended runs come from runs.jsonl in the order they ended;
    runs still running (or cut off by a killed driver) follow, read from their
    directories, with state ``running``.
    """
    log = RunLog.open(path)
    records = [{key: record.get(key) for key in (*COLUMNS, "config", "summary")}
               for record in [*log.finished_runs(), *log.running_runs()]]
    frame = pd.json_normalize(records, sep=".") if records else pd.DataFrame(columns=COLUMNS)
    frame = frame.reindex(columns=[*COLUMNS, *(c for c in frame.columns if c not in COLUMNS)])
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True, format="ISO8601")
    return frame
