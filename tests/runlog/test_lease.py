"""Drivers sharing a run log: claims under the lock, run_cap across drivers, dead drivers' runs adopted once.

Several `Ledger`s in one process stand for drivers in several: each has its
own lock file handle (flock is per open file), heartbeat and view of the files.
A dead driver is a real process that ended, whose heartbeat stayed behind.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import subprocess
import sys
import time
from pathlib import Path

import pytest

from raysweep.names import run_id_for
from raysweep.runlog import lease
from raysweep.runlog.lease import Ledger, objective
from raysweep.runlog.log import RunLog
from raysweep.spec.load import load_spec

SPEC = {"name": "shared", "method": "random", "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {"x": {"min": 0.0, "max": 1.0}}}


@pytest.fixture
def log(tmp_path: Path) -> RunLog:
    return RunLog.create(tmp_path, load_spec(SPEC), "swp00001")


def join(log: RunLog, **kwargs: object) -> Ledger:
    return Ledger.join(log.path, log.sweep_id, metric="loss", mode="min", **kwargs)  # type: ignore[arg-type]


def test_claims_are_seen_by_every_driver_and_run_cap_counts_them_all(log: RunLog) -> None:
    a, b = join(log, run_cap=3), join(log, run_cap=3)
    try:
        with a.locked():
            a.claim("t1", {"x": 0.1})
            a.claim("t2", {"x": 0.2})
        with b.locked():
            assert b.known("t1") and not b.known("t9") and not b.full()
            claim = b.claim("t3", {"x": 0.3})
            assert claim.number == 3 and b.full()
            with pytest.raises(Exception, match="exists already"):
                b.claim("t1", {"x": 0.5})
        with a.locked():
            assert a.full() and [c["x"] for c in a.configs] == [0.1, 0.2, 0.3]
            assert a.number(run_id_for(log.sweep_id, "t3")) == 3
        assert a.ordinal == 0 and b.ordinal == 1
    finally:
        a.leave()
        b.leave()


def _claim_many(path: str, sweep_id: str, prefix: str, n: int) -> None:
    ledger = Ledger.join(Path(path), sweep_id)
    for i in range(n):
        with ledger.locked():
            ledger.claim(f"{prefix}{i}", {"x": i})
    ledger.leave()


def test_claims_from_processes_at_once_are_all_kept_whole(log: RunLog) -> None:
    """Four processes claiming 50 runs each: 200 whole lines, numbers 1..200 each once."""
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_claim_many, args=(str(log.path), log.sweep_id, f"p{k}_", 50))
             for k in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
        assert proc.exitcode == 0
    lines = [json.loads(line) for line in (log.path / lease.CLAIMS).read_text().splitlines()]
    assert len(lines) == 200 and sorted(line["number"] for line in lines) == list(range(1, 201))
    assert len({line["run"] for line in lines}) == 200


def _dead_driver(log: RunLog) -> str:
    """A heartbeat, fresh, of a process of this host that has ended (as after SIGKILL)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    driver = "deadbeef"
    (log.path / lease.DRIVERS).mkdir(exist_ok=True)
    (log.path / lease.DRIVERS / f"{driver}.json").write_text(json.dumps(
        {"id": driver, "host": lease.HOST, "pid": proc.pid, "start": "1", "beat": time.time()}))
    with (log.path / lease.CLAIMS).open("a") as claims:
        for trial, x in (("dead1", 0.1), ("dead2", 0.2)):
            claims.write(json.dumps({"run": run_id_for(log.sweep_id, trial), "trial": trial,
                                     "driver": driver, "config": {"x": x}, "number": 1}) + "\n")
    return driver


def test_a_dead_drivers_runs_are_adopted_once(log: RunLog) -> None:
    _dead_driver(log)
    a, b = join(log), join(log)
    try:
        with a.locked():
            orphans = a.orphans()
            assert orphans == {"dead1": {"x": 0.1}, "dead2": {"x": 0.2}}
            a.adopt("dead1", orphans["dead1"])
        with b.locked():
            assert b.orphans() == {"dead2": {"x": 0.2}}  # the adopted one is a's, a is alive
            b.adopt("dead2", {"x": 0.2})
        with a.locked():
            assert a.orphans() == {} and a.owned_unended() == {run_id_for(log.sweep_id, "dead1")}
    finally:
        a.leave()
        b.leave()


def test_a_live_drivers_runs_are_not_orphans_and_stale_heartbeats_are_dead(log: RunLog,
                                                                           monkeypatch: pytest.MonkeyPatch
                                                                           ) -> None:
    a, b = join(log), join(log)
    try:
        with a.locked():
            a.claim("mine", {"x": 0.5})
        with b.locked():
            assert b.orphans() == {}
        monkeypatch.setattr(lease, "DEAD_AFTER_S", -1.0)  # every heartbeat is now too old
        with b.locked():
            assert b.orphans() == {"mine": {"x": 0.5}}
    finally:
        a.leave()
        b.leave()


def test_the_last_driver_to_retire_says_so(log: RunLog) -> None:
    a, b = join(log), join(log)
    assert not a.retire()
    assert b.retire()
    assert not list((log.path / lease.DRIVERS).iterdir())
    a.leave()
    b.leave()


def test_other_drivers_ended_runs_are_learnt_with_their_best_finite_value(log: RunLog) -> None:
    a = join(log)
    writer = RunLog.open(log.path)
    for trial, losses in (("t1", [3.0, 1.0, 2.0]), ("t2", [math.nan, math.inf]), ("t3", [])):
        run_id = run_id_for(log.sweep_id, trial)
        writer.start_run(run_id, trial, {"x": len(losses)}, {})
        for loss in losses:
            writer.append_history(run_id, {"loss": loss})
        writer.end_run(run_id, "finished")
    try:
        with a.locked():
            learnt = a.evaluated_elsewhere()
            assert learnt == [({"x": 3}, 1.0), ({"x": 2}, None), ({"x": 0}, None)]
            assert a.evaluated_elsewhere() == []  # each once
    finally:
        a.leave()
    record = {"summary": {"loss": 0.5}}
    assert objective(log.path / "runs" / run_id_for(log.sweep_id, "t1"), record, "loss", "min") == 0.5
    assert objective(log.path / "runs" / run_id_for(log.sweep_id, "t1"), record, "loss", "max") == 3.0


def test_rung_values_reach_every_driver_whole_and_a_torn_line_is_cut(log: RunLog) -> None:
    """Each driver reads only the new tail of rungs.jsonl; an infinite loss stays infinite; a line torn
    by a driver killed mid-append is never read, and the next append replaces it."""
    a, b = join(log), join(log)
    try:
        a.publish_rung("r1", 1, 0.5)
        a.publish_rung("r2", 1, math.inf)  # a NaN or inf value: the worst loss
        assert b.rung_news() == [("r1", 1, 0.5), ("r2", 1, math.inf)]
        assert a.rung_news()[:2] == [("r1", 1, 0.5), ("r2", 1, math.inf)]  # its own lines too, in order
        with (log.path / lease.RUNGS).open("ab") as f:
            f.write(b'{"run": "r3", "rung": 3, "lo')  # what a SIGKILL in the middle of an append leaves
        assert b.rung_news() == []
        a.restart_rungs("r1")
        b.publish_rung("r4", 3, 0.25)
        assert b.rung_news() == [("r1", None, pytest.approx(math.nan, nan_ok=True)), ("r4", 3, 0.25)]
        lines = [json.loads(line) for line in (log.path / lease.RUNGS).read_text().splitlines()]
        assert [line["run"] for line in lines] == ["r1", "r2", "r1", "r4"] and lines[2] == {"run": "r1",
                                                                                          "restarted": True}
        c = join(log)  # a driver joining later reads every line from the start
        assert [news[:2] for news in c.rung_news()] == [("r1", 1), ("r2", 1), ("r1", None), ("r4", 3)]
        c.leave()
    finally:
        a.leave()
        b.leave()


def test_runs_in_flight_elsewhere_are_other_drivers_claimed_runs_not_ended(log: RunLog) -> None:
    a, b = join(log), join(log)
    writer = RunLog.open(log.path)
    try:
        with b.locked():
            b.claim("t1", {"x": 1})
            b.claim("t2", {"x": 2})
        with a.locked():
            a.claim("t3", {"x": 3})
        run_id = run_id_for(log.sweep_id, "t1")
        writer.start_run(run_id, "t1", {"x": 1}, {})
        writer.end_run(run_id, "finished")
        with a.locked():
            assert a.running_elsewhere() == {run_id_for(log.sweep_id, "t2"): {"x": 2}}
        with b.locked():
            assert b.running_elsewhere() == {run_id_for(log.sweep_id, "t3"): {"x": 3}}
    finally:
        a.leave()
        b.leave()
