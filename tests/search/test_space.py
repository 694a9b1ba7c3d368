"""raysweep.search.space: every W&B distribution as a Ray domain that samples what W&B's engine samples.

For each case of test_distributions.CASES, N draws through the Ray domain (seeded
random_state) are compared with N seeded draws of the reference engine: two-sample
KS for continuous kinds, chi-square on value counts for discrete ones, plus bounds,
types and quantisation.
"""

from __future__ import annotations

import json
import math
import pickle
from collections import Counter
from typing import Any

import numpy as np
import pytest
from ray.tune.search import sample as ray_sample
from ray.tune.search.basic_variant import BasicVariantGenerator
from scipy import stats
from tests.spec.test_distributions import CASES, N_SAMPLES, distribution_for, engine_results

from raysweep.spec.distributions import (
    Beta,
    Categorical,
    Constant,
    Distribution,
    IntUniform,
    InvLogUniformValues,
    LogNormal,
    QNormal,
    QUniform,
    Uniform,
)
from raysweep.search.space import WandbDomain, describe, param_space, search_space, to_domain
from raysweep.spec.load import load_spec

P_MIN = 1e-3  # fixed seeds: a pass is deterministic; a wrong distribution gives p far below this
RAY_SEED = 12345
# Kinds Ray samples with its own primitive; every other non-constant kind gets a WandbDomain.
RAY_PRIMITIVES = {"categorical", "int_uniform", "uniform", "log_uniform", "log_uniform_values",
                  "inv_log_uniform", "inv_log_uniform_values", "normal"}
NUMERIC = [case_id for case_id, config in CASES.items() if "value" not in config and "values" not in config]


def ray_draws(dist: Distribution, n: int = N_SAMPLES) -> list[Any]:
    """n draws through the Ray domain, the way a searcher asks for them (seeded)."""
    domain = to_domain(dist)
    if not isinstance(domain, ray_sample.Domain):
        return [domain] * n
    draws = domain.sample(size=n, random_state=np.random.default_rng(RAY_SEED))
    return draws.tolist() if isinstance(draws, np.ndarray) else list(draws)


def chi_square_pvalue(ours: list[Any], theirs: list[Any]) -> float:
    """Chi-square homogeneity test on value counts; values rarer than 20 in all are pooled."""
    counts = [Counter(json.dumps(v) for v in sample) for sample in (ours, theirs)]
    keys = sorted(set(counts[0]) | set(counts[1]))
    common = [k for k in keys if counts[0][k] + counts[1][k] >= 20]
    table = [[c[k] for k in common] + [sum(c[k] for k in keys if k not in common)] for c in counts]
    table = np.array(table)[:, np.array(table).sum(axis=0) > 0]
    if table.shape[1] < 2:  # a single category on both sides: identical
        return 1.0
    return float(stats.chi2_contingency(table).pvalue)


@pytest.mark.parametrize("case_id", list(CASES), ids=list(CASES))
def test_ray_domain_samples_the_engine_distribution(case_id: str) -> None:
    dist, engine = distribution_for(case_id), engine_results()[case_id]
    ours, theirs = ray_draws(dist), engine["draws"]
    assert len(ours) == len(theirs) >= 2000
    if dist.continuous:
        assert stats.ks_2samp(ours, theirs).pvalue > P_MIN
    else:
        assert chi_square_pvalue(ours, theirs) > P_MIN
    if isinstance(dist, Constant):
        assert all(v == dist.value for v in ours)


@pytest.mark.parametrize("case_id", list(CASES), ids=list(CASES))
def test_single_draws_have_the_engine_types(case_id: str) -> None:
    domain = to_domain(distribution_for(case_id))
    if not isinstance(domain, ray_sample.Domain):
        draws = [domain]
    else:
        rng = np.random.default_rng(RAY_SEED)
        draws = [domain.sample(random_state=rng) for _ in range(200)]
    assert {type(v).__name__ for v in draws} <= set(engine_results()[case_id]["draw_types"])


@pytest.mark.parametrize("case_id", NUMERIC, ids=NUMERIC)
def test_bounds_and_quantisation(case_id: str) -> None:
    dist = distribution_for(case_id)
    ours, theirs = ray_draws(dist), engine_results()[case_id]["draws"]
    low, high = dist.support()
    assert low <= min(ours) and max(ours) <= high
    assert low <= min(theirs) and max(theirs) <= high
    q = getattr(dist, "q", None)
    if q is not None:
        steps = np.array(ours) / q
        assert np.allclose(steps, np.round(steps), atol=1e-9)
        assert {type(v) for v in ours} == {int if isinstance(q, int) else float}


def test_int_uniform_includes_max() -> None:
    counts = Counter(ray_draws(IntUniform(1, 3), 3000))
    assert set(counts) == {1, 2, 3}
    assert stats.chisquare(list(counts.values())).pvalue > P_MIN


def test_q_uniform_passes_max_and_halves_edges_like_wandb() -> None:
    counts = Counter(ray_draws(QUniform(0, 11, 3), 6000))
    assert set(counts) == {0, 3, 6, 9, 12}  # 12 > max, as W&B samples it
    expected = np.array([1.5, 3, 3, 3, 0.5]) / 11 * 6000  # widths of the rounding cells within [0, 11]
    assert stats.chisquare([counts[v] for v in (0, 3, 6, 9, 12)], expected).pvalue > P_MIN


@pytest.mark.parametrize("case_id", list(CASES), ids=list(CASES))
def test_domain_kind_and_carried_distribution(case_id: str) -> None:
    dist = distribution_for(case_id)
    domain = to_domain(dist)
    if isinstance(dist, Constant):
        assert domain == dist.value
        return
    assert domain.distribution is dist
    is_primitive = CASES[case_id].get("distribution", dist.name) in RAY_PRIMITIVES and (
        not isinstance(dist, Categorical) or dist.probabilities is None)
    assert isinstance(domain, WandbDomain) is not is_primitive


@pytest.mark.parametrize(
    ("dist", "domain_cls"),
    [(QUniform(0, 10, 2), ray_sample.Integer), (QUniform(0.0, 1.0, 0.1), ray_sample.Float),
     (QNormal(), ray_sample.Float), (LogNormal(), ray_sample.Float), (Beta(2, 2), ray_sample.Float),
     (Categorical(["a", "b"], [0.1, 0.9]), ray_sample.Categorical)],
    ids=["q_int", "q_float", "q_default", "log_normal", "beta", "weighted_categorical"],
)
def test_custom_domains_are_ray_domain_types(dist: Distribution, domain_cls: type) -> None:
    domain = to_domain(dist)
    assert isinstance(domain, domain_cls) and isinstance(domain, WandbDomain)
    assert domain.distribution is dist and not domain.is_function() and not domain.is_grid()


def test_nested_parameters_give_nested_config_with_constants() -> None:
    tree = {"opt": {"name": Categorical(["adam"]), "lr": Uniform(0.1, 0.2),
                    "sched": {"gamma": Constant(0.5)}}, "epochs": Constant(3)}
    space = param_space(tree)
    assert list(space) == ["epochs", "opt"] and list(space["opt"]) == ["lr", "name", "sched"]
    config = variant_configs(space, seed=0, n=1)[0]
    assert config["epochs"] == 3 and config["opt"]["name"] == "adam"
    assert config["opt"]["sched"] == {"gamma": 0.5}
    assert 0.1 <= config["opt"]["lr"] <= 0.2


def variant_configs(space: dict[str, Any], seed: int, n: int) -> list[dict[str, Any]]:
    """n trial configs from Ray's BasicVariantGenerator (what `tune.Tuner` random search uses)."""
    generator = BasicVariantGenerator(random_state=seed)
    generator.add_configurations({"exp": {"run": lambda config: None, "config": space, "num_samples": n}})
    configs = []
    while (trial := generator.next_trial()) is not None:
        configs.append(trial.config)
    return configs


def test_basic_variant_generator_samples_custom_domains_reproducibly() -> None:
    space = param_space({"q": QUniform(0, 11, 3), "w": Categorical(["x", "y"], [0.25, 0.75]),
                         "b": Beta(2.0, 5.0), "n": QNormal(0, 2, 1)})
    first, again, other = (variant_configs(space, seed, 300) for seed in (3, 3, 4))
    assert first == again and first != other
    assert {c["q"] for c in first} <= {0, 3, 6, 9, 12} and all(type(c["n"]) is int for c in first)
    assert all(0.0 <= c["b"] <= 1.0 for c in first)
    weighted = Counter(c["w"] for c in first)
    assert stats.chisquare([weighted["x"], weighted["y"]], [75, 225]).pvalue > P_MIN


def test_space_survives_pickling() -> None:
    space = param_space({"q": QUniform(0, 11, 3), "w": Categorical(["x", "y"], [0.25, 0.75])})
    restored = pickle.loads(pickle.dumps(space))
    assert restored["q"].distribution == space["q"].distribution
    assert restored["w"].sample(random_state=0) in {"x", "y"}


def test_search_space_uses_the_spec_parameters() -> None:
    spec = load_spec({"method": "random", "parameters": {
        "opt": {"parameters": {"lr": {"distribution": "q_uniform", "min": 0, "max": 11, "q": 3}}},
        "epochs": {"value": 3}}})
    space = search_space(spec)
    assert space["epochs"] == 3
    assert space["opt"]["lr"].distribution == QUniform(0, 11, 3)


@pytest.mark.parametrize("case_id", list(CASES), ids=list(CASES))
def test_describe_is_one_line_naming_the_kind(case_id: str) -> None:
    dist = distribution_for(case_id)
    text = describe(dist)
    assert "\n" not in text and dist.name in text


def test_describe_states_the_inverse_quirk_and_q_typing() -> None:
    assert "like log_uniform_values" in describe(InvLogUniformValues(1.0e-3, 1.0))
    assert "ints" in describe(QUniform(0, 10, 2)) and "floats" in describe(QUniform(0, 10))
    assert "both included" in describe(IntUniform(1, 3)) and "[1, 4)" in describe(IntUniform(1, 3))
    assert math.isfinite(to_domain(InvLogUniformValues(1.0e-3, 1.0)).upper)
