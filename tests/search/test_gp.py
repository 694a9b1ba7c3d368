"""`method: bayes` (Optuna's GP): W&B's meaning of every kind, seeds, runs in flight, earlier runs, checkpoints."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from ray import cloudpickle
from scipy import stats

from raysweep.search import gp
from raysweep.search import searchers as search
from raysweep.spec.distributions import Categorical, Constant, Distribution, IntUniform, LogUniformValues, Normal
from raysweep.spec.load import load_spec

pytestmark = pytest.mark.filterwarnings("ignore:.*natural-log exponents")

EVERY_KIND = """
    method: bayes
    metric: {name: loss}
    parameters:
      uniform: {distribution: uniform, min: -2.0, max: 3.0}
      q_uniform: {distribution: q_uniform, min: 0.0, max: 1.0, q: 0.25}
      int_uniform: {distribution: int_uniform, min: -3, max: 4}
      log_uniform: {distribution: log_uniform, min: -4.0, max: 1.0}
      q_log_uniform: {distribution: q_log_uniform, min: 0.0, max: 5.0, q: 2}
      log_uniform_values: {distribution: log_uniform_values, min: 1.0e-5, max: 0.1}
      q_log_uniform_values: {distribution: q_log_uniform_values, min: 16, max: 1024, q: 16}
      inv_log_uniform: {distribution: inv_log_uniform, min: 1.0, max: 5.0}
      inv_log_uniform_values: {distribution: inv_log_uniform_values, min: 0.001, max: 1.0}
      normal: {distribution: normal, mu: 5.0, sigma: 2.0}
      q_normal: {distribution: q_normal, mu: 0.0, sigma: 3.0, q: 0.5}
      log_normal: {distribution: log_normal, mu: 0.0, sigma: 0.5}
      q_log_normal: {distribution: q_log_normal, mu: 2.0, sigma: 1.0, q: 1}
      beta: {distribution: beta, a: 2.0, b: 5.0}
      q_beta: {distribution: q_beta, a: 2.0, b: 2.0, q: 0.1}
      categorical: {values: [adam, 3, null, [1, 2]]}
      weighted: {values: [a, b, c], probabilities: [0.7, 0.3, 0.0]}
      nested:
        parameters:
          width: {distribution: int_uniform, min: 1, max: 9}
          fixed: {value: {k: 1}}
"""


def _dists() -> dict[str, Distribution]:
    return search.Params.of(load_spec(EVERY_KIND)).searched()


def _value_at(config: dict[str, Any], label: str) -> Any:
    for key in label.split("/"):
        config = config[key]
    return config


def _is_wandb_value(dist: Distribution, value: Any) -> bool:
    """`value` is one `dist` yields: W&B's type, and its ppf gives it back at the value's quantile."""
    if isinstance(dist, Categorical):
        return any(value == option and type(value) is type(option) for option, p in
                   zip(dist.values, dist.probabilities or [1.0] * len(dist.values), strict=True) if p > 0)
    if isinstance(dist, IntUniform):
        return type(value) is int and dist.min <= value <= dist.max
    expected = int if isinstance(dist, IntUniform) or isinstance(getattr(dist, "q", None), int) else float
    if type(value) is not expected:
        return False
    u = gp.from_wandb(dist, value)
    return u is not None and 0.0 <= u <= 1.0 and math.isclose(dist.ppf(u)[0], value, rel_tol=1e-6, abs_tol=1e-9)


def _loss(config: dict[str, Any]) -> float:
    """Smooth in the numeric parameters, with a best category: the GP moves away from its random start."""
    return ((config["uniform"] - 1.0) ** 2 + (math.log10(config["log_uniform_values"]) + 3) ** 2
            + (config["int_uniform"] - 2) ** 2 / 4 + (config["beta"] - 0.5) ** 2
            + (config["categorical"] != "adam") + (config["normal"] - 6.0) ** 2 / 10)


def _drive(searcher: search.SweepSearcher, n: int, prefix: str = "t") -> list[dict[str, Any]]:
    configs = []
    for index in range(n):
        configs.append(searcher.suggest(f"{prefix}{index}"))
        searcher.on_trial_complete(f"{prefix}{index}", {"loss": _loss(configs[-1])})
    return configs


def test_every_kind_is_proposed_as_a_value_wandb_could_sample() -> None:
    searcher = search.make_searcher(load_spec(EVERY_KIND), seed=4, max_runs=20)  # 4 random first
    configs = _drive(searcher, 8)
    assert searcher.searcher.engine() == "GP"  # the last 4 came from the GP
    dists = _dists()
    for config in configs:
        assert config["nested"]["fixed"] == {"k": 1}
        for label, dist in dists.items():
            assert _is_wandb_value(dist, _value_at(config, label)), (label, _value_at(config, label))
    assert len({config["uniform"] for config in configs[4:]}) > 1


def test_first_proposals_follow_wandb_distributions() -> None:
    """Until its first runs end, each proposal is a W&B random draw (here: 300 proposals, all in flight)."""
    searcher = search.make_searcher(load_spec(EVERY_KIND), seed=0, max_runs=None)
    first = [searcher.suggest(f"t{index}") for index in range(300)]
    assert stats.kstest([c["normal"] for c in first], "norm", args=(5.0, 2.0)).pvalue > 0.01
    assert stats.kstest([c["beta"] for c in first], "beta", args=(2.0, 5.0)).pvalue > 0.01
    logs = [math.log(c["inv_log_uniform_values"]) for c in first]
    assert stats.kstest(logs, "uniform", args=(math.log(0.001), -math.log(0.001))).pvalue > 0.01
    weighted = [c["weighted"] for c in first]
    assert "c" not in weighted and stats.binomtest(weighted.count("a"), 300, 0.7).pvalue > 0.01
    assert set(c["int_uniform"] for c in first) == set(range(-3, 5))


SMALL = """
    method: bayes
    metric: {name: loss}
    parameters:
      x: {min: 0.0, max: 1.0}
      lr: {distribution: q_log_uniform_values, min: 16, max: 512, q: 16}
      n: {distribution: int_uniform, min: 1, max: 4}
      opt: {values: [sgd, adam]}
"""


def _small(config: dict[str, Any]) -> float:
    return (config["x"] - 0.3) ** 2 + (config["n"] - 2) ** 2 + math.log(config["lr"]) + (config["opt"] == "sgd")


def test_the_same_seed_proposes_the_same_sweep() -> None:
    def sweep(seed: int) -> list[dict[str, Any]]:
        searcher = search.make_searcher(load_spec(SMALL), seed=seed, max_runs=20)  # 4 random first
        configs = []
        for index in range(8):
            configs.append(searcher.suggest(f"t{index}"))
            searcher.on_trial_complete(f"t{index}", {"loss": _small(configs[-1])})
        return configs

    first = sweep(11)
    assert first == sweep(11)
    assert first[4:] != sweep(12)[4:]


BOWL = """
    method: bayes
    metric: {name: loss}
    parameters:
      x: {min: 0.0, max: 1.0}
      y: {min: 0.0, max: 1.0}
"""


def _bowl(config: dict[str, Any]) -> float:
    return (config["x"] - 0.3) ** 2 + (config["y"] - 0.6) ** 2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_runs_in_flight_get_distinct_proposals_near_the_optimum(seed: int) -> None:
    """Four proposals made before any of them ends: no two the same, most still where the optimum is.

    The GP believes each run in flight ends at its expectation, so it learns
    nothing more there and moves on, but does not flee a good region.
    """
    searcher = search.make_searcher(load_spec(BOWL), seed=seed, max_runs=None)
    for index in range(12):
        config = searcher.suggest(f"t{index}")
        searcher.on_trial_complete(f"t{index}", {"loss": _bowl(config)})
    batch = [searcher.suggest(f"b{index}") for index in range(4)]
    points = np.array([[c["x"], c["y"]] for c in batch])
    distances = [np.linalg.norm(a - b) for i, a in enumerate(points) for b in points[i + 1:]]
    assert min(distances) > 1e-4
    assert np.median(np.linalg.norm(points - [0.3, 0.6], axis=1)) < 0.1


def test_an_agent_told_of_another_agents_run_in_flight_proposes_another_point() -> None:
    """Two agents with the same data and seed: the one told of the other's run in flight does not repeat it.

    Without being told (`running_elsewhere`) it proposes the very same point,
    which is what agents of one sweep did before they shared runs in flight.
    """
    def agent() -> search.SweepSearcher:
        fed = search.make_searcher(load_spec(BOWL), seed=5, max_runs=None)
        fed.learn([(config, value) for config, value in _earlier_runs()[3:]])
        return fed

    first, told, untold = agent(), agent(), agent()
    proposal = first.suggest("a0")
    assert isinstance(proposal, dict)
    told.running_elsewhere({"run-a0": proposal})
    assert untold.suggest("b0") == proposal
    other = told.suggest("b0")
    assert isinstance(other, dict)
    assert np.hypot(other["x"] - proposal["x"], other["y"] - proposal["y"]) > 1e-4
    # once that run ended it is a result like any other, and no longer believed
    told.running_elsewhere({})
    told.learn([(proposal, _bowl(proposal))])
    states = [trial.state.name for trial in told.searcher.study.trials]
    assert states.count("RUNNING") == 1 and states.count("FAIL") == 1  # b0 runs; a0's belief dropped
    assert states.count("COMPLETE") == 14


def _earlier_runs() -> list[tuple[dict[str, Any], Any]]:
    """W&B-shaped configs of a sweep's earlier runs with their metric: three failures, then results."""
    rng = np.random.default_rng(3)
    configs = [{"x": float(rng.uniform()), "y": float(rng.uniform())} for _ in range(16)]
    return [(config, [None, math.nan, math.inf][i] if i < 3 else _bowl(config)) for i, config in enumerate(configs)]


def _complete_values(searcher: gp.OptunaBayes) -> list[float]:
    return sorted(t.value for t in searcher.study.trials if t.value is not None)


def test_earlier_runs_are_fed_like_an_unbroken_sweep() -> None:
    fed = search.make_searcher(load_spec(BOWL), seed=0, max_runs=None).searcher
    runs = _earlier_runs()
    assert all(fed.add_evaluated(config, value) for config, value in runs)
    finite = [value for _, value in runs[3:]]
    assert [t.value for t in fed.study.trials] == [finite[0]] * 3 + finite  # failed ones: the worst so far
    assert fed.study.trials[5].params == {"x": pytest.approx(runs[5][0]["x"]), "y": pytest.approx(runs[5][0]["y"])}
    assert fed.engine() == "GP"
    assert not fed.add_evaluated({"x": 0.5}, 1.0)  # y missing: cannot be placed
    assert not fed.add_evaluated({"x": 0.5, "y": "high"}, 1.0)
    live = search.make_searcher(load_spec(BOWL), seed=0, max_runs=None)
    for index, (_, value) in enumerate(runs):  # the same outcomes reported by the running sweep
        live.suggest(f"r{index}")
        live.on_trial_complete(f"r{index}", None if value is None else {"loss": value}, error=value is None)
    assert _complete_values(live.searcher) == _complete_values(fed)
    assert fed.suggest("next") != live.suggest("next")  # both propose from there on (the GP phase)


@pytest.mark.parametrize("label", list(_dists()), ids=str)
def test_wandb_values_map_to_their_quantile_and_back(label: str) -> None:
    dist = _dists()[label]
    for value in dist.sample(np.random.default_rng(0), size=50):
        encoded = gp.from_wandb(dist, value)
        assert encoded is not None
        back = gp.to_wandb(dist, encoded)
        assert back == value if isinstance(dist, Categorical) else back == pytest.approx(value, rel=1e-6, abs=1e-9)
    if isinstance(dist, Categorical):
        assert gp.from_wandb(dist, "not an option") is None


def test_failures_before_any_result_join_at_the_first_result() -> None:
    searcher = search.make_searcher(load_spec(BOWL), seed=0, max_runs=None)
    for index, outcome in enumerate([None, {"loss": math.nan}, {"loss": 0.7}, {"loss": 0.2}, None]):
        searcher.suggest(f"t{index}")
        searcher.on_trial_complete(f"t{index}", outcome, error=outcome is None)
    assert _complete_values(searcher.searcher) == [0.2, 0.7, 0.7, 0.7, 0.7]  # the last: worst then


def test_a_checkpoint_with_runs_in_flight_restores_the_same_sweep() -> None:
    searcher = search.make_searcher(load_spec(EVERY_KIND), seed=2, max_runs=20)
    _drive(searcher, 5)
    in_flight = [searcher.suggest(f"f{index}") for index in range(3)]
    restored = cloudpickle.loads(cloudpickle.dumps(searcher))
    for copy in (searcher, restored):
        for index, config in enumerate(in_flight):
            copy.on_trial_complete(f"f{index}", {"loss": _loss(config)})
    assert _drive(searcher, 3, "n") == _drive(restored, 3, "n")


def test_many_ended_runs_hand_over_to_tpe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gp, "MAX_GP_TRIALS", 15)
    searcher = search.make_searcher(load_spec(BOWL), seed=0, max_runs=None)
    engines = []
    for index in range(18):
        engines.append(searcher.searcher.engine())
        config = searcher.suggest(f"t{index}")
        searcher.on_trial_complete(f"t{index}", {"loss": _bowl(config)})
    assert engines == ["random"] * 10 + ["GP"] * 6 + ["TPE"] * 2


def test_constants_are_not_searched() -> None:
    assert all(not isinstance(dist, Constant) for dist in _dists().values())


def test_from_unit_maps_quantiles_through_the_ppf_and_stays_finite() -> None:
    assert gp.from_unit(LogUniformValues(1e-4, 1e-1), 0.5) == math.exp((math.log(1e-4) + math.log(1e-1)) / 2)
    assert math.isfinite(gp.from_unit(Normal(0, 1), 0.0)) and math.isfinite(gp.from_unit(Normal(0, 1), 1.0))
    assert gp.from_unit(Normal(0, 1), 0.0) == gp.from_unit(Normal(0, 1), gp.UNIT_EPS)
