"""Program mode end to end: `raysweep.run` on a sweep whose `program` is a W&B-style script.

Hyperband judges each logged step as it happens and stops the bad runs
mid-training, their processes gone; failing scripts are recorded as W&B
records them, and `raysweep results` shows why.  The script runs once with
the real ``wandb`` package installed in its interpreter (the reference venv)
and once where it is absent: raysweep's stand-in wins either way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

import raysweep
from raysweep.spec.load import load_spec
from raysweep.search.stopping import hyperband_milestones
from reference import reference_python

PROGRAMS = Path(__file__).resolve().parents[1] / "programs"
SLEEP = 0.1  # seconds per epoch of the curve script

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def wandb_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The agent's per-run files go under the test's directory, not the checkout."""
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))


def _curve_sweep(interpreter: str, pid_dir: Path) -> dict[str, Any]:
    """A grid over the learning rate, best first, so Hyperband's cuts are known."""
    return {
        "name": "curve", "method": "grid", "program": str(PROGRAMS / "curve.py"),
        "command": ["${env}", interpreter, "${program}", f"--pid_dir={pid_dir}", "${args}"],
        "metric": {"name": "loss", "goal": "minimize"},
        "early_terminate": {"type": "hyperband", "min_iter": 2, "eta": 2},
        "parameters": {"lr": {"values": [1.0, 0.8, 0.4, 0.2, 0.1, 0.05]}, "epochs": {"value": 6},
                       "sleep": {"value": SLEEP}},
    }


def _history(path: Path, run_id: str) -> list[dict[str, Any]]:
    lines = (path / "runs" / run_id / "wandb-history.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def _is_gone(pid: int, timeout: float = 5.0) -> bool:
    """Whether process `pid` no longer exists, allowing a run stopped as the sweep ended to finish dying."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def _real_wandb(python: str, cwd: Path) -> str | None:
    """Where `python` finds the real ``wandb`` package without raysweep's shim, or None."""
    probe = "import importlib.util as u; s = u.find_spec('wandb'); print(s and s.origin or '')"
    found = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=True, cwd=cwd,
                           env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    return found.stdout.strip() or None


def _failure_block(text: str, name: str) -> list[str]:
    """The header and indented lines `raysweep results` prints under "crashed runs:" for run `name`."""
    lines = text.split("crashed runs:\n", 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{name} ("))
    rest = lines[start + 1:]
    end = next((i for i, line in enumerate(rest) if not line.startswith("    ")), len(rest))
    return [lines[start], *rest[:end]]


@pytest.mark.parametrize("wandb_installed", [False, True], ids=["wandb_absent", "wandb_installed"])
def test_hyperband_stops_bad_program_runs_mid_training(wandb_installed: bool, ray_session: None,
                                                       tmp_path: Path) -> None:
    interpreter = reference_python() if wandb_installed else "${interpreter}"
    real = _real_wandb(reference_python() if wandb_installed else sys.executable, tmp_path)
    assert (real is not None) == wandb_installed and (real is None or "site-packages" in real)
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    sweep = _curve_sweep(interpreter, pid_dir)
    result = raysweep.run(sweep, out=tmp_path, progress=False, kill_grace=2.0)
    assert result.state == "finished"
    runs = {run["config.lr"]: run for run in result.runs.to_dict("records")}
    assert sorted(runs) == sorted(sweep["parameters"]["lr"]["values"])
    milestones = hyperband_milestones(load_spec(sweep).early_terminate)
    for lr, run in runs.items():
        history = _history(result.path, run["id"])
        assert [row["_step"] for row in history] == list(range(len(history)))
        assert [row["loss"] for row in history] == [1.0 / (1.0 + lr * (e + 1)) for e in range(len(history))]
        seen = json.loads((pid_dir / f"{run['id']}.json").read_text())
        assert (seen["wandb"], seen["python"]) == ("raysweep.trial.capture", reference_python() if wandb_installed
                                                   else sys.executable)
        assert _is_gone(seen["pid"])
        output = (result.path / "runs" / run["id"] / "output.log").read_text().splitlines()
        if run["early_stopped"]:
            assert run["state"] == "killed" and run["stopped_at_rung"] in milestones
            assert len(history) == run["stopped_at_rung"] < 6
            assert "done" not in output  # stopped mid-training
        else:
            assert run["state"] == "finished" and len(history) == 6 and output[-1] == "done"
            span = history[-1]["_timestamp"] - history[0]["_timestamp"]
            assert span > 5 * SLEEP / 2  # the rows reached Ray as they were logged, not all at the end
            assert run["summary.final_loss"] == history[-1]["loss"]
    assert not runs[1.0]["early_stopped"] and not runs[0.8]["early_stopped"]
    assert runs[0.05]["early_stopped"] and sum(run["early_stopped"] for run in runs.values()) >= 3


def test_failing_programs_are_recorded_and_the_sweep_completes(ray_session: None, tmp_path: Path) -> None:
    sweep = {"name": "faulty", "method": "grid", "program": str(PROGRAMS / "faulty.py"),
             "metric": {"name": "loss"}, "parameters": {"mode": {"values": ["ok", "crash", "abort", "silent"]}}}
    result = raysweep.run(sweep, out=tmp_path, progress=False, kill_grace=2.0, max_failures=0)
    assert result.state == "finished"
    runs = [json.loads(line) for line in (result.path / "runs.jsonl").read_text().splitlines()]
    ended = {run["config"]["mode"]: (run["state"], run["exit_code"]) for run in runs}
    assert ended.pop("ok")[0] == "finished"
    assert ended == {"crash": ("failed", 1), "abort": ("crashed", -6), "silent": ("failed", 0)}
    assert json.loads((result.path / "sweep.json").read_text())["run_count"] == 4
    names = {run["config"]["mode"]: run["name"] for run in runs}
    shown = subprocess.run([sys.executable, "-m", "raysweep.cli", "results", str(result.path)],
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    for mode, header, tail in [("crash", "failed, exit code 1", "RuntimeError: boom"),
                               ("abort", "crashed, exit code -6", "mode abort"),
                               ("silent", "failed, exit code 0", "training without logging")]:
        block = _failure_block(shown.stdout, names[mode])
        assert block[0] == f"{names[mode]} ({header})"
        assert block[-1].strip() == tail


def test_cross_validation_folds_are_side_runs_and_the_sweep_run_logs_their_mean(
        ray_session: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """W&B's cross-validation example: 5 fold workers started before the sweep run's `wandb.init`,
    each a run of its own; only the mean reaches the sweep run (history, summary, Hyperband)."""
    from raysweep import cli

    pids = tmp_path / "pids"
    pids.mkdir()
    sweep = tmp_path / "cv.yaml"
    sweep.write_text(json.dumps({
        "method": "random", "program": str(PROGRAMS / "cross_validation.py"),
        "command": ["${env}", "${interpreter}", "${program}", f"--pid_dir={pids}", "${args}"],
        "metric": {"name": "val_accuracy", "goal": "maximize"},
        "early_terminate": {"type": "hyperband", "min_iter": 1, "eta": 2},
        "parameters": {"lr": {"min": 0.01, "max": 0.1}}}))
    assert cli.main(["run", str(sweep), "--count", "3", "--out", str(tmp_path / "out")]) == 0
    assert "Traceback" not in capsys.readouterr().err
    [log] = (tmp_path / "out").iterdir()
    runs = raysweep.load(log)
    sweep_id = json.loads((log / "sweep.json").read_text())["id"]
    # Hyperband sees one value per run, the mean: a run it stops (racing the program's exit after
    # that value) is stopped at the first rung, never later as the folds' values would have it
    assert len(runs) == 3 and set(runs["state"]) <= {"finished", "killed"}
    assert all(rung == 1 for rung in runs.loc[runs["state"] == "killed", "stopped_at_rung"])
    for record in runs.to_dict("records"):
        finished = record["state"] == "finished"
        run_id = record["id"]
        folder = log / "runs" / run_id
        meta = json.loads((folder / "wandb-metadata.json").read_text())
        config = yaml.safe_load((folder / "config.yaml").read_text())
        folds = sorted((folder / "side-runs").iterdir())
        assert [f.name for f in folds] == [f"{run_id}-{k}" for k in range(5)] and (meta["exit_code"] == 0 or not finished)
        values = []
        for k, fold in enumerate(folds):
            [row] = [json.loads(line) for line in (fold / "wandb-history.jsonl").read_text().splitlines()]
            summary = json.loads((fold / "wandb-summary.json").read_text())
            side_meta = json.loads((fold / "wandb-metadata.json").read_text())
            assert row["fold"] == k and summary["val_accuracy"] == row["val_accuracy"]
            assert (side_meta["group"], side_meta["job_type"], side_meta["state"]) == (sweep_id, run_id, "finished")
            assert yaml.safe_load((fold / "config.yaml").read_text())["lr"] == config["lr"]
            values.append(row["val_accuracy"])
        history = _history(log, run_id)
        summary = json.loads((folder / "wandb-summary.json").read_text())
        assert [sorted(k for k in r if not k.startswith("_")) for r in history] == [["val_accuracy"]]
        assert summary["val_accuracy"] == pytest.approx(sum(values) / 5) == history[0]["val_accuracy"]
        assert record["summary.val_accuracy"] == summary["val_accuracy"] and (record["exit_code"] == 0 or not finished)
    started = [int(p.name.split("-")[1]) for p in pids.iterdir()]
    assert len(started) == 3 * 6 and all(_is_gone(pid) for pid in started)
