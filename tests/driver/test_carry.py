"""A program-mode run's folder carried between attempts through Ray's storage (``--storage``).

With ``--storage`` each attempt of a run works in a new folder of its own
(``$WANDB_DIR/wandb/run-<time>-<id>/files``), as on a node that does not share
the run log's filesystem: the only way the files an attempt saved reach the
next attempt is the checkpoint persisted to the storage.  The program
(tests/programs/preemptible.py) checkpoints each epoch to ``wandb.run.dir``
and goes on from it when ``wandb.run.resumed``.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from runlog_check import check_runlog
from test_faults import PROGRAMS, driver, pids_in, run_log, wait_for
from test_preemption import history, preempt_each_first_attempt

from raysweep.driver.runner import Resources, run
from raysweep.trial.carry import EVERY_ENV, SETTLE_S, STATE

EPOCHS, READY = 8, 3
SLOW = 2 * SETTLE_S + 0.5  # seconds per epoch: the folder holds still long enough to be copied


def _sweep(tmp_path: Path, killer: Any, every: float | None = None) -> tuple[dict[str, Any], Path]:
    """One preemptible run with ``--storage``, `killer(pidfile, stop)` ending its first attempt; its record.

    With `every`, the folder is looked at that often, and the program's epochs
    last long enough for it to hold still and be copied between two epochs.
    """
    pidfile = tmp_path / "pids"
    spec = {"method": "grid", "metric": {"name": "loss"}, "program": str(PROGRAMS / "preemptible.py"),
            "parameters": {"mark": {"value": True}, "epochs": {"value": EPOCHS}, "ready": {"value": READY},
                           "pidfile": {"value": str(pidfile)}, "sleep": {"value": SLOW if every else 0.3}}}
    stop = threading.Event()
    thread = threading.Thread(target=killer, args=(pidfile, stop))
    thread.start()
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.chdir(tmp_path)
            if every is not None:
                patch.setenv(EVERY_ENV, str(every))
            result = run(spec, out=tmp_path / "out", storage=str(tmp_path / "storage"), progress=False,
                         kill_grace=5, resources=Resources(cpus_per_trial=0.5))
    finally:
        stop.set()
        thread.join()
    assert result.state == "finished" and len(pids_in(pidfile)) == 1
    (record,) = check_runlog(result.path).records.values()
    return {**record, "dir": result.path / "runs" / record["id"]}, tmp_path / "wandb"


def attempts(run_dir: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The rows of the run's first attempt and of its second, from the whole run's history (each step once)."""
    rows = history(run_dir / "wandb-history.jsonl")
    assert [row["_step"] for row in rows] == list(range(len(rows)))
    last = json.loads((run_dir / "wandb-metadata.json").read_text())["attempts"][0]["last_step"]
    return rows[:last + 1], rows[last + 1:]


def _folders(wandb_dir: Path, run_id: str) -> list[Path]:
    """Each attempt's own folder, in the order the attempts began."""
    return sorted(wandb_dir.glob(f"run-*-{run_id}*"))  # run-<time>-<id>, then run-<time>-<id>-2...


def _epoch_in(folder: Path) -> int:
    return int(json.loads((folder / "files" / "checkpoint.json").read_text())["epoch"])


@pytest.mark.integration
def test_a_requeued_run_finds_the_files_its_last_attempt_saved_in_another_folder(ray_session: None,
                                                                                 tmp_path: Path) -> None:
    record, wandb_dir = _sweep(tmp_path, lambda pidfile, stop: preempt_each_first_attempt(pidfile, 1, stop))
    assert record["state"] == "finished" and record["attempts"] == 2
    first, second = attempts(record["dir"])
    assert [row["epoch"] for row in first + second] == list(range(EPOCHS))  # epochs go on from the carried file
    assert second[0]["epoch"] > 0 and all(row["resumed"] for row in second)
    assert [row["_step"] for row in first + second] == list(range(EPOCHS))
    before, after = _folders(wandb_dir, record["id"])  # two folders: nothing shared but the storage
    assert _epoch_in(before) == first[-1]["epoch"] and _epoch_in(after) == EPOCHS - 1
    assert not any((record["dir"] / "files").iterdir())  # the run log's folder is not used with --storage
    uri = json.loads((record["dir"] / "checkpoint.json").read_text())["uri"]
    assert uri.startswith(str(tmp_path / "storage")) and _epoch_in(Path(uri)) == EPOCHS - 1
    assert json.loads((Path(uri) / STATE).read_text()) == {"next_step": EPOCHS}
    assert len(list((tmp_path / "storage").glob("*/ray/*/checkpoint_*"))) == 1  # storage keeps the last one


def kill_the_worker_once(out: Path, pidfile: Path, stop: threading.Event) -> None:
    """SIGKILL the Ray worker of the first attempt (no end-of-attempt persist), once the program is ready."""
    while not pids_in(pidfile) and not stop.is_set():
        stop.wait(0.05)
    for meta in out.glob("*/runs/*/wandb-metadata.json"):
        os.kill(json.loads(meta.read_text())["pid"], signal.SIGKILL)


@pytest.mark.integration
def test_a_run_whose_worker_dies_goes_on_from_the_folder_persisted_with_its_steps(ray_session: None,
                                                                                  tmp_path: Path) -> None:
    killer = (lambda pidfile, stop: kill_the_worker_once(tmp_path / "out", pidfile, stop))
    record, wandb_dir = _sweep(tmp_path, killer, every=0.1)
    meta = json.loads((record["dir"] / "wandb-metadata.json").read_text())
    assert record["state"] == "finished" and meta["attempts"][0]["state"] == "crashed"
    first, second = attempts(record["dir"])
    before, _ = _folders(wandb_dir, record["id"])
    assert first and not any(row["resumed"] for row in first)  # its last step may die with the worker
    # The folder was persisted with a logged step, before the worker died: the retry starts after it.
    assert 0 < second[0]["epoch"] <= _epoch_in(before) + 1
    assert [row["epoch"] for row in second] == list(range(second[0]["epoch"], EPOCHS))


@pytest.mark.integration
def test_a_run_cut_off_by_a_driver_stop_resumes_in_a_later_driver_with_its_persisted_folder(
        ray_session: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(EVERY_ENV, "0.1")  # read by the drivers below
    pidfile = tmp_path / "pids"
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({
        "name": "carried", "method": "grid", "metric": {"name": "loss"}, "program": str(PROGRAMS / "preemptible.py"),
        "parameters": {"mark": {"value": False}, "epochs": {"value": EPOCHS}, "ready": {"value": READY},
                       "pidfile": {"value": str(pidfile)}, "sleep": {"value": SLOW}}}))
    storage = ["--storage", str(tmp_path / "storage")]
    first = driver(["run", str(sweep), "--out", "out", *storage], tmp_path)
    wait_for(lambda: pids_in(pidfile) or first.poll() is not None, what="the program's ready epochs")
    first.send_signal(signal.SIGTERM)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 128 + signal.SIGTERM, err
    path = run_log(tmp_path / "out")
    (run_id,) = check_runlog(path, complete=False).unended
    again = driver(["run", "--resume", str(path), *storage], tmp_path)
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    record = check_runlog(path).records[run_id]
    assert record["state"] == "finished" and record["attempts"] == 2
    run_dir = path / "runs" / run_id
    before, after = attempts(run_dir)
    assert 0 < after[0]["epoch"] <= before[-1]["epoch"] + 1 and after[0]["resumed"]  # from the persisted folder
    assert [row["epoch"] for row in after] == list(range(after[0]["epoch"], EPOCHS))
    assert len(_folders(tmp_path / "wandb", run_id)) == 2
