"""raysweep.spec.distributions against W&B's engine (`sweeps` 0.3.0, run in the reference venv).

The engine is asked once per test session for every case: its inverse CDF at shared
quantiles (so the formulas can be compared value for value, types included) and
seeded random draws as `HyperParameter.sample()` makes them for its random search
(used by the statistical tests in test_space.py).
"""

from __future__ import annotations

import functools
import json
import math
from typing import Any

import numpy as np
import pytest
from reference import run_reference

from raysweep.spec.distributions import (
    DISTRIBUTIONS,
    Beta,
    Categorical,
    Constant,
    Distribution,
    IntUniform,
    LogUniformValues,
    Normal,
    QLogUniformValues,
    QNormal,
    QUniform,
    Uniform,
)

N_SAMPLES = 3000
ENGINE_SEED = 20240611
# Special quantiles first (half-to-even ties for q_uniform 0..4 / 0..10 q=2, max overshoot), then random ones.
SHARED_U = [0.25, 0.5, 0.75, 0.99, 1e-9, 1 - 1e-9, *np.random.default_rng(7).uniform(size=2000).tolist()]

# id -> the parameter exactly as a sweep file gives it to W&B.
CASES: dict[str, dict[str, Any]] = {
    "constant": {"value": 0.1},
    "constant_dict": {"value": {"layers": [64, 32]}},
    "categorical": {"values": ["adam", "sgd", 3, None]},
    "categorical_w_probabilities": {"values": ["a", "b", "c"], "probabilities": [0.2, 0.5, 0.3]},
    "int_uniform": {"min": 1, "max": 8},
    "uniform": {"min": -1.5, "max": 2.5},
    "q_uniform_int_q": {"distribution": "q_uniform", "min": 0, "max": 11, "q": 3},
    "q_uniform_default_q": {"distribution": "q_uniform", "min": 0.0, "max": 10.0},
    "q_uniform_float_q": {"distribution": "q_uniform", "min": 0.0, "max": 1.0, "q": 0.25},
    "log_uniform": {"distribution": "log_uniform", "min": -9.2, "max": -2.3},
    "log_uniform_values": {"distribution": "log_uniform_values", "min": 1.0e-5, "max": 0.1},
    "q_log_uniform": {"distribution": "q_log_uniform", "min": 0, "max": 5, "q": 2},
    "q_log_uniform_values": {"distribution": "q_log_uniform_values", "min": 1, "max": 1000, "q": 10},
    "inv_log_uniform": {"distribution": "inv_log_uniform", "min": 0, "max": 4.6},
    "inv_log_uniform_values": {"distribution": "inv_log_uniform_values", "min": 1.0e-3, "max": 1.0},
    "normal": {"distribution": "normal", "mu": 1.0, "sigma": 2.0},
    "q_normal_int_q": {"distribution": "q_normal", "mu": 0, "sigma": 3, "q": 1},
    "q_normal_float_q": {"distribution": "q_normal", "mu": 0.0, "sigma": 1.0, "q": 0.5},
    "log_normal": {"distribution": "log_normal", "mu": 0.0, "sigma": 0.5},
    "q_log_normal": {"distribution": "q_log_normal", "mu": 2.0, "sigma": 1.0},
    "beta": {"distribution": "beta", "a": 2.0, "b": 5.0},
    "q_beta": {"distribution": "q_beta", "a": 2, "b": 2, "q": 0.1},
}

_ENGINE_SNIPPET = """
import json, random, sys
import numpy as np
from sweeps.params import HyperParameter

def plain(v):
    return v.tolist() if isinstance(v, (np.generic, np.ndarray)) else v

def ppf(hp, us):
    # HyperParameter.sample() is ppf(random.uniform(0, 1)) on a scalar. The array path gives the same
    # values in one call, except for constants and weighted categoricals (its array path always picks
    # the first value), which keep the scalar path.
    if hp.type in (HyperParameter.CONSTANT, HyperParameter.CATEGORICAL_PROB):
        return [plain(hp.ppf(u)) for u in us]
    return plain(hp.ppf(np.array(us)))

request = json.load(sys.stdin)
out = {}
for case_id, config in request["cases"].items():
    hp = HyperParameter(case_id, config)
    random.seed(request["seed"])
    draws = ppf(hp, [random.uniform(0.0, 1.0) for _ in range(request["n"])])
    at_u = ppf(hp, request["u"])
    out[case_id] = {"type": hp.type, "config": hp.config, "draws": draws, "ppf": at_u,
                    "draw_types": sorted({type(v).__name__ for v in draws}),
                    "ppf_types": [type(v).__name__ for v in at_u]}
print(json.dumps(out))
"""


@functools.cache
def engine_results() -> dict[str, dict[str, Any]]:
    """Every case run through the engine, once per test session (one subprocess)."""
    request = json.dumps({"cases": CASES, "seed": ENGINE_SEED, "n": N_SAMPLES, "u": SHARED_U})
    return run_reference(_ENGINE_SNIPPET, stdin=request)


def distribution_for(case_id: str) -> Distribution:
    """The raysweep Distribution for a case, built from W&B's own filled-in config."""
    config = dict(engine_results()[case_id]["config"])
    name = config.pop("distribution", None) or ("constant" if "value" in config else None)
    return DISTRIBUTIONS[name](**config)


@pytest.mark.parametrize("case_id", list(CASES), ids=list(CASES))
def test_ppf_equals_engine_value_for_value(case_id: str) -> None:
    engine = engine_results()[case_id]
    ours = distribution_for(case_id).ppf(np.array(SHARED_U))
    assert [type(v).__name__ for v in ours] == engine["ppf_types"]
    for mine, theirs in zip(ours, engine["ppf"], strict=True):
        if isinstance(theirs, float):  # numpy 2 vs 1.26 may differ in the last digit of exp/log
            assert math.isclose(mine, theirs, rel_tol=1e-12, abs_tol=1e-300)
        else:
            assert mine == theirs


@pytest.mark.parametrize("case_id", list(CASES), ids=list(CASES))
def test_sample_returns_plain_python_values(case_id: str) -> None:
    dist = distribution_for(case_id)
    rng = np.random.default_rng(0)
    one, many = dist.sample(rng), dist.sample(rng, size=50)
    assert isinstance(many, list) and len(many) == 50
    allowed = {type(None), int, float, str, dict}
    assert {type(v) for v in [one, *many]} <= allowed
    assert {type(v).__name__ for v in many} <= set(engine_results()[case_id]["draw_types"])


def test_q_rounds_half_to_even_and_may_pass_max() -> None:
    assert QUniform(0, 4, 2).ppf([0.25, 0.75]) == [0, 4]  # 0.5 -> 0 and 1.5 -> 2 (times q)
    assert QUniform(0, 10, 2).ppf([0.5]) == [4]  # 2.5 -> 2
    assert QUniform(0, 11, 3).ppf([0.99]) == [12]  # beyond max 11, as in W&B
    assert QUniform(0, 11, 3).support() == (0.0, 12.0)
    assert QLogUniformValues(1, 100, 5).ppf([0.0]) == [0]  # below min 1


@pytest.mark.parametrize(
    ("dist", "expected_type"),
    [(QUniform(0.0, 10.0), float), (QUniform(0, 10, 2), int), (QNormal(0, 1, 0.5), float),
     (QNormal(0, 1, 1), int), (Uniform(0, 10), float), (IntUniform(0, 10), int)],
    ids=["q_default_float", "q_int", "q_float", "qnormal_int", "uniform_int_bounds", "int_uniform"],
)
def test_output_type_follows_q(dist: Distribution, expected_type: type) -> None:
    assert {type(v) for v in dist.sample(np.random.default_rng(1), size=100)} == {expected_type}


def test_int_uniform_includes_max_and_clips_u_zero() -> None:
    dist = IntUniform(1, 3)
    assert dist.ppf([1 - 1e-12, 0.5, 1e-12]) == [3, 2, 1]
    # scipy (and so W&B) maps u == 0 to min - 1; raysweep clips that single point to min.
    assert dist.ppf([0.0]) == [1]
    assert Categorical(["a", "b"]).ppf([0.0]) == ["a"]


def test_sample_never_feeds_zero_to_ppf() -> None:
    class ZeroRng:
        def uniform(self, low: float, high: float, size: int) -> np.ndarray:
            return np.zeros(size)

    assert math.isfinite(Normal().sample(ZeroRng()))


def test_categorical_values_keep_their_types_and_are_copies() -> None:
    dist = Categorical([[1, 2], {"k": None}])
    first = dist.ppf([0.1])[0]
    first.append(3)
    assert dist.ppf([0.1])[0] == [1, 2]


@pytest.mark.parametrize(
    ("dist", "expected"),
    [(Constant("x"), ["x"]), (Categorical([3, 1, 2]), [3, 1, 2]), (IntUniform(2, 5), [2, 3, 4, 5]),
     (QUniform(0, 4, 2), [0, 2]), (QUniform(0.0, 1.0, 0.1), np.arange(0.0, 1.0, 0.1).tolist())],
    ids=["constant", "categorical", "int_uniform_inclusive", "q_uniform_excludes_max", "q_uniform_float"],
)
def test_grid_values(dist: Distribution, expected: list[Any]) -> None:
    assert dist.grid_values() == expected


@pytest.mark.parametrize(
    "dist",
    [Categorical([1, 2], [0.5, 0.5]), Uniform(0, 1), LogUniformValues(1, 2), Normal(), Beta()],
    ids=["weighted_categorical", "uniform", "log_uniform_values", "normal", "beta"],
)
def test_grid_values_rejects_what_wandb_grid_rejects(dist: Distribution) -> None:
    with pytest.raises(TypeError, match="grid"):
        dist.grid_values()


def test_grid_values_match_engine_grid() -> None:
    params = {"c": {"values": [3, 1]}, "i": {"min": 2, "max": 4}, "q": {"distribution": "q_uniform",
              "min": 0.0, "max": 1.0, "q": 0.3}}
    engine = run_reference(f"""
        import json
        from sweeps.grid_search import grid_search_next_runs
        out = {{}}
        for name, param in {params!r}.items():
            runs = grid_search_next_runs([], {{"method": "grid", "parameters": {{name: param}}}}, n=100)
            out[name] = [r.config[name]["value"] for r in runs if r is not None]
        print(json.dumps(out))
    """)
    ours = {"c": Categorical([3, 1]), "i": IntUniform(2, 4), "q": QUniform(0.0, 1.0, 0.3)}
    assert {name: dist.grid_values() for name, dist in ours.items()} == engine


def test_continuous_flag() -> None:
    continuous = sorted(name for name, cls in DISTRIBUTIONS.items() if cls.continuous)
    assert continuous == sorted(["uniform", "log_uniform", "log_uniform_values", "inv_log_uniform",
                                 "inv_log_uniform_values", "normal", "log_normal", "beta"])


def test_registry_covers_every_engine_distribution() -> None:
    names = run_reference("""
        import json, pathlib
        import sweeps.config
        def enums(node):
            if isinstance(node, list):
                return {e for item in node for e in enums(item)}
            if not isinstance(node, dict):
                return set()
            own = set(node.get("properties", {}).get("distribution", {}).get("enum", []))
            return own.union(*(enums(v) for v in node.values()))
        schema = json.loads(pathlib.Path(sweeps.config.__file__).with_name("schema.json").read_text())
        print(json.dumps(sorted(enums(schema["definitions"]))))
    """)
    assert sorted(DISTRIBUTIONS) == names


@pytest.mark.parametrize(
    ("cls", "kwargs", "field"),
    [
        (Uniform, {"min": 2.0, "max": 1.0}, "max"),
        (Uniform, {"min": 1.0, "max": 1.0}, "max"),
        (Uniform, {"min": "1e-5", "max": 1.0}, "min"),
        (Uniform, {"min": 0.0, "max": math.inf}, "max"),
        (Uniform, {"min": True, "max": 2}, "min"),
        (IntUniform, {"min": 1, "max": 2.5}, "max"),
        (LogUniformValues, {"min": 0.0, "max": 1.0}, "min"),
        (QLogUniformValues, {"min": -1.0, "max": 1.0}, "min"),
        (QUniform, {"min": 0, "max": 1, "q": 0}, "q"),
        (QNormal, {"q": -0.5}, "q"),
        (Normal, {"sigma": 0}, "sigma"),
        (Normal, {"mu": None}, "mu"),
        (Beta, {"a": 0}, "a"),
        (Beta, {"b": -1}, "b"),
        (Categorical, {"values": []}, "values"),
        (Categorical, {"values": "abc"}, "values"),
        (Categorical, {"values": [1, 2], "probabilities": [0.5, 0.6]}, "probabilities"),
        (Categorical, {"values": [1, 2], "probabilities": [1.0]}, "probabilities"),
        (Categorical, {"values": [1, 2], "probabilities": [1.5, -0.5]}, "probabilities"),
    ],
    ids=["min_gt_max", "min_eq_max", "string_bound", "inf_bound", "bool_bound", "int_uniform_float",
         "log_values_zero_min", "q_log_values_negative_min", "q_zero", "q_negative", "sigma_zero", "mu_none",
         "a_zero", "b_negative", "values_empty", "values_string", "probabilities_sum", "probabilities_length",
         "probabilities_negative"],
)
def test_invalid_fields_name_the_field(cls: type[Distribution], kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError) as raised:
        cls(**kwargs)
    assert str(raised.value).startswith(f"{field}: ")
    assert len(str(raised.value)) > len(field) + 20  # says what is wrong, not just where


def test_distributions_are_frozen_and_hashable_when_values_are() -> None:
    dist = Categorical([1, 2])
    with pytest.raises(AttributeError):
        dist.values = (3,)  # type: ignore[misc]
    assert hash(dist) == hash(Categorical((1, 2)))


def test_every_kind_is_a_class_written_under_its_own_name() -> None:
    """``grep "class QLogUniformValues"`` finds each kind: named classes, not ones made at run time."""
    import inspect

    from raysweep.spec import distributions

    source = inspect.getsource(distributions)
    for name, cls in distributions.DISTRIBUTIONS.items():
        if name == "categorical_w_probabilities":
            continue
        assert cls.__name__ == "".join(part.capitalize() for part in name.split("_"))
        assert f"\nclass {cls.__name__}(" in source and cls.__module__ == distributions.__name__
        assert cls.name == name and getattr(distributions, cls.__name__) is cls
