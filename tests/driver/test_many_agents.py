"""Several `raysweep agent` processes at once on one sweep, sharing one Ray and one run log.

Each agent is a real driver process (`raysweep agent SWEEP_ID --address <the
session's Ray>`), each run a real program; the run log is what they agree
through (`raysweep.runlog.lease`).  One agent is SIGKILLed mid-run in the last
test: its heartbeat stops, and its unended runs must be restarted once by
another agent.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from runlog_check import check_runlog

from raysweep.search.searchers import grid_points
from raysweep.spec.load import load_spec

PROGRAMS = Path(__file__).resolve().parents[1] / "programs"
AGENTS = 3

pytestmark = pytest.mark.integration


def _sweep(tmp_path: Path, config: dict[str, Any]) -> str:
    """`raysweep sweep FILE --out out`; the sweep id."""
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"program": str(PROGRAMS / "steady.py"), **config}))
    made = subprocess.run([sys.executable, "-m", "raysweep.cli", "sweep", str(path), "--out", "out"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, check=True)
    return made.stdout.strip().split()[-1]


def _agent(sweep_id: str, cwd: Path, *extra: str) -> subprocess.Popen[str]:
    """One agent on the session's Ray, one run at a time."""
    import ray

    address = ray.get_runtime_context().gcs_address
    return subprocess.Popen([sys.executable, "-m", "raysweep.cli", "agent", sweep_id, "--out", "out",
                             "--address", address, "--max-concurrent", "1", *extra],
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_all(agents: list[subprocess.Popen[str]]) -> None:
    for agent in agents:
        _, err = agent.communicate(timeout=300)
        assert agent.returncode == 0, err


def _records(path: Path) -> list[dict[str, Any]]:
    runs = path / "runs.jsonl"
    return [json.loads(line) for line in runs.read_text().splitlines()] if runs.exists() else []


def _log_dir(tmp_path: Path) -> Path:
    (path,) = (tmp_path / "out").iterdir()
    return path


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


GRID_12 = {"method": "grid", "metric": {"name": "loss"},
           "parameters": {"x": {"values": [i / 4 for i in range(4)]},
                          "steps": {"values": [1, 2, 3]}, "sleep": {"value": 0.05}}}


def test_three_agents_at_once_run_each_grid_point_once(ray_session: None, tmp_path: Path) -> None:
    sweep_id = _sweep(tmp_path, GRID_12)
    _wait_all([_agent(sweep_id, tmp_path) for _ in range(AGENTS)])
    path = _log_dir(tmp_path)
    checked = check_runlog(path)
    records = _records(path)
    points = Counter((r["config"]["x"], r["config"]["steps"]) for r in records)
    expected = {(p["x"], p["steps"]) for p in grid_points(load_spec(path / "sweep.yaml"))}
    assert len(records) == 12 and set(points) == expected and set(points.values()) == {1}
    assert len({r["id"] for r in records}) == 12 and {r["state"] for r in records} == {"finished"}
    assert checked.sweep["state"] == "finished" and checked.sweep["run_count"] == 12
    names = [r["name"] for r in records]
    assert len(set(names)) == 12  # numbered by their place among every agent's runs
    claims = [json.loads(line) for line in (path / "claims.jsonl").read_text().splitlines()]
    assert len(claims) == 12 and not list((path / "drivers").iterdir())  # all left cleanly


def test_three_agents_at_once_stop_at_the_sweeps_run_cap(ray_session: None, tmp_path: Path) -> None:
    sweep_id = _sweep(tmp_path, {"method": "random", "run_cap": 10, "metric": {"name": "loss"},
                                 "parameters": {"x": {"min": 0.0, "max": 1.0}, "steps": {"value": 1},
                                                "sleep": {"value": 0.0}}})
    _wait_all([_agent(sweep_id, tmp_path, "--seed", "3") for _ in range(AGENTS)])
    path = _log_dir(tmp_path)
    check_runlog(path)
    records = _records(path)
    assert len(records) == 10 and len({r["id"] for r in records}) == 10
    assert len({r["config"]["x"] for r in records}) == 10  # same seed, yet no agent repeats another


def test_a_killed_agents_runs_are_restarted_once_by_another(ray_session: None, tmp_path: Path) -> None:
    """SIGKILL one of 3 agents while it runs a run; that run is restarted once, the grid completes.

    The other agents adopt it if they are still starting runs when they see
    its driver dead; if they had started their last, the next agent does.
    """
    config = {**GRID_12, "parameters": {**GRID_12["parameters"], "steps": {"values": [6, 7, 8]},
                                        "sleep": {"value": 0.3}}}
    sweep_id = _sweep(tmp_path, config)
    agents = [_agent(sweep_id, tmp_path) for _ in range(AGENTS)]
    victim = agents[0]
    path = tmp_path / "out"

    def victim_runs_unended() -> set[str]:
        """Ids of runs the victim started (they have logged) that have not ended."""
        drivers = [json.loads(p.read_text()) for p in path.glob("*/drivers/*.json")]
        ids = {d["id"] for d in drivers if d["pid"] == victim.pid}
        claims = [json.loads(line) for f in path.glob("*/claims.jsonl") for line in f.read_text().splitlines()]
        ended = {r["id"] for f in path.glob("*/runs.jsonl") for r in map(json.loads, f.read_text().splitlines())}
        owned = {c["run"] for c in claims if c["driver"] in ids}
        return {run for run in owned - ended if list(path.glob(f"*/runs/{run}/wandb-history.jsonl"))}

    _wait_for(lambda: bool(victim_runs_unended()), "the first agent to be running a run")
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=60)
    log = _log_dir(tmp_path)
    in_flight = victim_runs_unended()
    ended_before = {r["id"] for r in _records(log)}
    _wait_all(agents[1:])
    _wait_all([_agent(sweep_id, tmp_path)])  # the next agent: restarts what no other one did
    checked = check_runlog(log)
    records = {r["id"]: r for r in _records(log)}
    assert len(records) == 12 and {r["state"] for r in records.values()} == {"finished"}
    assert len({(r["config"]["x"], r["config"]["steps"]) for r in records.values()}) == 12
    assert in_flight and in_flight.isdisjoint(ended_before)
    claims = [json.loads(line) for line in (log / "claims.jsonl").read_text().splitlines()]
    for run in in_flight:
        assert records[run]["attempts"] == 2  # restarted exactly once, under its own id
        assert [c["run"] for c in claims].count(run) == 2  # claimed, then adopted once
    assert checked.sweep["state"] == "finished"


def test_an_agent_stops_a_run_that_is_bad_only_beside_another_agents_runs(ray_session: None,
                                                                          tmp_path: Path) -> None:
    """Hyperband with one rung, at the first value (max_iter 3, s 1, eta 3: a run is stopped there unless
    it is the best of the values at it).  Agent A runs the grid's first point, lr 0.9 (loss 0.53 at
    the rung), for a long while; agent B, started once that value is logged, runs lr 0.05 (loss 0.95).
    B's run is the first of B's at the rung and no run has ended, so only A's live run can stop it."""
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({
        "program": str(PROGRAMS / "curve.py"), "method": "grid", "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {"lr": {"values": [0.9, 0.05]}, "epochs": {"value": 60}, "sleep": {"value": 0.25}},
        "early_terminate": {"type": "hyperband", "max_iter": 3, "s": 1, "eta": 3}}))
    made = subprocess.run([sys.executable, "-m", "raysweep.cli", "sweep", str(path), "--out", "out"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, check=True)
    sweep_id = made.stdout.strip().split()[-1]
    first = _agent(sweep_id, tmp_path, "--count", "1")
    _wait_for(lambda: any(p.read_text() for p in (tmp_path / "out").glob("*/runs/*/wandb-history.jsonl")),
              "agent A's run to log its first value")
    second = _agent(sweep_id, tmp_path, "--count", "1")
    _wait_all([second, first])
    log = _log_dir(tmp_path)
    check_runlog(log)
    records = _records(log)
    owners = {json.loads(line)["run"]: json.loads(line)["driver"]
              for line in (log / "claims.jsonl").read_text().splitlines()}
    by_lr = {r["config"]["lr"]: r for r in records}
    stopped, kept = by_lr[0.05], by_lr[0.9]
    assert owners[stopped["id"]] != owners[kept["id"]]  # two agents, one run each
    assert stopped["state"] == "killed" and stopped["early_stopped"] and stopped["stopped_at_rung"] == 1
    assert records[0]["id"] == stopped["id"]  # it ended first: A's run was still running, not remembered
    assert kept["state"] == "finished" and kept["summary"]["epoch"] == 59
