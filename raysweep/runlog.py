"""The run log: a W&B-shaped record of a sweep, written on the driver as results arrive.

Layout of ``OUT/<sweep-name>-<sweep-id>/``: ``sweep.yaml`` (the file as given),
``sweep.json``, ``runs.jsonl`` (one line per ended run) and per run
``runs/<run-id>/{config.yaml, wandb-history.jsonl, wandb-summary.json,
wandb-metadata.json, output.log}`` in the formats of a W&B run's files.

A sweep may run for hours and its driver may be killed at any instant, so no
reader ever sees a half-written file: appends are one ``write`` of a whole line
(a line torn by a crash has no newline; readers skip it and the next append
cuts it off), every other file is replaced whole (temporary file in the same
directory, fsync, ``os.replace``).  JSON keeps Python's defaults, so a NaN or
infinite metric is written as ``NaN``/``Infinity`` (not strict JSON, but what
``json.loads`` and pandas read back as the same floats) instead of being lost.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import math
import os
import re
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import yaml
from ray import cloudpickle, tune

from raysweep.errors import RunLogError
from raysweep.names import check_id, new_run_id, new_sweep_id, run_id_for, run_name, slug
from raysweep.session import META_KEY
from raysweep.stopping import STOPPED_AT_RUNG

if TYPE_CHECKING:
    from ray.tune.experiment import Trial

    from raysweep.spec import SweepSpec

__all__ = ["RunLog", "RunLogCallback", "best_run", "load", "new_run_id", "new_sweep_id",
           "run_id_for", "run_name", "to_plain"]

#: Seconds between rewrites of a running run's wandb-summary.json.
SUMMARY_EVERY_S = 1.0
RUN_STATES = ("finished", "crashed", "failed", "killed")
SWEEP_STATES = ("running", "finished", "cancelled")
CONFIG, HISTORY, SUMMARY = "config.yaml", "wandb-history.jsonl", "wandb-summary.json"
METADATA, OUTPUT, RUNS = "wandb-metadata.json", "output.log", "runs.jsonl"
_INTERRUPTED = "interrupted: the sweep's driver stopped while this attempt was running"
_LOST = "lost: the sweep ended while this run was still recorded as running"
_HINTS = {
    errno.ENOSPC: "the disk is full: free space (or pass --out on another disk), then "
                  "continue with `raysweep run --resume`",
    errno.EDQUOT: "the disk quota is used up: free space, then `raysweep run --resume`",
    errno.EROFS: "pass --out with a directory on a writable disk",
    errno.EACCES: "make the directory writable for this user or pass --out elsewhere",
    errno.EPERM: "make the directory writable for this user or pass --out elsewhere",
}


# --- files: whole-line appends, atomic replacement, plain values ---------------------

def _io_error(path: Path, exc: OSError, action: str = "write") -> RunLogError:
    """A `RunLogError` naming the file and saying what to do about the OS error."""
    hint = _HINTS.get(exc.errno or 0)
    return RunLogError(f"cannot {action} run log file {path}: {exc.strerror or exc}"
                       + (f" ({hint})" if hint else ""))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def _epoch(iso: str | None) -> float:
    """Seconds since the epoch of one of our timestamps (Python 3.10 cannot parse ``Z``)."""
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() if iso else time.time()


def to_plain(value: Any) -> Any:
    """`value` as plain Python (dict/list/str/int/float/bool/None) for YAML and JSON.

    Searchers hand out numpy scalars, trainables log numpy and torch values:
    ``yaml.safe_dump`` rejects all of them and ``json`` some, so everything goes
    through here.  Anything else unknown is written as its ``str``.
    """
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_plain(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return to_plain(value.tolist())  # numpy/torch scalars and arrays
    for kind in (bool, int, float, str):
        if isinstance(value, kind):
            return kind(value)
    return None if value is None else str(value)


def _dumps(value: Any) -> str:
    return json.dumps(to_plain(value), ensure_ascii=False)


def write_atomic(path: Path, text: str) -> None:
    """Replace `path` by `text` so that readers see the old file or the new, never a part."""
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fchmod(f.fileno(), 0o644)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise _io_error(path, exc) from exc


def _append(path: Path, data: bytes, *, lines: bool) -> None:
    """Append `data` with one write; for line files, first cut a line a crash left torn."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            if lines:
                _cut_torn_tail(fd)
            while data:
                data = data[os.write(fd, data):]
        finally:
            os.close(fd)
    except OSError as exc:
        raise _io_error(path, exc) from exc


def _cut_torn_tail(fd: int) -> None:
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    chunk = 1 << 16
    end = size
    while end > 0:
        start = max(0, end - chunk)
        found = os.pread(fd, end - start, start).rfind(b"\n")
        if found >= 0:
            os.ftruncate(fd, start + found + 1)
            return
        end = start
    os.ftruncate(fd, 0)


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _io_error(path, exc, "read") from exc


def _read_json(path: Path) -> dict[str, Any]:
    text = _read_text(path)
    try:
        return {} if text is None else json.loads(text)
    except json.JSONDecodeError as exc:
        raise RunLogError(f"run log file {path} is not JSON ({exc}); it was not written "
                          "by raysweep or was edited") from exc


def _read_lines(path: Path) -> list[dict[str, Any]]:
    """The complete lines of a JSON-lines file; a torn last line is not part of it."""
    text = _read_text(path) or ""
    rows = []
    for number, line in enumerate(text.split("\n")[:-1], start=1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            warnings.warn(f"{path}:{number}: skipped a line that is not JSON", RuntimeWarning,
                          stacklevel=2)
    return rows


def _config_yaml(config: Mapping[str, Any]) -> str:
    """A W&B run's ``files/config.yaml``: ``wandb_version: 1``, then ``key: {desc, value}``."""
    body = {key: {"desc": None, "value": value} for key, value in to_plain(config).items()}
    return yaml.safe_dump({"wandb_version": 1, **body}, sort_keys=False, allow_unicode=True)


def _read_config(path: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(_read_text(path) or "") or {}
    return {k: v["value"] for k, v in loaded.items()
            if k not in ("wandb_version", "_wandb") and isinstance(v, dict)}


# --- the log ------------------------------------------------------------------------

@dataclass
class _Run:
    """What the log keeps about a run between its results (reloadable from its files)."""

    name: str
    created_at: str | None
    started: float  # when the current attempt started (epoch seconds)
    config: dict[str, Any]
    metadata: dict[str, Any]
    summary: dict[str, Any] = field(default_factory=dict)
    nonfinite: int = 0  # NaN/inf values of the sweep metric this attempt logged
    summary_written: float = 0.0  # time.monotonic() of the last summary file write


class RunLog:
    """One sweep's run log directory, written by one process: the sweep's driver."""

    def __init__(self, path: Path, sweep_id: str) -> None:
        """Use `RunLog.create` for a new sweep and `RunLog.open` for an existing one."""
        self.path = path
        self.sweep_id = check_id(sweep_id, "sweep id")
        self._runs: dict[str, _Run] = {}
        self._ended = {record.get("id") for record in _read_lines(path / RUNS)}

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
            raise _io_error(path, exc, "create") from exc
        source = spec.source_text if spec.source_text is not None else yaml.safe_dump(
            to_plain(spec.raw), sort_keys=False, allow_unicode=True)
        write_atomic(path / "sweep.yaml", source)
        metric = {"name": spec.metric.name, "goal": spec.metric.goal} if spec.metric else None
        log = cls(path, sweep_id)
        log._write_sweep({"id": sweep_id, "name": name, "method": spec.method, "metric": metric,
                          "state": "running", "created_at": _now(), "finished_at": None,
                          "run_count": 0, "best_run": None, "ray_experiment_path": None})
        return log

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> RunLog:
        """An existing run log (to resume a sweep, or to read it)."""
        path = Path(path).resolve()
        sweep = _read_json(path / "sweep.json")
        if not sweep.get("id"):
            raise RunLogError(f"{path} is not a raysweep run log (no sweep.json): give the "
                              "directory `raysweep run` made, e.g. raysweep-runs/<name>-<id>")
        return cls(path, sweep["id"])

    def run_dir(self, run_id: str) -> Path:
        """``runs/<run_id>``; ids that are not plain ids are refused (no ``..``, no ``/``)."""
        return self.path / "runs" / check_id(run_id)

    def name_for(self, run_id: str) -> str:
        """The run's name if it exists, else the next W&B-style name of this sweep."""
        known = _read_json(self.run_dir(run_id) / METADATA).get("name")
        return known or run_name(len(self._run_ids()) + 1, seed=self.sweep_id)

    def start_run(self, run_id: str, name: str, config: Mapping[str, Any],
                  metadata: Mapping[str, Any]) -> None:
        """Create the run (config.yaml, wandb-metadata.json), or start its next attempt.

        A run that already has files (a retried trial, or a trial restarted after
        the driver died) keeps its id, name and creation time; the files of the
        earlier attempt move to ``attempts/<n>/`` and the attempt is listed in the
        metadata, so the new history starts clean and nothing is counted twice.
        """
        run_dir = self.run_dir(run_id)
        prior = _read_json(run_dir / METADATA)
        attempts = self._close_attempt(run_dir, prior) if prior else []
        created = prior.get("startedAt") or _now()
        meta = {**to_plain(metadata), "run_id": run_id, "name": name, "sweep_id": self.sweep_id,
                "startedAt": created, "attempt": len(attempts) + 1,
                "attemptStartedAt": _now(), "attempts": attempts}
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _io_error(run_dir, exc, "create") from exc
        plain = to_plain(config)
        write_atomic(run_dir / CONFIG, _config_yaml(plain))
        write_atomic(run_dir / METADATA, _dumps(meta))
        self._runs[run_id] = _Run(name, created, time.time(), plain, meta)

    def append_history(self, run_id: str, row: Mapping[str, Any]) -> None:
        """One history line (W&B ``_step``, ``_runtime``, ``_timestamp`` filled in if absent)."""
        run = self._run(run_id)
        now = time.time()
        row = to_plain(row)
        row.setdefault("_step", int(run.summary.get("_step", -1)) + 1)
        row.setdefault("_runtime", now - run.started)
        row.setdefault("_timestamp", now)
        _append(self.run_dir(run_id) / HISTORY, (_dumps(row) + "\n").encode(), lines=True)
        value = row.get(self._metric) if self._metric else None
        run.nonfinite += isinstance(value, float) and not math.isfinite(value)
        self._set_summary(run_id, run, row)

    def update_summary(self, run_id: str, values: Mapping[str, Any]) -> None:
        """Explicit summary values (``wandb.summary[k] = v``); a later history row overrides."""
        self._set_summary(run_id, self._run(run_id), to_plain(values), force=True)

    def update_metadata(self, run_id: str, values: Mapping[str, Any]) -> None:
        """Add to wandb-metadata.json (where the attempt runs, the program's command)."""
        run = self._run(run_id)
        run.metadata.update(to_plain(values))
        write_atomic(self.run_dir(run_id) / METADATA, _dumps(run.metadata))

    def append_output(self, run_id: str, text: str) -> None:
        """Append console output of the run to its output.log, as given."""
        self._run(run_id)
        _append(self.run_dir(run_id) / OUTPUT, text.encode("utf-8", "replace"), lines=False)

    def fail_attempt(self, run_id: str, error: str | None = None, *, state: str = "crashed",
                     exit_code: int | None = None) -> None:
        """Close the run's current attempt as failed; Ray will start it again."""
        run = self._run(run_id)
        self._set_summary(run_id, run, {}, force=True)
        prior = {**run.metadata, "state": state, "error": error, "exit_code": exit_code,
                 "endedAt": _now()}
        prior["attempts"] = self._close_attempt(self.run_dir(run_id), prior)
        write_atomic(self.run_dir(run_id) / METADATA, _dumps(prior))
        del self._runs[run_id]

    def end_run(self, run_id: str, state: str, *, stopped_at_rung: int | None = None,
                error: str | None = None, exit_code: int | None = None,
                early_stopped: bool = False) -> None:
        """Record the run's end: its line in runs.jsonl (replacing an earlier one), sweep.json."""
        if state not in RUN_STATES:
            raise ValueError(f"run state must be one of {RUN_STATES}, got {state!r}")
        run = self._run(run_id)
        self._set_summary(run_id, run, {}, force=True)
        run.metadata.update(state=state, endedAt=_now(), error=error, exit_code=exit_code)
        write_atomic(self.run_dir(run_id) / METADATA, _dumps(run.metadata))
        record = _record(run_id, run, state, round(time.time() - run.started, 3),
                         early_stopped=early_stopped or stopped_at_rung is not None,
                         stopped_at_rung=stopped_at_rung, error=error, exit_code=exit_code,
                         warning=_metric_warning(run, self._metric))
        self._write_record(record)
        del self._runs[run_id]
        sweep = self._read_sweep()
        best = _best([record, *filter(None, [sweep.get("best_run")])], sweep.get("metric"))
        self._write_sweep({**sweep, "run_count": len(self._run_ids()), "best_run": best})

    def finish(self, state: str, **fields: Any) -> None:
        """Mark the sweep finished or cancelled in sweep.json (with its best run).

        When it finished, runs still recorded as running can no longer end (Ray
        did not know them after a restore from an older checkpoint): they are
        recorded as crashed, as W&B does for runs that stop reporting.
        """
        if state not in SWEEP_STATES[1:]:
            raise ValueError(f"sweep state must be one of {SWEEP_STATES[1:]}, got {state!r}")
        self._ended = {record["id"] for record in self.finished_runs()}
        orphans = self._run_ids() - self._ended if state == "finished" else set()
        for run_id in sorted(orphans):
            self.end_run(run_id, "crashed", error=_LOST)
        sweep = self._read_sweep()
        self._write_sweep({**sweep, "state": state, "finished_at": _now(),
                           "run_count": len(self._run_ids()),
                           "best_run": _best(self.finished_runs(), sweep.get("metric")),
                           **to_plain(fields)})

    @functools.cached_property
    def _metric(self) -> str | None:
        """The sweep metric's name (runs that cannot be ranked by it get a warning)."""
        return (self._read_sweep().get("metric") or {}).get("name")

    def update_sweep(self, **fields: Any) -> None:
        """Set fields of sweep.json (``ray_experiment_path``; ``state="running"`` on resume)."""
        self._write_sweep({**self._read_sweep(), **to_plain(fields)})

    def finished_runs(self) -> list[dict[str, Any]]:
        """The records of runs.jsonl, one per ended run, in the order they ended."""
        records: dict[str, dict[str, Any]] = {}
        for record in _read_lines(self.path / RUNS):
            records[record["id"]] = record
        return list(records.values())

    def running_runs(self) -> list[dict[str, Any]]:
        """Records, as runs.jsonl would hold them, of started runs that have not ended."""
        ended = {record["id"] for record in self.finished_runs()}
        runs = [self._load_run(run_id) for run_id in sorted(self._run_ids() - ended)]
        return [_record(run.metadata["run_id"], run, "running", run.summary.get("_runtime"))
                for run in sorted(runs, key=lambda run: run.created_at or "")]

    def _run(self, run_id: str) -> _Run:
        if run_id not in self._runs:
            self._runs[run_id] = self._load_run(run_id)
        return self._runs[run_id]

    def _load_run(self, run_id: str) -> _Run:
        run_dir = self.run_dir(run_id)
        meta = _read_json(run_dir / METADATA)
        if not meta:
            raise RunLogError(f"run {run_id} was not started in {self.path} (no {METADATA})")
        return _Run(meta.get("name", run_id), meta.get("startedAt"),
                    _epoch(meta.get("attemptStartedAt")), _read_config(run_dir / CONFIG),
                    {**meta, "run_id": run_id}, _read_json(run_dir / SUMMARY))

    def _run_ids(self) -> set[str]:
        runs = self.path / "runs"
        try:
            return {entry.name for entry in os.scandir(runs)
                    if entry.is_dir() and (Path(entry.path) / METADATA).exists()}
        except OSError as exc:
            raise _io_error(runs, exc, "read") from exc

    def _close_attempt(self, run_dir: Path, prior: dict[str, Any]) -> list[dict[str, Any]]:
        """Move the files of the run's last attempt to ``attempts/<n>/``; the attempts so far."""
        attempts = list(prior.get("attempts", []))
        number = prior.get("attempt", 1)
        if len(attempts) >= number:
            return attempts  # already closed by fail_attempt
        archive = run_dir / "attempts" / str(number)
        try:
            archive.mkdir(parents=True, exist_ok=True)
            for name in (HISTORY, SUMMARY, OUTPUT):
                if (run_dir / name).exists():
                    os.replace(run_dir / name, archive / name)
        except OSError as exc:
            raise _io_error(archive, exc) from exc
        ended = "state" in prior
        return [*attempts, {"attempt": number, "startedAt": prior.get("attemptStartedAt"),
                            "endedAt": prior.get("endedAt") or _now(),
                            "state": prior.get("state", "crashed"),
                            "error": prior.get("error") if ended else _INTERRUPTED,
                            "exit_code": prior.get("exit_code"), "files": f"attempts/{number}"}]

    def _set_summary(self, run_id: str, run: _Run, values: dict[str, Any], *,
                     force: bool = False) -> None:
        """Update the summary; its file is rewritten at most every `SUMMARY_EVERY_S`.

        History lines are the record as results arrive; the summary is derived
        from them, and rewriting (and fsyncing) a whole file per step would
        make a result's cost grow with the run.  A run's end always writes it.
        """
        run.summary.update(values)
        now = time.monotonic()
        if force or now - run.summary_written >= SUMMARY_EVERY_S:
            write_atomic(self.run_dir(run_id) / SUMMARY, _dumps(run.summary))
            run.summary_written = now

    def _write_record(self, record: dict[str, Any]) -> None:
        """Append the run's line to runs.jsonl; a run that ended before gets its line replaced."""
        runs = self.path / RUNS
        if record["id"] in self._ended:
            kept = [r for r in self.finished_runs() if r["id"] != record["id"]]
            write_atomic(runs, "".join(_dumps(r) + "\n" for r in [*kept, record]))
        else:
            _append(runs, (_dumps(record) + "\n").encode(), lines=True)
        self._ended.add(record["id"])

    def _read_sweep(self) -> dict[str, Any]:
        return _read_json(self.path / "sweep.json")

    def _write_sweep(self, sweep: dict[str, Any]) -> None:
        write_atomic(self.path / "sweep.json", json.dumps(sweep, indent=2, ensure_ascii=False))


def _record(run_id: str, run: _Run, state: str, runtime: float | None,
            **ending: Any) -> dict[str, Any]:
    """A run as one line of runs.jsonl (and one row of `load`)."""
    meta = run.metadata
    return {"id": run_id, "name": run.name, "state": state, "early_stopped": False,
            "stopped_at_rung": None, "created_at": run.created_at, "runtime": runtime,
            "exit_code": None, "error": None, "warning": None, "attempts": meta.get("attempt", 1),
            "host": meta.get("host"), "node_ip": meta.get("node_ip"), **ending,
            "config": run.config, "summary": run.summary}


def _metric_warning(run: _Run, metric: str | None) -> str | None:
    """Why the sweep metric cannot rank this run, if it cannot: NaN/inf values, or none."""
    if metric is None:
        return None
    if run.nonfinite:
        return (f"logged {run.nonfinite} NaN or infinite value(s) of the sweep metric {metric!r}; "
                "the searcher and early stopping counted them as the worst value")
    if _score({"summary": run.summary}, metric) is None:
        logged = sorted(k for k in run.summary if not k.startswith("_"))
        return (f"never logged the sweep metric {metric!r} (it logged: {', '.join(logged) or 'nothing'}); "
                "the searcher counted it as failed and early stopping never judged it: "
                f"log {metric!r} or fix metric.name")
    return None


def _score(record: Mapping[str, Any], metric: str) -> float | None:
    value = record.get("summary", {}).get(metric)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _best(records: list[dict[str, Any]], metric: Mapping[str, Any] | None,
          ) -> dict[str, Any] | None:
    """``{id, name, summary: {metric: value}}`` of the best record; NaN and inf never win."""
    best = best_run(records, metric["name"], metric.get("goal", "minimize")) if metric else None
    return None if best is None else {"id": best["id"], "name": best["name"],
                                      "summary": {metric["name"]: _score(best, metric["name"])}}


def best_run(runs: RunLog | str | os.PathLike[str] | list[dict[str, Any]], metric: str,
             goal: str = "minimize") -> dict[str, Any] | None:
    """The runs.jsonl record of the ended run with the best finite ``summary[metric]``."""
    if not isinstance(runs, list):
        runs = (runs if isinstance(runs, RunLog) else RunLog.open(runs)).finished_runs()
    scored = [(score, run) for run in runs if (score := _score(run, metric)) is not None]
    if not scored:
        return None
    pick = max if goal == "maximize" else min
    return pick(scored, key=lambda pair: pair[0])[1]


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


# --- the Ray Tune callback ----------------------------------------------------------

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
    ``ray.tune.report`` result gets ``training_iteration - 1`` and Ray's clock.
    """
    row = {k: v for k, v in result.items()
           if k not in RAY_RESULT_KEYS and not k.startswith(META_KEY)}
    if "_step" not in row and "training_iteration" in result:
        row["_step"] = int(result["training_iteration"]) - 1
    if "_runtime" not in row and "time_total_s" in result:
        row["_runtime"] = result["time_total_s"]
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
    the scheduler); this one leaves its open `RunLog` out and reopens it after
    `Tuner.restore`.  The run log on disk, not the callback, says which runs
    exist and which have ended, so a restore from an older Ray checkpoint
    cannot duplicate a run.
    """

    def __init__(self, log: RunLog,
                 stopped_at_rung: Callable[[str], int | None] | None = None) -> None:
        self.path, self.sweep_id = log.path, log.sweep_id
        self.stopped_at_rung = stopped_at_rung
        self._log: RunLog | None = log
        self._attempts: dict[str, _Attempt] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "sweep_id": self.sweep_id,
                "stopped_at_rung": self.stopped_at_rung}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.path, self.sweep_id = state["path"], state["sweep_id"]
        self.stopped_at_rung = state["stopped_at_rung"]
        self._log, self._attempts = None, {}

    @property
    def log(self) -> RunLog:
        if self._log is None:
            self._log = RunLog.open(self.path)
            self.set_state({"sweep_id": self._log.sweep_id})
        return self._log

    def get_state(self) -> dict[str, Any]:
        return {"sweep_id": self.sweep_id}

    def set_state(self, state: dict[str, Any]) -> None:
        """Refuse to restore a Ray experiment into the run log of another sweep."""
        if state.get("sweep_id", self.sweep_id) != self.sweep_id:
            raise RunLogError(f"the Ray experiment belongs to sweep {state['sweep_id']}, "
                              f"but its run log {self.path} to sweep {self.sweep_id}")

    def setup(self, **info: Any) -> None:
        """Open the log before any trial starts, so a log that cannot be read fails first."""
        _ = self.log

    def on_trial_start(self, iteration: int, trials: list[Trial], trial: Trial,
                       **info: Any) -> None:
        run_id = run_id_for(self.sweep_id, trial.trial_id)
        self._attempts[trial.trial_id] = _Attempt(run_id)
        self.log.start_run(run_id, self.log.name_for(run_id), to_plain(trial.config),
                           _placement(trial))

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
            self.log.end_run(attempt.run_id, _failed_or(attempt.exit_code, "finished"),
                             exit_code=attempt.exit_code)

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial,
                       **info: Any) -> None:
        attempt = self._attempt(trial)
        del self._attempts[trial.trial_id]
        self.log.end_run(attempt.run_id, **_failure(trial, attempt.exit_code))

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
    return {"state": state if state in RUN_STATES else _failed_or(code, "crashed"),
            "error": _error_text(trial), "exit_code": code}


def _error_text(trial: Trial) -> str | None:
    """The last lines of the trial's latest failure, from Ray's error.txt."""
    text = None
    if trial.error_file and os.path.exists(trial.error_file):
        text = Path(trial.error_file).read_text(encoding="utf-8", errors="replace")
    else:
        with contextlib.suppress(OSError):
            text = trial.get_error()
    if not text:
        return None
    last = _ANSI.sub("", text).rsplit("Failure # ", 1)
    lines = last[-1].strip().splitlines()[1 if len(last) > 1 else 0:]
    return "\n".join(lines[-_ERROR_LINES:])
