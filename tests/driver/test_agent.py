"""The notebook flow, `raysweep.sweep` + `raysweep.agent`, and the CLI's `raysweep sweep` / `raysweep agent`.

The functions are W&B code: examples/wandb_tutorial.py is W&B's PyTorch sweep
tutorial, and the small ones here call ``wandb.init``/``wandb.config``/``wandb.log``
on the name ``wandb`` (raysweep's stand-in where the real package is not
installed, as the README says).  They run in real Ray workers, shipped by value
the way a notebook's functions are.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import raysweep
from raysweep.trial import capture as wandb
from raysweep.cli import main
from raysweep.search.searchers import grid_points
from raysweep.spec.load import load_spec
from raysweep.search.stopping import hyperband_milestones

REPO = Path(__file__).resolve().parents[2]
PROGRAMS = Path(__file__).resolve().parents[1] / "programs"
DIGITS_SUBSET = math.ceil(1797 / 5)  # the tutorial keeps every 5th example

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tutorial() -> Iterator[ModuleType]:
    """examples/wandb_tutorial.py, imported the way a notebook's code is: not from an installed package."""
    spec = importlib.util.spec_from_file_location("wandb_tutorial", REPO / "examples" / "wandb_tutorial.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # cloudpickle ships a module by value only if it is registered
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def _history(path: Path, run_id: str) -> list[dict[str, Any]]:
    lines = (path / "runs" / run_id / "wandb-history.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def _runs(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (path / "runs.jsonl").read_text().splitlines()]


def test_wandb_pytorch_tutorial_runs_unchanged_with_hyperband(ray_session: None, tutorial: ModuleType,
                                                               tmp_path: Path) -> None:
    sweep_id = raysweep.sweep(tutorial.sweep_config, out=tmp_path)
    result = raysweep.agent(sweep_id, function=tutorial.train, count=6, out=tmp_path, seed=1, progress=False)
    assert result.state == "finished" and result.path.name.endswith(sweep_id)
    runs = _runs(result.path)
    assert len(runs) == 6 and {run["state"] for run in runs} <= {"finished", "killed"}
    milestones = hyperband_milestones(load_spec(tutorial.sweep_config).early_terminate)
    parameters = tutorial.sweep_config["parameters"]
    epochs = parameters["epochs"]["value"]
    for run in runs:
        config = run["config"]
        assert set(config) == set(parameters) and config["epochs"] == epochs
        assert all(config[name] in p["values"] for name, p in parameters.items() if "values" in p)
        assert 0 <= config["learning_rate"] <= 0.1
        assert 32 <= config["batch_size"] <= 256 and config["batch_size"] % 8 == 0  # the sweep's value...
        history = _history(result.path, run["id"])
        losses = [row["loss"] for row in history if "loss" in row]
        batches = math.ceil(DIGITS_SUBSET / config["batch_size"])
        rows = len(losses) * (batches + 1)  # ...is what train() read from wandb.config
        if run["early_stopped"]:  # re-judged as W&B does, a run may log part of its next epoch first
            assert rows <= len(history) < rows + batches + 1
        else:
            assert len(history) == rows
        assert [row["_step"] for row in history] == list(range(len(history)))
        assert run["summary"]["loss"] == losses[-1]
        if run["early_stopped"]:
            assert run["state"] == "killed" and run["stopped_at_rung"] in milestones
            assert run["stopped_at_rung"] <= len(losses) < epochs
        else:
            assert run["state"] == "finished" and len(losses) == epochs
    assert sum(run["early_stopped"] for run in runs) >= 1


def report_x(config: dict[str, Any] | None = None) -> None:
    """A module-level W&B train function: logs the swept ``x`` twice."""
    with wandb.init(config=config):
        config = wandb.config
        for step in range(2):
            wandb.log({"loss": config.x + step, "step": step})


def test_two_agents_share_the_budget_and_never_repeat_a_grid_point(ray_session: None, tmp_path: Path) -> None:
    """run_cap 5 over a 6-point grid: agent(count=3) then agent(count=3) runs 5 distinct points in all.

    The second agent runs a closure (a function defined in a cell that uses
    the cell's variables), the first a module-level function: both ship by value.
    """
    offset = 100.0

    def report_x_plus_offset() -> None:
        with wandb.init():
            wandb.log({"loss": wandb.config.x + offset})

    config = {"name": "shared", "method": "grid", "run_cap": 5, "metric": {"name": "loss"},
              "parameters": {"x": {"values": [0, 1, 2, 3, 4, 5]}}}
    sweep_id = raysweep.sweep(config, out=tmp_path)
    first = raysweep.agent(sweep_id, report_x, count=3, out=tmp_path, progress=False)
    second = raysweep.agent(sweep_id, function=report_x_plus_offset, count=3, out=tmp_path, progress=False)
    assert first.path == second.path
    runs = _runs(second.path)
    assert len(runs) == 5 and {run["state"] for run in runs} == {"finished"}
    assert len({run["id"] for run in runs}) == 5
    xs = [run["config"]["x"] for run in runs]
    assert sorted(xs) == [point["x"] for point in grid_points(load_spec(config))][:5]
    losses = [[row["loss"] for row in _history(second.path, run["id"])] for run in runs]
    assert losses[:3] == [[x, x + 1] for x in xs[:3]]  # the first agent's runs: report_x
    assert losses[3:] == [[x + offset] for x in xs[3:]]  # the second's: the closure
    assert json.loads((second.path / "sweep.json").read_text())["run_count"] == 5
    third = raysweep.agent(sweep_id, report_x, count=3, out=tmp_path, progress=False)
    assert len(_runs(third.path)) == 5  # the budget is spent: nothing more runs


def test_cli_sweep_then_agent_runs_the_sweeps_program(ray_session: None, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """`raysweep sweep FILE` prints the id; `raysweep agent ID` (a process of its own) runs the program.

    The agent joins the session's Ray with ``--address``; the sweep file's
    ``program`` is relative to the directory both commands run in.
    """
    import ray

    shutil.copy(PROGRAMS / "curve.py", tmp_path / "train.py")
    sweep_yaml = ("program: train.py\nmethod: grid\nmetric:\n  name: loss\nparameters:\n"
                  "  lr:\n    values: [0.5, 1.0, 2.0]\n  epochs:\n    value: 3\n")
    (tmp_path / "sweep.yaml").write_text(sweep_yaml)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WANDB_DIR", raising=False)
    assert main(["sweep", "sweep.yaml", "--out", "runs"]) == 0
    sweep_id = capsys.readouterr().out.strip()
    assert re.fullmatch(r"[a-z0-9]{8}", sweep_id)
    (path,) = (tmp_path / "runs").glob(f"*-{sweep_id}")
    assert (path / "sweep.yaml").read_text() == sweep_yaml and not (path / "runs.jsonl").exists()
    address = ray.get_runtime_context().gcs_address
    agent = [sys.executable, "-m", "raysweep.cli", "agent", sweep_id, "--out", "runs", "--count", "2"]
    ran = subprocess.run([*agent, "--address", address], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert f"Ray at {address}" in ran.stdout  # joined the session's Ray, did not start one
    runs = _runs(path)
    assert sorted(run["config"]["lr"] for run in runs) == [0.5, 1.0]
    assert {run["state"] for run in runs} == {"finished"}
    for run in runs:
        losses = [row["loss"] for row in _history(path, run["id"])]
        assert losses == [1.0 / (1.0 + run["config"]["lr"] * (epoch + 1)) for epoch in range(3)]
        assert (tmp_path / "wandb" / f"sweep-{sweep_id}" / f"config-{run['id']}.yaml").is_file()
        assert (path / "runs" / run["id"] / "output.log").read_text().splitlines()[-1] == "done"
