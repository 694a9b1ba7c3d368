"""The searchers: W&B's grid order, seeded random draws, bayes quality, checkpoints."""

from __future__ import annotations

import json
import math
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ray.tune.search import ConcurrencyLimiter, Searcher
from ray.tune.search.search_generator import SearchGenerator
from scipy import stats

from raysweep.search import searchers as search
from raysweep.spec.load import load_spec
from tests.reference import run_reference
from tests.space_check import assert_config_in_space

GRID_CONFIGS = {
    "flat": """
        method: grid
        parameters:
          b: {values: [x, y]}
          a: {values: [3, 1, 2]}
          c: {min: 1, max: 3}
    """,
    "nested": """
        method: grid
        parameters:
          wd: {values: [0.0, 0.1]}
          opt:
            parameters:
              name: {values: [sgd, adam]}
              lr: {values: [0.1, 0.01]}
              beta: {value: 0.9}
          layers: {values: [2, 1]}
          tag: {value: [1, 2]}
    """,
    "duplicates": """
        method: grid
        parameters:
          a: {values: [1, 2, 1, 3, 2]}
          b: {values: [u, v, u]}
          c: {values: [[1, 2], [1, 2], null, false, 0, true, 1]}
    """,
    "int_float_equal": """
        method: grid
        parameters:
          a: {values: [1, 1.0, 2.0, 2, 3000000.0, 3000000]}
          b: {values: [{k: 1}, {k: 1.0}]}
    """,
    "q_uniform": """
        method: grid
        parameters:
          f: {distribution: q_uniform, min: 0.1, max: 1.0, q: 0.1}
          i: {distribution: q_uniform, min: 0, max: 10, q: 3}
          d: {distribution: q_uniform, min: 0, max: 3}
          n: {distribution: int_uniform, min: -2, max: 1}
    """,
    "constants_only": """
        method: grid
        parameters:
          a: {value: 1}
          b: {parameters: {c: {value: null}}}
    """,
}

REFERENCE_GRID = """
import json, sys, yaml
from sweeps import grid_search
out = []
for text in json.load(sys.stdin):
    runs = grid_search.grid_search_next_runs([], yaml.safe_load(text), n=100000)
    out.append([{k: v["value"] for k, v in r.config.items()} for r in runs if r is not None])
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def reference_grids() -> dict[str, list[dict[str, Any]]]:
    """W&B's engine's full grid for every config, from one reference subprocess."""
    texts = [textwrap.dedent(text) for text in GRID_CONFIGS.values()]
    return dict(zip(GRID_CONFIGS, run_reference(REFERENCE_GRID, stdin=json.dumps(texts))))


@pytest.mark.parametrize("name", list(GRID_CONFIGS), ids=list(GRID_CONFIGS))
def test_grid_points_equal_reference_order_and_types(name: str, reference_grids: dict) -> None:
    ours = search.grid_points(load_spec(GRID_CONFIGS[name]))
    assert json.dumps(ours, sort_keys=True) == json.dumps(reference_grids[name], sort_keys=True)


REFERENCE_GRID_AFTER_RUNS = """
import json, sys, yaml
from sweeps import grid_search, SweepRun, RunState
text, configs = json.load(sys.stdin)
runs = [SweepRun(name=str(i), state=RunState.finished, config={k: {"value": v} for k, v in c.items()})
        for i, c in enumerate(configs)]
left = grid_search.grid_search_next_runs(runs, yaml.safe_load(text), n=100000)
print(json.dumps([{k: v["value"] for k, v in r.config.items()} for r in left if r is not None]))
"""

EXISTING_RUNS = {
    "nested": [{"layers": 2, "opt": {"beta": 0.9, "lr": 0.1, "name": "sgd"}, "tag": [1, 2], "wd": 0.0},
               {"layers": 1.0, "opt": {"beta": 0.9, "lr": 0.01, "name": "adam"}, "tag": [1, 2], "wd": 0.1},
               {"layers": 2, "opt": {"lr": 0.01}, "wd": 0.0}],
    "int_float_equal": [{"a": 1, "b": {"k": 1, "added_at_runtime": 5}}, {"a": 3e6, "b": {"k": 1.0}},
                        {"b": {"k": 1}}],
}


@pytest.mark.parametrize("name", list(EXISTING_RUNS), ids=list(EXISTING_RUNS))
def test_grid_skips_points_of_existing_runs_like_reference(name: str) -> None:
    """A resumed grid (W&B: later calls with the sweep's runs) leaves out what already ran."""
    text = textwrap.dedent(GRID_CONFIGS[name])
    runs = EXISTING_RUNS[name]
    expected = run_reference(REFERENCE_GRID_AFTER_RUNS, stdin=json.dumps([text, runs]))
    searcher = search.make_searcher(load_spec(text), seed=None, max_runs=None, exclude=runs)
    got = _drain(searcher, 100)
    assert len(got) < len(search.grid_points(load_spec(text)))
    assert json.dumps(got, sort_keys=True) == json.dumps(expected, sort_keys=True)


def test_grid_searcher_yields_points_then_finished() -> None:
    spec = load_spec(GRID_CONFIGS["nested"])
    searcher = search.make_searcher(spec, seed=None, max_runs=None)
    got = _drain(searcher, 100)
    assert got == search.grid_points(spec)
    assert searcher.suggest("again") == Searcher.FINISHED
    assert search.searcher_name(spec) == "grid (16 points)"


@pytest.mark.parametrize("method", ["grid", "random", "bayes"], ids=str)
def test_max_runs_ends_every_method(method: str) -> None:
    spec = load_spec(f"""
        method: {method}
        metric: {{name: loss}}
        parameters: {{a: {{values: [1, 2, 3, 4, 5]}}, b: {{min: 0, max: 9}}}}
    """)
    searcher = search.make_searcher(spec, seed=0, max_runs=3)
    assert len(_drain(searcher, 10)) == 3


MIXED = """
    method: {method}
    metric: {{name: loss, goal: minimize}}
    parameters:
      lr: {{distribution: log_uniform_values, min: 1.0e-5, max: 1.0}}
      layers: {{min: 1, max: 8}}
      drop: {{distribution: q_uniform, min: 0.0, max: 0.5, q: 0.05}}
      width: {{distribution: q_log_uniform_values, min: 16, max: 512, q: 16}}
      opt:
        parameters:
          name: {{values: [sgd, adam, rmsprop]}}
          momentum: {{distribution: normal, mu: 0.9, sigma: 0.02}}
          fixed: {{value: [1, 2]}}
      act: {{values: [relu, tanh, null], probabilities: [0.5, 0.5, 0.0]}}
"""


def _assert_mixed_support(config: dict[str, Any]) -> None:
    assert set(config) == {"lr", "layers", "drop", "width", "opt", "act"}
    assert isinstance(config["lr"], float) and 1e-5 <= config["lr"] <= 1.0
    assert type(config["layers"]) is int and 1 <= config["layers"] <= 8
    assert isinstance(config["drop"], float) and 0.0 <= config["drop"] <= 0.5
    assert math.isclose(config["drop"] / 0.05, round(config["drop"] / 0.05))
    assert type(config["width"]) is int and config["width"] % 16 == 0 and 16 <= config["width"] <= 512
    assert config["opt"]["name"] in {"sgd", "adam", "rmsprop"}
    assert isinstance(config["opt"]["momentum"], float) and abs(config["opt"]["momentum"] - 0.9) < 0.2
    assert config["opt"]["fixed"] == [1, 2]
    assert config["act"] in {"relu", "tanh"}


def _no_numpy(value: Any) -> bool:
    if isinstance(value, dict):
        return all(_no_numpy(v) for v in value.values())
    if isinstance(value, list):
        return all(_no_numpy(v) for v in value)
    return not isinstance(value, np.generic)


@pytest.mark.parametrize("method", ["random", "bayes"], ids=str)
def test_values_have_wandb_types_and_support(method: str) -> None:
    spec = load_spec(MIXED.format(method=method))
    searcher = search.make_searcher(spec, seed=3, max_runs=None if method == "random" else 40)  # bayes: 8 draws, GP
    for index in range(60 if method == "random" else 14):
        config = searcher.suggest(f"t{index}")
        _assert_mixed_support(config)
        assert _no_numpy(config)
        searcher.on_trial_complete(f"t{index}", {"loss": _mixed_loss(config)})


def test_random_is_reproducible_with_seed_and_samples_the_distribution() -> None:
    spec = load_spec(MIXED.format(method="random"))
    first = _drain(search.make_searcher(spec, seed=7, max_runs=400), 400)
    assert first == _drain(search.make_searcher(spec, seed=7, max_runs=400), 400)
    assert first != _drain(search.make_searcher(spec, seed=8, max_runs=400), 400)
    log_lr = [(math.log(c["lr"]) - math.log(1e-5)) / -math.log(1e-5) for c in first]
    assert stats.kstest(log_lr, "uniform").pvalue > 0.01
    counts = np.bincount([["sgd", "adam", "rmsprop"].index(c["opt"]["name"]) for c in first])
    assert stats.chisquare(counts).pvalue > 0.01


def _bowl(config: dict[str, Any]) -> float:
    """Smooth 2-D bowl with its minimum 0 at lr = 1e-2, m = 0.3 (lr searched on a log scale)."""
    return (math.log10(config["lr"]) + 2) ** 2 + (config["m"] - 0.3) ** 2


def _mixed_loss(config: dict[str, Any]) -> float:
    penalty = {"sgd": 1.0, "adam": 0.0, "rmsprop": 0.5}[config["opt"]["name"]]
    return penalty + 0.1 * (config["layers"] - 3) ** 2 + (math.log10(config["lr"]) + 2) ** 2


def _best_after(spec_text: str, loss: Callable[[dict], float], seed: int, n: int) -> float:
    """Drive a searcher directly (no Ray runtime): suggest, report, complete; the best loss seen."""
    searcher = search.make_searcher(load_spec(spec_text), seed=seed, max_runs=n)
    return min(loss(config) for config in _drain(searcher, n, loss))


def _drain(searcher: Searcher, n: int, loss: Callable[[dict], float] | None = None) -> list[dict]:
    """Up to n suggestions, each completed at once with `loss` (when given)."""
    configs = []
    for index in range(n):
        config = searcher.suggest(f"trial_{index}")
        if config == Searcher.FINISHED:
            break
        configs.append(config)
        if loss is not None:
            searcher.on_trial_result(f"trial_{index}", {"loss": loss(config)})
            searcher.on_trial_complete(f"trial_{index}", {"loss": loss(config)})
    return configs


BOWL = """
    method: {method}
    metric: {{name: loss}}
    parameters:
      lr: {{distribution: log_uniform_values, min: 1.0e-5, max: 1.0}}
      m: {{min: -1.0, max: 1.0}}
"""


def test_gp_finds_the_optimum_of_a_smooth_function_better_than_random() -> None:
    assert search.searcher_name(load_spec(BOWL.format(method="bayes"))).startswith("bayes: Optuna GPSampler")
    gp = [_best_after(BOWL.format(method="bayes"), _bowl, seed, 15) for seed in range(3)]
    rnd = [_best_after(BOWL.format(method="random"), _bowl, seed, 15) for seed in range(3)]
    assert np.median(gp) < 0.01
    assert np.median(gp) < np.median(rnd) / 5


def test_bayes_beats_random_clearly_on_a_mixed_space() -> None:
    name = search.searcher_name(load_spec(MIXED.format(method="bayes")))
    assert name.startswith("bayes: Optuna GPSampler")
    assert name.endswith(" over 2 categorical (by index), 4 unit quantile (W&B ppf), 1 integer")
    bayes = [_best_after(MIXED.format(method="bayes"), _mixed_loss, seed, 30) for seed in range(3)]
    rnd = [_best_after(MIXED.format(method="random"), _mixed_loss, seed, 30) for seed in range(3)]
    assert np.median(bayes) < np.median(rnd) / 10


@pytest.mark.parametrize("spec_text", [BOWL.format(method="bayes"), MIXED.format(method="bayes")],
                         ids=["continuous", "mixed"])
def test_bayes_survives_nan_missing_metric_and_errors(spec_text: str) -> None:
    spec = load_spec(spec_text)
    searcher = search.make_searcher(spec, seed=0, max_runs=None)
    outcomes = [{"loss": float("nan")}, {"other": 1.0}, None, {"loss": math.inf}, {"loss": 1.0}, {"loss": 2.0}]
    for index in range(12):  # 10 initial points, then the model with 2 results and 6 failures
        config = searcher.suggest(f"t{index}")
        assert_config_in_space(config, spec)  # a real suggestion, not FINISHED or None
        outcome = outcomes[index % len(outcomes)]
        searcher.on_trial_complete(f"t{index}", outcome, error=outcome is None)


def test_objective_is_the_best_value_the_trial_logged() -> None:
    spec = load_spec(BOWL.format(method="bayes").replace("{name: loss}", "{name: acc, goal: maximize}"))
    searcher = search.make_searcher(spec, seed=0, max_runs=None)
    searcher.suggest("a")
    for value in (0.2, 0.9, 0.5):
        searcher.on_trial_result("a", {"acc": value})
    searcher.on_trial_result("a", {"_raysweep": {"summary": {"acc": 0.95}, "history": False}})
    searcher.on_trial_complete("a", {"acc": 0.5})
    assert searcher.searcher.study.trials[-1].value == 0.95


RESTORE_SPECS = {
    "grid": GRID_CONFIGS["nested"],
    "random": MIXED.format(method="random"),
    "bayes_continuous": BOWL.format(method="bayes"),
    "bayes_mixed": MIXED.format(method="bayes"),
}


def _loss_for(config: dict[str, Any]) -> float:
    return _bowl(config) if "m" in config else 1.0 if "wd" in config else _mixed_loss(config)


@pytest.mark.parametrize("name", list(RESTORE_SPECS), ids=list(RESTORE_SPECS))
def test_restore_continues_the_same_sequence(name: str, tmp_path: Path) -> None:
    """Through Ray's own checkpoint walk (SearchGenerator + ConcurrencyLimiter), as Tuner.restore does."""
    spec = load_spec(RESTORE_SPECS[name])

    def generator() -> SearchGenerator:
        return SearchGenerator(ConcurrencyLimiter(search.make_searcher(spec, seed=5, max_runs=9), 2))

    original = generator()
    _drain(original.searcher, 6, _loss_for)
    pending = original.searcher.suggest("pending")
    original.save_to_dir(str(tmp_path), session_str="s")
    restored = generator()
    restored.restore_from_dir(str(tmp_path))
    for gen in (original, restored):
        gen.searcher.on_trial_complete("pending", {"loss": _loss_for(pending)})
    assert _continue(original.searcher) == _continue(restored.searcher)


def _continue(searcher: Searcher) -> list[Any]:
    out = []
    for index in range(3):
        config = searcher.suggest(f"after_{index}")
        out.append(config)
        if isinstance(config, dict):
            searcher.on_trial_complete(f"after_{index}", {"loss": _loss_for(config)})
    return out


def test_save_and_restore_files_round_trip(tmp_path: Path) -> None:
    spec = load_spec(MIXED.format(method="bayes"))
    first = search.make_searcher(spec, seed=1, max_runs=None)
    _drain(first, 12, _mixed_loss)
    first.save(str(tmp_path / "searcher.pkl"))
    second = search.make_searcher(spec, seed=99, max_runs=None)
    second.restore(str(tmp_path / "searcher.pkl"))
    assert [first.suggest(f"n{i}") for i in range(3)] == [second.suggest(f"n{i}") for i in range(3)]


@pytest.mark.integration
def test_tuner_runs_the_searcher_until_finished(ray_session: None, tmp_path: Path) -> None:
    """A real Tune run with num_samples=-1 ends on FINISHED, with errors and 2 trials at a time."""
    from ray import tune

    def diverging_bowl(config: dict[str, Any]) -> None:  # local: Ray workers cannot import this module
        if config["m"] > 0.0:  # half the space; the 2-point Latin hypercube puts one start there
            raise RuntimeError("diverged")
        for step in range(2):
            tune.report({"loss": (math.log10(config["lr"]) + 2) ** 2 + (config["m"] - 0.3) ** 2 + 0.1 / (step + 1)})

    searcher = search.make_searcher(load_spec(BOWL.format(method="bayes")), seed=0, max_runs=6)
    tuner = tune.Tuner(diverging_bowl, run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0),
                       tune_config=tune.TuneConfig(metric="loss", mode="min", search_alg=searcher,
                                                   num_samples=-1, max_concurrent_trials=2))
    results = tuner.fit()
    assert len(results) == 6
    configs = [result.config for result in results]
    assert all(set(config) == {"lr", "m"} and _no_numpy(config) for config in configs)
    assert 1 <= len(results.errors) == sum(config["m"] > 0.0 for config in configs)
    assert results.get_best_result().metrics["loss"] < 1.0


def _trial_factory(searcher: search.SweepSearcher, max_concurrent: int | None) -> search.SweepTrialGenerator:
    generator = search.SweepTrialGenerator(searcher, max_concurrent)
    generator.add_configurations({"sweep": {"run": lambda config: None, "num_samples": 4}})
    return generator


def test_cut_off_runs_start_again_first_under_their_own_trial_ids() -> None:
    spec = load_spec(BOWL.format(method="random"))
    cut_off = {"3f2a1_00001": {"lr": 0.01, "m": 0.5}, "3f2a1_00004": {"lr": 0.1, "m": -0.5}}
    generator = _trial_factory(search.make_searcher(spec, seed=0, max_runs=2, resumed=cut_off), None)
    trials = [generator.next_trial() for _ in range(4)]
    assert [t.trial_id for t in trials[:2]] == list(cut_off)
    assert [t.config for t in trials[:2]] == list(cut_off.values())
    assert len({t.trial_id for t in trials}) == 4 and trials[2].config not in cut_off.values()
    assert generator.next_trial() is None and generator.is_finished()


def test_restarted_runs_count_towards_the_concurrency_limit() -> None:
    spec = load_spec(BOWL.format(method="random"))
    searcher = search.make_searcher(spec, seed=0, max_runs=3, resumed={"old": {"lr": 0.01, "m": 0.5}})
    generator = _trial_factory(searcher, max_concurrent=1)
    assert generator.next_trial().trial_id == "old"
    assert generator.next_trial() is None  # one at a time: the restarted run holds the slot
    generator.on_trial_complete("old", {"loss": 0.3})
    assert generator.next_trial().trial_id != "old"


def test_restarted_runs_are_not_fed_to_the_model() -> None:
    """The inner searcher never proposed a cut-off run, so it is not told of its result."""
    spec = load_spec(BOWL.format(method="bayes"))
    searcher = search.make_searcher(spec, seed=0, max_runs=4, resumed={"old": {"lr": 0.01, "m": 0.5}})
    assert searcher.suggest("old") == {"lr": 0.01, "m": 0.5}
    searcher.on_trial_result("old", {"loss": 0.2})
    searcher.on_trial_complete("old", {"loss": 0.2})
    assert searcher.searcher.study.trials == []
