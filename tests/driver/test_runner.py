"""Integration tests of `raysweep.run` on a real (shared) Ray instance."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import raysweep
from raysweep.driver.runner import Resources, Settings, as_launched, run, run_budget, searcher_seed
from raysweep.driver.settings import UNNAMED, FunctionTarget, function_record
from raysweep.errors import RaysweepError
from raysweep.spec.load import load_spec
from raysweep.search.stopping import hyperband_milestones

pytestmark = pytest.mark.integration

QUADRATIC = {
    "name": "quadratic",
    "method": "random",
    "metric": {"name": "loss", "goal": "minimize"},
    "parameters": {
        "x": {"distribution": "uniform", "min": -2.0, "max": 2.0},
        "shift": {"parameters": {"y": {"values": [-1, 0, 1]}}},
    },
}


def quadratic(config):
    """Loss (x - 0.5)^2 + y^2, reported over 3 steps: optimum at x=0.5, y=0."""
    for step in range(3):
        raysweep.log({"loss": (config.x - 0.5) ** 2 + config.shift.y ** 2 + 0.1 / (step + 1)})


def test_budget_takes_count_run_cap_and_grid_size():
    grid = load_spec({"method": "grid", "run_cap": 5,
                      "parameters": {"a": {"values": [1, 2, 3]}, "b": {"values": [1, 2]}}})
    assert run_budget(grid, None) == 5
    assert run_budget(grid, 2) == 2
    assert run_budget(load_spec({**grid.raw, "run_cap": 50}), None) == 6
    random = load_spec(QUADRATIC)
    assert run_budget(random, None) is None
    assert run_budget(random, 7) == 7


def test_a_resumed_driver_completes_what_the_stopped_one_planned():
    launched = {"planned_runs": 10, "seed": 7,
                "resources": {"cpus_per_trial": 2.0, "gpus_per_trial": 0.5, "max_concurrent": 3}}
    resumed = as_launched(Settings(), launched, ended=4, resources_given=False)
    assert (resumed.count, resumed.seed) == (6, 7)
    assert resumed.resources == Resources(2.0, 0.5, 3)
    given = as_launched(Settings(count=2, seed=1, resources=Resources(1.0)), launched, ended=4,
                        resources_given=True)
    assert (given.count, given.seed, given.resources) == (2, 1, Resources(1.0))
    assert as_launched(Settings(), {"planned_runs": None}, ended=4, resources_given=False).count is None
    assert as_launched(Settings(), launched, ended=12, resources_given=False).count == 0


def test_a_resumed_driver_runs_the_function_sweep_json_names_unless_given(tmp_path):
    (tmp_path / "named_train.py").write_text("def main(config):\n    return {'loss': config['x']}\n")
    launched = {"function": {"target": "named_train:main", "directory": str(tmp_path)}}
    resumed = as_launched(Settings(), launched, ended=0, resources_given=False)
    assert resumed.function == FunctionTarget("named_train:main", str(tmp_path))
    assert resumed.function.load()({"x": 3}) == {"loss": 3}  # imported from where it was named
    given = FunctionTarget.parse("json:dumps")
    assert as_launched(Settings(function=given), launched, ended=0, resources_given=False).function == given
    assert as_launched(Settings(), launched, ended=0, resources_given=False,
                       function_given=True).function is None  # a function given in Python
    assert as_launched(Settings(), {}, ended=0, resources_given=False).function is None  # the program


def test_a_recorded_function_that_no_longer_imports_or_has_no_name_is_a_clear_error(tmp_path):
    gone = {"function": {"target": "moved_away:main", "directory": str(tmp_path)}}
    with pytest.raises(RaysweepError) as error:
        as_launched(Settings(), gone, ended=0, resources_given=False).function.load()
    assert str(error.value).startswith(f"the sweep's function moved_away:main (recorded in sweep.json, "
                                       f"imported from {tmp_path}) no longer imports: cannot import moved_away")
    assert str(error.value).endswith("pass --function module:function")
    with pytest.raises(RaysweepError, match=r"^this sweep ran a function handed over in Python .* "
                                            r"give it again, as --function module:function"):
        as_launched(Settings(), {"function": UNNAMED}, ended=0, resources_given=False)
    assert function_record(None, programs=True) is None and function_record(None, programs=False) == UNNAMED


def test_later_drivers_of_a_seeded_sweep_draw_other_seeds():
    assert searcher_seed(None, 5) is None and searcher_seed(3, 0) == 3
    assert len({searcher_seed(3, n) for n in range(1, 50)} | {3}) == 50
    assert searcher_seed(3, 4) == searcher_seed(3, 4)


def test_a_second_driver_with_the_same_seed_proposes_new_configs(ray_session, tmp_path):
    first = run(QUADRATIC, quadratic, count=3, out=tmp_path, seed=1, progress=False)
    second = run(None, quadratic, count=3, attach=first.path, seed=1, progress=False)
    assert len(second.runs) == 6 and second.runs["config.x"].nunique() == 6


def test_random_sweep_finds_the_optimum_and_logs_every_run(ray_session, tmp_path):
    result = run(QUADRATIC, quadratic, count=24, out=tmp_path, seed=1, progress=False)
    assert result.state == "finished"
    assert len(result.runs) == 24
    assert set(result.runs["state"]) == {"finished"}
    best = result.best_run
    assert best["config.shift.y"] == 0
    assert abs(best["config.x"] - 0.5) < 0.5
    assert best["summary.loss"] == pytest.approx(
        (best["config.x"] - 0.5) ** 2 + 0.1 / 3)
    sweep = json.loads((result.path / "sweep.json").read_text())
    assert sweep["state"] == "finished" and sweep["run_count"] == 24


def test_grid_runs_each_point_once(ray_session, tmp_path):
    spec = {"method": "grid", "metric": {"name": "loss"},
            "parameters": {"x": {"values": [0.0, 0.5, 1.0]}, "shift": {"parameters": {
                "y": {"distribution": "int_uniform", "min": -1, "max": 1}}}}}
    result = run(spec, quadratic, out=tmp_path, progress=False)
    points = sorted(zip(result.runs["config.x"], result.runs["config.shift.y"]))
    assert points == sorted((x, y) for x in (0.0, 0.5, 1.0) for y in (-1, 0, 1))


def test_run_cap_caps_runs(ray_session, tmp_path):
    result = run({**QUADRATIC, "run_cap": 3}, quadratic, count=10, out=tmp_path, progress=False)
    assert len(result.runs) == 3


def test_metric_target_ends_the_sweep(ray_session, tmp_path):
    spec = {**QUADRATIC, "method": "grid",
            "metric": {"name": "loss", "goal": "minimize", "target": 0.2},
            "parameters": {"x": {"values": [0.5, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]},
                           "shift": {"parameters": {"y": {"value": 0}}}}}
    result = run(spec, quadratic, out=tmp_path, progress=False,
                 resources=Resources(max_concurrent=1))
    assert result.state == "finished"
    assert result.runs["config.x"].tolist() == [0.5]  # the first grid point reaches 0.1 at its first step
    assert result.runs["summary.loss"].tolist() == [pytest.approx(0.1)]


def slow_or_on_target(config):
    """x=0.5 reaches the target at its 3rd step; any other x would log 400 steps, 20 s in all."""
    import time

    for step in range(3 if config.x == 0.5 else 400):
        time.sleep(0.3 if config.x == 0.5 else 0.05)
        raysweep.log({"loss": 0.1 if config.x == 0.5 and step == 2 else 1.0 + config.x})


def test_metric_target_stops_the_runs_still_going(ray_session, tmp_path):
    spec = {**QUADRATIC, "method": "grid", "metric": {"name": "loss", "goal": "minimize", "target": 0.2},
            "parameters": {"x": {"values": [0.5, 5.0, 6.0]}}}
    result = run(spec, slow_or_on_target, out=tmp_path, progress=False)
    runs = result.runs.set_index("config.x")
    assert result.state == "finished"
    assert runs.index.tolist() == [0.5, 5.0]  # the third grid point never started
    assert runs.loc[0.5, "summary._step"] == 2
    assert runs.loc[5.0, "summary._step"] < 399  # stopped mid-way, not run to its end
    assert (runs.loc[5.0, "state"], runs.loc[5.0, "error"]) == ("killed", None)  # stopped, not crashed


def linear_curve(config):
    """Loss falls by the same amount every epoch, so the rank of runs never changes."""
    for epoch in range(12):
        raysweep.log({"loss": config.x + 1.0 / (epoch + 1), "epoch": epoch})


def test_hyperband_stops_runs_at_the_milestones(ray_session, tmp_path):
    spec = load_spec({
        "method": "grid", "metric": {"name": "loss", "goal": "minimize"},
        "early_terminate": {"type": "hyperband", "min_iter": 2, "eta": 2},
        "parameters": {"x": {"values": [float(i) for i in range(8)]}},
    })
    result = run(spec, linear_curve, out=tmp_path, progress=False)
    milestones = hyperband_milestones(spec.early_terminate)
    stopped = result.runs[result.runs["early_stopped"] == True]  # noqa: E712
    assert len(stopped) >= 3
    for run_dir_id, rung in zip(stopped["id"], stopped["stopped_at_rung"]):
        history = (result.path / "runs" / run_dir_id / "wandb-history.jsonl").read_text().splitlines()
        assert len(history) in milestones
        assert len(history) == rung
    assert set(stopped["state"]) == {"killed"}
    best = result.runs.sort_values("summary.loss").iloc[0]
    assert best["config.x"] == 0.0 and best["state"] == "finished"


def failing(config):
    raysweep.log({"loss": config.x})
    if config.x > 0:
        raise RuntimeError("diverged")


def test_a_crashing_run_is_recorded_and_the_sweep_goes_on(ray_session, tmp_path):
    spec = {"method": "grid", "metric": {"name": "loss"},
            "parameters": {"x": {"values": [-1.0, 1.0, -2.0]}}}
    result = run(spec, failing, out=tmp_path, progress=False)
    states = dict(zip(result.runs["config.x"], result.runs["state"]))
    assert states == {-1.0: "finished", 1.0: "crashed", -2.0: "finished"}
    crashed = result.runs[result.runs["state"] == "crashed"].iloc[0]
    assert "diverged" in crashed["error"]


def test_results_table_lists_runs_best_first(ray_session, tmp_path):
    from raysweep.results.table import results_table

    result = run({**QUADRATIC, "run_cap": 4}, quadratic, out=tmp_path, seed=3, progress=False)
    table = results_table(result.runs, result.spec).splitlines()
    assert table[0].split()[:3] == ["run", "state", "loss"]
    losses = [float(line.split()[2]) for line in table[1:]]
    assert losses == sorted(losses) and len(losses) == 4
    assert Path(result.path).name.startswith("quadratic-")


def test_a_run_failing_on_its_own_is_not_retried(ray_session, tmp_path):
    """--max-failures retries lost nodes, not training code that raised (W&B never re-runs those)."""
    spec = {"method": "grid", "metric": {"name": "loss"}, "parameters": {"x": {"values": [1.0]}}}
    result = run(spec, failing, out=tmp_path, progress=False, max_failures=2)
    [run_id] = result.runs["id"]
    assert result.runs["state"].tolist() == ["crashed"]
    history = (result.path / "runs" / run_id / "wandb-history.jsonl").read_text().splitlines()
    assert len(history) == 1
    metadata = json.loads((result.path / "runs" / run_id / "wandb-metadata.json").read_text())
    assert not metadata.get("attempts")


def test_run_leaves_the_environment_as_it_found_it(ray_session, tmp_path, monkeypatch):
    """The variables a sweep sets for Ray (its pending-trial cap sized to this cluster) go when it returns."""
    from raysweep.driver.cluster import _RAY_ENV_DEFAULTS, PENDING_ENV

    for key in (*_RAY_ENV_DEFAULTS, PENDING_ENV):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("TUNE_DISABLE_STRICT_METRIC_CHECKING", "0")  # the user's own value stays
    before = dict(os.environ)
    result = run(QUADRATIC, quadratic, count=1, out=tmp_path, progress=False)
    assert result.state == "finished" and len(result.runs) == 1
    assert dict(os.environ) == before
