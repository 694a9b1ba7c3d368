"""One check of a whole run log, shared by every fault test.

Whatever went wrong during a sweep, its record must still be readable as a
whole: sweep.json parses, every history line a run wrote parses, a run's
history holds each step once, in order, across all its attempts (as a
resumed W&B run's does), its metadata lists its earlier attempts with the
steps each logged, and every run that started appears once in runs.jsonl
with a final state and a runtime that counts each of its attempts (as a
resumed W&B run's runtime does).  rungs.jsonl, where the drivers of a Hyperband sweep
share their rung values, names only runs that started and agrees with where
runs.jsonl says each run was stopped.  A sweep whose
driver died or whose disk refused writes may leave runs without an end; the
caller says whether that is allowed and gets their ids back to check.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

_HISTORY = "wandb-history.jsonl"
#: W&B's final run states and raysweep's sweep states, written out here rather than
#: taken from the product, so that a state the product adds by mistake is caught.
RUN_STATES = frozenset({"finished", "crashed", "failed", "killed"})
SWEEP_STATES = frozenset({"running", "finished", "cancelled"})


@dataclass(frozen=True)
class CheckedLog:
    """What the check found: sweep.json, the runs.jsonl records by id, runs without an end."""

    sweep: dict[str, Any]
    records: dict[str, dict[str, Any]]
    unended: frozenset[str]


def _lines(path: Path, *, torn_tail_ok: bool) -> list[dict[str, Any]]:
    """Every line of a JSON-lines file, parsed; a torn last line only where a kill may leave one."""
    assert not path.is_symlink(), f"{path} is a link"  # a test's stand-in for a full disk
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    if lines[-1]:
        assert torn_tail_ok, f"{path}: last line has no newline: {lines[-1][:80]!r}"
    return [json.loads(line) for line in lines[:-1]]


def _started_runs(path: Path, *, torn_tail_ok: bool) -> set[str]:
    """Ids of runs whose start is complete; each one's files parse."""
    started = set()
    for run_dir in sorted((path / "runs").iterdir()):
        if not (run_dir / "wandb-metadata.json").exists():
            continue  # the driver died between mkdir and the metadata: not a run yet
        meta = json.loads((run_dir / "wandb-metadata.json").read_text())
        assert meta["run_id"] == run_dir.name, meta
        yaml.safe_load((run_dir / "config.yaml").read_text())
        if (run_dir / "wandb-summary.json").exists():
            json.loads((run_dir / "wandb-summary.json").read_text())
        steps = [row["_step"] for row in _lines(run_dir / _HISTORY, torn_tail_ok=torn_tail_ok)] \
            if (run_dir / _HISTORY).exists() else []
        assert steps == sorted(set(steps)), f"{run_dir.name}: steps not once each, in order: {steps}"
        assert not list(run_dir.glob(f"attempts/*/{_HISTORY}")), f"{run_dir.name}: history split by attempt"
        _check_attempts(run_dir.name, meta, steps)
        started.add(run_dir.name)
    return started


def _check_rungs(path: Path, records: dict[str, dict[str, Any]], started: set[str], *,
                 torn_tail_ok: bool) -> None:
    """Each rung value is a whole line of a started run, its loss a number (a NaN value is written as the
    worst, Infinity); a run stopped at rung r has, since its last restart, a value at r and none above."""
    rungs_file = path / "rungs.jsonl"
    reached: dict[str, set[int]] = {}
    for line in _lines(rungs_file, torn_tail_ok=torn_tail_ok) if rungs_file.exists() else []:
        assert line["run"] in started, f"rung value of a run that never started: {line}"
        if line.get("restarted") is True:
            reached[line["run"]] = set()
            continue
        assert isinstance(line["rung"], int) and line["rung"] >= 1 and not math.isnan(line["loss"]), line
        reached.setdefault(line["run"], set()).add(line["rung"])
    for run_id, rungs in reached.items():
        rung = records.get(run_id, {}).get("stopped_at_rung")
        if rung is not None:
            assert rungs and max(rungs) == rung, f"run {run_id} stopped at {rung}, its rungs: {sorted(rungs)}"


def _check_attempts(run_id: str, meta: dict[str, Any], steps: list[int]) -> None:
    """Earlier attempts are listed 1..n-1 with their files, and their steps follow one another."""
    attempts = meta.get("attempts", [])
    assert [a["attempt"] for a in attempts] == list(range(1, meta.get("attempt", 1))), (run_id, attempts)
    last = -1
    for attempt in attempts:
        assert attempt["files"] == f"attempts/{attempt['attempt']}", (run_id, attempt)
        if attempt["first_step"] is None:
            assert attempt["last_step"] is None, (run_id, attempt)
            continue
        assert last < attempt["first_step"] <= attempt["last_step"], (run_id, attempts)
        assert {attempt["first_step"], attempt["last_step"]} <= set(steps), (run_id, attempt, steps)
        last = attempt["last_step"]


def _seconds(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def attempts_seconds(meta: dict[str, Any]) -> float:
    """How long an ended run's attempts ran, each from its start to its end, added up."""
    spans = [(a["startedAt"], a["endedAt"]) for a in meta.get("attempts", [])]
    spans.append((meta["attemptStartedAt"], meta["endedAt"]))
    assert all(_seconds(start) <= _seconds(end) for start, end in spans), spans
    return sum(_seconds(end) - _seconds(start) for start, end in spans)


def check_runlog(path: Path, *, complete: bool = True) -> CheckedLog:
    """Assert the run log at `path` is whole; `complete=False` lets started runs lack an end.

    Runs that ended appear exactly once in runs.jsonl, with a W&B final state,
    and each has a run directory; ``complete=True`` (a sweep that ran to its
    end, or was resumed to it) also requires that every started run ended.
    """
    sweep = json.loads((path / "sweep.json").read_text())
    assert sweep["state"] in SWEEP_STATES, sweep["state"]
    started = _started_runs(path, torn_tail_ok=not complete)
    runs_file = path / "runs.jsonl"
    lines = _lines(runs_file, torn_tail_ok=not complete) if runs_file.exists() else []
    ids = [record["id"] for record in lines]
    assert len(ids) == len(set(ids)), f"runs recorded twice: {sorted(i for i in ids if ids.count(i) > 1)}"
    records = {record["id"]: record for record in lines}
    assert {r["state"] for r in lines} <= RUN_STATES, [r["state"] for r in lines]
    assert set(records) <= started, f"ended runs that never started: {set(records) - started}"
    for run_id, record in records.items():
        meta = json.loads((path / "runs" / run_id / "wandb-metadata.json").read_text())
        attempt, ended = meta.get("attempt", 1), meta.get("state") in RUN_STATES
        if ended and len(meta.get("attempts", [])) < attempt:  # its last attempt is the one recorded
            assert record["attempts"] == attempt, (run_id, record["attempts"], attempt)
            assert record["runtime"] == meta["runtime"] >= attempts_seconds(meta) - 0.002, (run_id, meta)
    unended = frozenset(started - set(records))
    _check_rungs(path, records, started, torn_tail_ok=not complete)
    if complete:
        assert not unended, f"runs started but never ended: {sorted(unended)}"
    return CheckedLog(sweep, records, unended)
