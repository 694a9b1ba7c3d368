"""`parameters:` entries to distributions: W&B's inference by keys, every violation at its key path."""

from __future__ import annotations

from typing import Any

import pytest

from raysweep.spec.distributions import (Beta, Categorical, Constant, IntUniform, LogUniformValues, QUniform,
                                         Uniform)
from raysweep.spec.parameters import parse_parameters
from raysweep.spec.violations import Report


def parsed(params: object) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    report = Report()
    tree = parse_parameters(report, "parameters", params)
    return tree, [(v.path, v.message) for v in report.violations]


@pytest.mark.parametrize(("setting", "kind"), [
    ({"values": [1, 2]}, Categorical(values=(1, 2))),
    ({"values": ["a", "b"], "probabilities": [0.25, 0.75]}, Categorical(("a", "b"), (0.25, 0.75))),
    ({"value": [1, 2]}, Constant([1, 2])),
    ({"min": 1, "max": 5}, IntUniform(1, 5)),
    ({"min": 1, "max": 5.0}, Uniform(1, 5.0)),  # one float bound: uniform, as in W&B
    ({"min": "1e-4", "max": 0.1, "distribution": "log_uniform_values"}, LogUniformValues(1e-4, 0.1)),
    ({"distribution": "q_uniform", "min": 0, "max": 10, "q": 2}, QUniform(0, 10, 2)),
    ({"distribution": "beta", "a": 2, "b": 5}, Beta(2, 5)),
], ids=["values", "probabilities", "value", "int_bounds", "float_bound", "numeric_string", "q", "beta"])
def test_the_kind_follows_from_the_keys_as_in_wandb(setting: dict[str, Any], kind: object) -> None:
    tree, violations = parsed({"p": setting})
    assert violations == [] and tree == {"p": kind}


def test_nested_groups_become_subtrees() -> None:
    tree, violations = parsed({"opt": {"parameters": {"lr": {"value": 0.1}, "name": {"values": ["adam"]}}}})
    assert violations == [] and tree == {"opt": {"lr": Constant(0.1), "name": Categorical(("adam",))}}


@pytest.mark.parametrize(("params", "path", "words"), [
    ({"p": {"mu": 0, "sigma": 1}}, "parameters.p.distribution", "`mu` needs an explicit distribution"),
    ({"p": {"valuez": [1]}}, "parameters.p", "cannot tell the distribution; `valuez`: did you mean 'value'?"),
    ({"p": {"distribution": "log_uniforn", "min": 1, "max": 2}}, "parameters.p.distribution",
     "did you mean 'log_uniform_values' (min/max are the values) or 'log_uniform' (min/max are natural-log"),
    ({"p": {"distribution": "categorical", "values": [1], "probabilities": [1.0]}}, "parameters.p.distribution",
     "categorical takes no probabilities"),
    ({"p": {"parameters": {"q": {"value": 1}}, "value": 2}}, "parameters.p.value", "takes no other keys"),
    ({"p": [1, 2]}, "parameters.p", "must be a mapping"),
    ({}, "parameters", "must be a non-empty mapping"),
], ids=["shape_without_distribution", "typo", "exponent_kind", "probabilities", "group_extra", "list", "empty"])
def test_each_violation_names_its_key_and_the_fix(params: object, path: str, words: str) -> None:
    _, violations = parsed(params)
    assert any(p == path and words in message for p, message in violations), violations


def test_every_bad_parameter_is_reported_at_once() -> None:
    tree, violations = parsed({"a": {"min": 2, "max": 1}, "b": {"values": []}, "c": {"value": 1}})
    assert tree == {"c": Constant(1)}
    assert sorted({path.split(".")[1] for path, _ in violations}) == ["a", "b"]
