"""W&B's preemption contract, end to end: a real sweep, a real program, a real SIGTERM to it.

The program (tests/programs/preemptible.py) is written as W&B's docs advise:
its SIGTERM handler calls ``mark_preempting()`` and exits ``128 + signum``,
it checkpoints each epoch to ``wandb.run.dir`` and loads the checkpoint when
``wandb.run.resumed``.  Marked, the run is requeued and goes on from its
checkpoint under its own id; unmarked, it is ``failed`` and not requeued.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from runlog_check import check_runlog
from test_faults import PROGRAMS, driver, pids_in, run_log, wait_for

from raysweep.driver.runner import Resources, run

EPOCHS, READY = 8, 3


def history(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def preempt_each_first_attempt(pidfile: Path, runs: int, stop: threading.Event) -> None:
    """SIGTERM each program once, when it says it is ready (after `READY` epochs)."""
    sent: set[int] = set()
    while len(sent) < runs and not stop.is_set():
        for pid in set(pids_in(pidfile)) - sent:
            os.kill(pid, signal.SIGTERM)
            sent.add(pid)
        stop.wait(0.05)


@pytest.fixture(scope="module")
def preempted(ray_session: None, tmp_path_factory: pytest.TempPathFactory) -> dict[bool, dict[str, Any]]:
    """A grid of two runs, with and without mark_preempting, each sent SIGTERM mid-run: mark -> record."""
    tmp_path = tmp_path_factory.mktemp("preempt")
    pidfile = tmp_path / "pids"
    spec = {"method": "grid", "metric": {"name": "loss"}, "program": str(PROGRAMS / "preemptible.py"),
            "parameters": {"mark": {"values": [True, False]}, "epochs": {"value": EPOCHS},
                           "ready": {"value": READY}, "pidfile": {"value": str(pidfile)}}}
    stop = threading.Event()
    killer = threading.Thread(target=preempt_each_first_attempt, args=(pidfile, 2, stop))
    killer.start()
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.chdir(tmp_path)
            result = run(spec, out=tmp_path / "out", progress=False, kill_grace=5,
                         resources=Resources(cpus_per_trial=0.5))
    finally:
        stop.set()
        killer.join()
    checked = check_runlog(result.path)
    assert result.state == "finished" and len(pids_in(pidfile)) == 2
    # Without --storage the run's folder is used in place in the run log: nothing copied, no Ray checkpoint.
    assert not list(result.path.glob("ray*/*/checkpoint_*")) and not list((tmp_path / "wandb").glob("run-*"))
    return {r["config"]["mark"]: {**r, "dir": result.path / "runs" / r["id"]} for r in checked.records.values()}


@pytest.mark.integration
def test_a_preempted_run_is_requeued_and_resumes_from_its_checkpoint(preempted: dict[bool, Any]) -> None:
    record = preempted[True]
    assert record["state"] == "finished" and record["attempts"] == 2
    rows = history(record["dir"] / "wandb-history.jsonl")  # the whole run's, as W&B's resumed run has it
    assert [row["_step"] for row in rows] == list(range(EPOCHS))  # the steps go on; each once, in order
    assert [row["epoch"] for row in rows] == list(range(EPOCHS))  # resumed from its checkpoint, not restarted
    meta = json.loads((record["dir"] / "wandb-metadata.json").read_text())
    (earlier,) = meta["attempts"]
    assert earlier["state"] == "preempted" and earlier["exit_code"] == 128 + signal.SIGTERM
    assert "was preempted (mark_preempting) and is requeued" in earlier["error"]
    first, second = rows[:earlier["last_step"] + 1], rows[earlier["last_step"] + 1:]
    assert earlier["first_step"] == 0 and len(first) >= READY and not any(row["resumed"] for row in first)
    assert all(row["resumed"] and row["wandb_resume"] == "allow" for row in second)
    assert {row["started_at_step"] for row in second} == {len(first)}
    assert (record["dir"] / "attempts" / "1" / "wandb-summary.json").exists()
    assert not list(record["dir"].glob("attempts/*/wandb-history.jsonl"))
    summary = json.loads((record["dir"] / "wandb-summary.json").read_text())
    assert summary["_step"] == EPOCHS - 1 and record["summary"]["epoch"] == EPOCHS - 1
    assert json.loads((record["dir"] / "files" / "checkpoint.json").read_text()) == {"epoch": EPOCHS - 1}


@pytest.mark.integration
def test_a_run_killed_without_mark_preempting_fails_and_is_not_requeued(preempted: dict[bool, Any]) -> None:
    record = preempted[False]
    assert (record["state"], record["exit_code"], record["attempts"]) == ("failed", 128 + signal.SIGTERM, 1)
    assert "program exited with code 143" in record["error"]
    assert len(history(record["dir"] / "wandb-history.jsonl")) < EPOCHS


@pytest.mark.integration
def test_a_function_run_cut_off_by_a_driver_stop_resumes_from_its_checkpoint(ray_session: None,
                                                                              tmp_path: Path) -> None:
    shutil.copy(PROGRAMS / "checkpointing.py", tmp_path)
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({"name": "ckpt", "method": "grid", "metric": {"name": "loss"},
                                     "parameters": {"epochs": {"value": 12}, "sleep": {"value": 0.4}}}))
    child = driver(["run", str(sweep), "--function", "checkpointing:train", "--out", "out"], tmp_path)

    def logged() -> int:
        return sum(len(history(p)) for p in (tmp_path / "out").glob("*/runs/*/wandb-history.jsonl"))

    wait_for(lambda: logged() >= 3 or child.poll() is not None, what="three epochs")
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 128 + signal.SIGTERM, err
    path = run_log(tmp_path / "out")
    stopped = check_runlog(path, complete=False)
    (run_id,) = stopped.unended
    again = driver(["run", "--resume", str(path), "--function", "checkpointing:train"], tmp_path)
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    finished = check_runlog(path)
    assert finished.records[run_id]["state"] == "finished" and finished.records[run_id]["attempts"] == 2
    rows = history(path / "runs" / run_id / "wandb-history.jsonl")
    assert [row["_step"] for row in rows] == list(range(12))  # every step of both attempts, once
    assert [row["epoch"] for row in rows] == list(range(12))
    (cut_off,) = json.loads((path / "runs" / run_id / "wandb-metadata.json").read_text())["attempts"]
    before, after = rows[:cut_off["last_step"] + 1], rows[cut_off["last_step"] + 1:]
    assert cut_off["first_step"] == 0 and len(before) >= 3
    assert after[0]["start_epoch"] == before[-1]["epoch"] + 1 > 0  # from its last checkpoint
