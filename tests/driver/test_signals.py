"""Whatever ends a sweep's driver, no program of the sweep survives it, and the sweep can be completed.

Real drivers (`raysweep run` in a process of its own, joined to the session's
Ray), a real program that starts ``multiprocessing`` helpers (one of which
leaves the process group, as a daemon would), real signals; what is alive is
read from ``/proc``.  After each case the run log is checked whole and
``--resume`` runs the sweep to its end with every run id exactly once.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from runlog_check import check_runlog
from test_faults import (
    PROGRAMS,
    _state,
    assert_grid_ran_once,
    driver,
    pids_in,
    resume,
    run_log,
    wait_for,
)

GRID = [0.0, 0.25, 0.5, 0.75]
HELPERS = 3  # per run: the program and its two helpers
KILL_GRACE = 2


def spawner_sweep(tmp_path: Path) -> Path:
    """A grid over `GRID` of tests/programs/spawner.py; a SIGTERM makes each program linger till SIGKILL."""
    config = {"name": "spawn", "method": "grid", "metric": {"name": "loss"},
              "program": str(PROGRAMS / "spawner.py"),
              "parameters": {"x": {"values": GRID}, "steps": {"value": 16}, "sleep": {"value": 0.25},
                             "linger": {"value": 30.0},
                             "pidfile": {"value": str(tmp_path / "pids")}}}
    path = tmp_path / "spawn.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def alive(pids: list[int]) -> list[int]:
    """Those of `pids` that are still processes (zombies count as gone)."""
    return [pid for pid in pids if _state(pid) != "Z"]


def stop_mid_sweep(tmp_path: Path, signals: list[signal.Signals]) -> tuple[subprocess.Popen[str], str]:
    """Start the driver, wait until all four runs and their helpers run, send `signals`; its stderr."""
    child = driver(["run", str(spawner_sweep(tmp_path)), "--out", "out", "--cpus-per-trial", "0.5",
                    "--kill-grace", str(KILL_GRACE)], tmp_path)
    started = tmp_path / "out"

    def all_running() -> bool:  # every program and helper started, and every run's start recorded
        recorded = len(list(started.glob("*/runs/*/wandb-metadata.json")))
        return len(pids_in(tmp_path / "pids")) >= len(GRID) * HELPERS and recorded == len(GRID)

    wait_for(lambda: all_running() or child.poll() is not None, what="every run and its helpers to start")
    assert child.poll() is None, child.communicate()
    for number, signum in enumerate(signals):
        if number:
            time.sleep(0.5)
        child.send_signal(signum)
    _, err = child.communicate(timeout=120)
    return child, err


@pytest.mark.integration
@pytest.mark.parametrize("signals", [
    [signal.SIGTERM], [signal.SIGHUP], [signal.SIGINT], [signal.SIGTERM, signal.SIGTERM]],
    ids=["sigterm", "sighup", "sigint", "second-sigterm-during-the-drain"])
def test_a_signal_drains_the_sweep_leaves_nothing_running_and_resume_completes_it(
        ray_session: None, tmp_path: Path, signals: list[signal.Signals]) -> None:
    child, err = stop_mid_sweep(tmp_path, signals)
    ended_at = time.monotonic()
    assert child.returncode == 128 + signals[0], err
    name = signals[0].name
    assert f"raysweep: {name}: starting no new run; stopping 4 run(s) in flight (" in err
    assert f"then SIGKILL after {KILL_GRACE} s (--kill-grace)" in err and "Traceback" not in err
    if len(signals) == 2:
        assert f"raysweep: {name} again: killing the runs' programs now" in err
    time.sleep(max(0.0, 5 - (time.monotonic() - ended_at)))
    assert alive(pids_in(tmp_path / "pids")) == []
    path = run_log(tmp_path / "out")
    stopped = check_runlog(path, complete=False)
    assert stopped.sweep["state"] == "cancelled" and stopped.sweep["stopped_by"] == name
    assert len(stopped.unended) == len(GRID)  # cut off, not failed: --resume runs them again
    finished = resume(path, tmp_path)
    assert_grid_ran_once(finished, stopped.records)
    assert set(finished.records) == set(stopped.unended)
    assert {r["attempts"] for r in finished.records.values()} == {2}


@pytest.mark.integration
def test_a_sigkilled_driver_leaves_no_program_behind(ray_session: None, tmp_path: Path) -> None:
    child, _ = stop_mid_sweep(tmp_path, [signal.SIGKILL])
    ended_at = time.monotonic()
    assert child.returncode == -signal.SIGKILL
    pids = pids_in(tmp_path / "pids")
    assert len(pids) >= len(GRID) * HELPERS
    wait_for(lambda: not alive(pids), timeout=5 - (time.monotonic() - ended_at),
             what="the sweep's processes to end")
    path = run_log(tmp_path / "out")
    killed = check_runlog(path, complete=False)
    assert killed.sweep["state"] == "running" and len(killed.unended) == len(GRID)
    finished = resume(path, tmp_path)
    assert_grid_ran_once(finished, killed.records)
