"""The `parameters:` section: each entry to a `Distribution`, inferred the way W&B infers it.

W&B matches a parameter against its sub-schemas in a fixed order, first match
wins, and each sub-schema forbids extra keys; that makes the kind a function of
the keys present: ``distribution`` if given, else ``values`` (with
``probabilities``: categorical_w_probabilities), ``value``, integer ``min``/``max``
(int_uniform) or other numbers (uniform), or ``parameters`` (a nested group).
The allowed and required keys of each kind are the fields of its class in
`distributions.py`, so the two cannot drift apart.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Union

import numpy as np

from raysweep.spec.distributions import DISTRIBUTIONS, Distribution
from raysweep.spec.violations import (
    Report, check_parameter_name, closest, coerce_fields, coerce_number, join, suggest, unknown_keys,
)

ParamTree = dict[str, Union[Distribution, "ParamTree"]]

_NUMERIC_KEYS = ("min", "max", "q", "mu", "sigma", "a", "b")
_SHAPE_KINDS = {"mu": "normal", "sigma": "normal", "q": "q_uniform", "a": "beta", "b": "beta"}
_ALL_KEYS = ("distribution", "values", "probabilities", "value", "min", "max", "q", "mu", "sigma", "a", "b",
             "parameters")
_EXPONENT_KINDS = {"log_uniform": "log_uniform_values", "inv_log_uniform": "inv_log_uniform_values",
                   "q_log_uniform": "q_log_uniform_values"}


def parse_parameters(report: Report, path: str, params: object) -> ParamTree:
    """A `parameters:` mapping (top level or nested) to a tree of distributions."""
    if not isinstance(params, dict) or not params:
        report.add(path, f"must be a non-empty mapping of parameter names to settings, got {params!r}; write "
                         "e.g. `lr: {min: 1.0e-4, max: 0.1}` under it")
        return {}
    tree: ParamTree = {}
    for name, setting in params.items():
        here = join(path, name)
        node = _parse_one(report, here, name, setting) if check_parameter_name(report, here, name) else None
        if node is not None:
            tree[name] = node
    return tree


def _parse_one(report: Report, path: str, name: str, setting: object) -> Distribution | ParamTree | None:
    """One parameter: a nested group, or a distribution whose kind is inferred and built."""
    if not isinstance(setting, dict):
        report.add(path, f"must be a mapping, got {setting!r}; write e.g. `{name}: {_suggest_mapping(setting)}`")
        return None
    if "parameters" in setting and "distribution" not in setting:
        for key in setting:
            if key != "parameters":
                report.add(join(path, key), "a group of nested `parameters:` takes no other keys; move it inside "
                                            "`parameters:` as its own parameter, or remove it")
        return parse_parameters(report, join(path, "parameters"), setting["parameters"])
    setting = _coerce(report, path, setting)
    kind = _kind(report, path, setting)
    return _build(report, path, kind, setting) if kind else None


def _suggest_mapping(value: object) -> str:
    """The mapping a bare list or scalar most likely meant: values or a constant value."""
    if isinstance(value, list):
        return f"{{values: {value}}}"
    return f"{{value: {value}}}"


def _coerce(report: Report, path: str, setting: dict[str, Any]) -> dict[str, Any]:
    """Numeric strings (`1e-5`) where a number is required, read as numbers."""
    setting = coerce_fields(report, path, setting, _NUMERIC_KEYS)
    probabilities = setting.get("probabilities")
    if isinstance(probabilities, list):
        setting["probabilities"] = [coerce_number(report, f"{path}.probabilities[{i}]", p, None)
                                    for i, p in enumerate(probabilities)]
    return setting


def _kind(report: Report, path: str, setting: dict[str, Any]) -> str | None:
    """The W&B distribution name this setting matches, or None (reported)."""
    if "distribution" in setting:
        return _named_kind(report, path, setting)
    if "values" in setting:
        return "categorical_w_probabilities" if "probabilities" in setting else "categorical"
    if "value" in setting:
        return "constant"
    shape = [key for key in setting if key in _SHAPE_KINDS]
    if shape:
        report.add(join(path, "distribution"), f"missing: `{shape[0]}` needs an explicit distribution; add e.g. "
                                               f"`distribution: {_SHAPE_KINDS[shape[0]]}`")
        return None
    if "min" in setting or "max" in setting:
        ints = all(isinstance(setting.get(k), int) and not isinstance(setting.get(k), bool) for k in ("min", "max"))
        return "int_uniform" if ints else "uniform"
    typos = [(key, closest(key, _ALL_KEYS)) for key in setting if key not in _ALL_KEYS]
    typos_text = "".join(f" `{key}`: did you mean {match!r}?" for key, match in typos if match)
    report.add(path, f"cannot tell the distribution;{typos_text} write `values: [...]`, `value: x`, `min:` and "
                     "`max:`, `distribution: <name>` or nested `parameters:`")
    return None


def _named_kind(report: Report, path: str, setting: dict[str, Any]) -> str | None:
    """The kind an explicit `distribution:` names, with a suggestion for typos."""
    name = setting["distribution"]
    if name == "categorical" and "probabilities" in setting:
        report.add(join(path, "distribution"), "categorical takes no probabilities; write `distribution: "
                                               "categorical_w_probabilities` or leave distribution out")
        return None
    if isinstance(name, str) and name in DISTRIBUTIONS:
        return name
    match = closest(name, DISTRIBUTIONS)
    hint = suggest(name, DISTRIBUTIONS, "W&B's distributions are")
    if match in _EXPONENT_KINDS:
        hint = (f"did you mean {_EXPONENT_KINDS[match]!r} (min/max are the values) or {match!r} "
                "(min/max are natural-log exponents)?")
    report.add(join(path, "distribution"), f"unknown distribution {name!r}; {hint}")
    return None


def _fields(kind: str) -> tuple[list[str], list[str]]:
    """(allowed keys, required keys) of a kind: the fields of its class, plus `distribution`."""
    fields = dataclasses.fields(DISTRIBUTIONS[kind])
    names = [f.name for f in fields if kind != "categorical" or f.name != "probabilities"]
    required = [f.name for f in fields if f.default is dataclasses.MISSING]
    if kind == "categorical_w_probabilities":
        required.append("probabilities")
    return ["distribution", *names], required


def _build(report: Report, path: str, kind: str, setting: dict[str, Any]) -> Distribution | None:
    """The distribution object, reporting unknown and missing keys and the class's own field checks."""
    allowed, required = _fields(kind)
    before = len(report.violations)
    suggested = unknown_keys(report, path, setting, allowed, f"a {kind} parameter")
    for key in required:
        if key not in setting and key not in suggested:
            report.add(join(path, key), f"missing; {kind} needs {' and '.join(required)}")
    if len(report.violations) > before:
        return None
    try:
        dist = DISTRIBUTIONS[kind](**{k: v for k, v in setting.items() if k != "distribution"})
    except ValueError as exc:
        field, _, message = str(exc).partition(": ")
        report.add(join(path, field) if field in allowed else path, message if field in allowed else str(exc))
        return None
    except OverflowError as exc:  # an int beyond float range, which the formulas cannot use
        report.add(path, f"a number is too large ({exc}); keep numbers within ±1.0e+308")
        return None
    _note_exponents(report, path, kind, dist)
    return dist


def _note_exponents(report: Report, path: str, kind: str, dist: Distribution) -> None:
    """W&B flags the v1 log kinds (min/max are exponents, the #1 sweep bug) but samples them; so does raysweep."""
    if kind in _EXPONENT_KINDS:
        with np.errstate(over="ignore"):
            low, high = sorted(dist.ppf([0.0, 1.0]))
        report.exponent_notes.append(
            f"{path}: {kind} takes natural-log exponents, so it samples {low:.3g} .. {high:.3g}; to give the "
            f"values themselves write `distribution: {_EXPONENT_KINDS[kind]}`")
