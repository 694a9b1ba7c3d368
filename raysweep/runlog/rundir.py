"""One run of the run log: its directory ``runs/<run-id>/`` and the line it ends as.

A run's directory holds the files of a W&B run (``config.yaml``,
``wandb-history.jsonl``, ``wandb-summary.json``, ``wandb-metadata.json``,
``output.log``) plus ``attempts/<n>/`` for each earlier attempt of the run (Ray
retried it, it was preempted and requeued, ``--resume`` restarted it).  As
in a resumed W&B run, the history and the summary are the whole run's: every
attempt appends its steps after the last one recorded, and keeps the summary's
keys unless it logs them again.  Everything the log keeps about a running run
can be reloaded from these files, so a new driver (``--resume``) carries on
where a killed one stopped.  When the run ends it becomes one `record`: its
line of ``runs.jsonl`` and its row of `load`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from raysweep.runlog.atomic import dumps, io_error, read_json, read_jsonl, read_text, write_atomic
from raysweep.trial.attempt import HISTORY, last_step
from raysweep.values import best_of, finite_number, plain
from raysweep.errors import RunLogError

CONFIG, SUMMARY = "config.yaml", "wandb-summary.json"
#: Each earlier attempt's own files (output, summary at its end) are in ``attempts/<n>/``.
ATTEMPTS = "attempts"
METADATA, OUTPUT = "wandb-metadata.json", "output.log"
_INTERRUPTED = "interrupted: the sweep's driver stopped while this attempt was running"


def now() -> str:
    """This instant as the run log writes timestamps (ISO 8601, UTC, ``Z``)."""
    return iso(time.time())


def iso(seconds: float) -> str:
    """Seconds since the epoch as the run log writes timestamps."""
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat().replace("+00:00", "Z")


def epoch(iso: str | None) -> float:
    """Seconds since the epoch of one of our timestamps (Python 3.10 cannot parse ``Z``)."""
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() if iso else time.time()


def config_yaml(config: Mapping[str, Any]) -> str:
    """A W&B run's ``files/config.yaml``: ``wandb_version: 1``, then ``key: {desc, value}``."""
    body = {key: {"desc": None, "value": value} for key, value in plain(config).items()}
    return yaml.safe_dump({"wandb_version": 1, **body}, sort_keys=False, allow_unicode=True)


def read_config(path: Path) -> dict[str, Any]:
    """The values of a run's ``config.yaml``."""
    loaded = yaml.safe_load(read_text(path) or "") or {}
    return {k: v["value"] for k, v in loaded.items()
            if k not in ("wandb_version", "_wandb") and isinstance(v, dict)}


@dataclass
class OpenRun:
    """What the log keeps about a run between its results (reloadable by `load_run`)."""

    name: str
    created_at: str | None
    started: float  # when the current attempt started (epoch seconds)
    config: dict[str, Any]
    metadata: dict[str, Any]
    summary: dict[str, Any] = field(default_factory=dict)
    nonfinite: int = 0  # NaN/inf values of the sweep metric in the run's history
    summary_written: float = 0.0  # time.monotonic() of the last summary file write
    last_step: int = -1  # the last ``_step`` of the run's history, all attempts (-1: none)
    ignored_steps: int = 0  # rows of this attempt left out: their step was not after the last
    step_shift: int | None = None  # added to this attempt's steps to follow the run's (None: no row yet)
    runtime_before: float = 0.0  # seconds the run's earlier attempts ran, together (`attempts_runtime`)

    def runtime(self, at: float) -> float:
        """The run's runtime at `at` (epoch seconds): its earlier attempts' and this one's so far,
        as a resumed W&B run counts it."""
        return self.runtime_before + at - self.started


def load_run(run_dir: Path) -> OpenRun:
    """The run whose directory is `run_dir`, as its files left it."""
    meta = read_json(run_dir / METADATA)
    if not meta:
        raise RunLogError(f"run {run_dir.name} was not started in {run_dir.parent.parent} "
                          f"(no {METADATA})")
    return OpenRun(meta.get("name", run_dir.name), meta.get("startedAt"),
                   epoch(meta.get("attemptStartedAt")), read_config(run_dir / CONFIG),
                   {**meta, "run_id": run_dir.name}, current_summary(run_dir),
                   last_step=last_step(run_dir),
                   runtime_before=attempts_runtime(meta.get("attempts", [])[:meta.get("attempt", 1) - 1]))


def attempts_runtime(attempts: list[dict[str, Any]]) -> float:
    """Seconds the `attempts` (records of `close_attempt`) ran, together.

    A resumed W&B run's clock starts at the runtime its earlier attempts
    reached, not at zero, and leaves out the time between them; so does a
    run's ``_runtime`` here (`OpenRun.runtime`).
    """
    return sum(max(0.0, epoch(a["endedAt"]) - epoch(a["startedAt"])) for a in attempts
               if a.get("startedAt") and a.get("endedAt"))


def current_summary(run_dir: Path) -> dict[str, Any]:
    """The summary file brought up to date with the history rows logged after it was written.

    A running run's summary file is rewritten at most once a second; its
    history lines are the record as results arrive.
    """
    summary = read_json(run_dir / SUMMARY)
    written_step = summary.get("_step", -1)
    for row in read_jsonl(run_dir / HISTORY):
        if row.get("_step", -1) > written_step:
            summary.update(row)
    return summary


def close_attempt(run_dir: Path, prior: dict[str, Any]) -> list[dict[str, Any]]:
    """Record the run's last attempt as ended; the attempts so far, that one last.

    `prior` is the attempt's metadata; without a ``state`` the attempt never
    ended (its driver was killed), and it is recorded as interrupted, ended
    when its files were last written (`last_written`).  The
    history stays where it is (the run's, all attempts): the attempt's entry
    names its steps, ``first_step`` to ``last_step`` (None when it logged
    none).  Its ``output.log`` moves to ``attempts/<n>/``, beside a copy of
    the run's summary as the attempt left it.  Each step is idempotent, so a
    driver killed half-way leaves the next one the same work to do again.
    """
    attempts = list(prior.get("attempts", []))
    number = prior.get("attempt", 1)
    if len(attempts) >= number:
        return attempts  # already closed by RunLog.fail_attempt
    archive = run_dir / ATTEMPTS / str(number)
    before = max((a["last_step"] for a in attempts if a.get("last_step") is not None), default=-1)
    steps = [row["_step"] for row in read_jsonl(run_dir / HISTORY) if row.get("_step", -1) > before]
    try:
        archive.mkdir(parents=True, exist_ok=True)
        if (run_dir / OUTPUT).exists():
            os.replace(run_dir / OUTPUT, archive / OUTPUT)
    except OSError as exc:
        raise io_error(archive, exc) from exc
    write_atomic(archive / SUMMARY, dumps(current_summary(run_dir)))
    ended = "state" in prior
    return [*attempts, {"attempt": number, "startedAt": prior.get("attemptStartedAt"),
                        "endedAt": prior.get("endedAt") or last_written(run_dir, archive, prior),
                        "state": prior.get("state", "crashed"),
                        "error": prior.get("error") if ended else _INTERRUPTED,
                        "exit_code": prior.get("exit_code"),
                        "first_step": steps[0] if steps else None,
                        "last_step": steps[-1] if steps else None,
                        "files": f"{ATTEMPTS}/{number}"}]


def last_written(run_dir: Path, archive: Path, prior: Mapping[str, Any]) -> str:
    """When an attempt that never ended was last heard of: the last write of its files.

    Not the instant it is closed: a resume may come hours later, and the
    attempt's runtime (the run's, `attempts_runtime`) would count the wait.
    """
    paths = (run_dir / HISTORY, run_dir / SUMMARY, run_dir / METADATA, archive / OUTPUT)
    stamps = [path.stat().st_mtime for path in paths if path.exists()]
    if prior.get("attemptStartedAt"):
        stamps.append(epoch(prior["attemptStartedAt"]))
    return iso(max(stamps)) if stamps else now()


def run_record(run_id: str, run: OpenRun, state: str, runtime: float | None,
           **ending: Any) -> dict[str, Any]:
    """A run as one line of runs.jsonl (and one row of `raysweep.runlog.log.load`)."""
    meta = run.metadata
    return {"id": run_id, "name": run.name, "state": state, "early_stopped": False,
            "stopped_at_rung": None, "created_at": run.created_at, "runtime": runtime,
            "exit_code": None, "error": None, "warning": None, "attempts": meta.get("attempt", 1),
            "host": meta.get("host"), "node_ip": meta.get("node_ip"), **ending,
            "config": run.config, "summary": run.summary}


def metric_warning(run: OpenRun, metric: str | None) -> str | None:
    """Why the sweep metric cannot rank this run, if it cannot: NaN/inf values, or none."""
    if metric is None:
        return None
    if run.nonfinite:
        return (f"logged {run.nonfinite} NaN or infinite value(s) of the sweep metric {metric!r}; "
                "early stopping counted them as the worst value; the searcher and the best run skip them")
    if score({"summary": run.summary}, metric) is None:
        logged = sorted(k for k in run.summary if not k.startswith("_"))
        return (f"never logged the sweep metric {metric!r} (it logged: {', '.join(logged) or 'nothing'}); "
                "the searcher counted it as failed and early stopping never judged it: "
                f"log {metric!r} or fix metric.name")
    return None


def score(record: Mapping[str, Any], metric: str) -> float | None:
    """The record's ``summary[metric]`` if it is a finite number: what ranks runs."""
    return finite_number(record.get("summary", {}).get(metric))


def best_record(records: list[dict[str, Any]], metric: str,
                goal: str = "minimize") -> dict[str, Any] | None:
    """The record with the best ``summary[metric]`` (`raysweep.values.rank_key`: NaN and inf never win)."""
    return best_of(records, lambda record: record.get("summary", {}).get(metric), goal == "maximize")


def best_entry(records: list[dict[str, Any]], metric: Mapping[str, Any] | None,
               ) -> dict[str, Any] | None:
    """sweep.json's ``best_run``: ``{id, name, summary: {metric: value}}`` of the best record."""
    if metric is None:
        return None
    best = best_record(records, metric["name"], metric.get("goal", "minimize"))
    return None if best is None else {"id": best["id"], "name": best["name"],
                                      "summary": {metric["name"]: score(best, metric["name"])}}
