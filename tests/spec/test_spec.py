"""raysweep.spec.load: loading, W&B's inference and defaults, every bad-input message, and a fuzz test.

Where W&B's behaviour is the reference (what a parameter infers to, which configs are
valid, hyperband brackets, the agent's macros), the engine (`sweeps` 0.3.0) is asked in
the reference venv and raysweep must agree, except for the differences documented in
`RAYSWEEP_STRICTER` / `RAYSWEEP_LENIENT` below.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import json
import math
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st
from reference import run_reference

from raysweep import cli
from raysweep.spec.distributions import (
    DISTRIBUTIONS, Categorical, Constant, Distribution, IntUniform, Normal, QUniform, Uniform,
)
from raysweep.errors import SweepConfigError
from raysweep.spec.load import (
    KNOWN_MACROS, Hyperband, IgnoredKeyWarning, LogUniformExponentWarning, Metric, MissingProgramWarning,
    NumericStringWarning, SweepSpec, load_spec,
)
from raysweep.spec.violations import parse_numeric_string, yaml_number_literal

REPO = Path(__file__).resolve().parents[2]
BAD = REPO / "tests" / "data" / "bad"
RANDOM = {"method": "random"}


def load_quietly(source: Any, **kwargs: Any) -> SweepSpec:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_spec(source, **kwargs)


def violations(source: Any) -> dict[str, str]:
    """path -> message of every violation ``load_spec(source)`` reports."""
    with pytest.raises(SweepConfigError) as info:
        load_quietly(source)
    return {v.path: v.message for v in info.value.violations}


def param(setting: dict[str, Any]) -> Distribution | dict[str, Any]:
    return load_quietly({**RANDOM, "parameters": {"p": setting}}).parameters["p"]


# --- inference and defaults, against W&B's fill_parameter -------------------------------------------

INFERENCE: dict[str, dict[str, Any]] = {
    "values": {"values": [1, "a", None, [1, 2]]},
    "values_probabilities": {"values": ["a", "b"], "probabilities": [0.25, 0.75]},
    "value": {"value": {"nested": [1, 2]}},
    "value_null": {"value": None},
    "int_bounds": {"min": 1, "max": 10},
    "float_max": {"min": 1, "max": 10.0},
    "float_min": {"min": 0.0, "max": 1},
    "explicit_uniform_int_bounds": {"distribution": "uniform", "min": 1, "max": 2},
    "explicit_int_uniform": {"distribution": "int_uniform", "min": -3, "max": 3},
    "q_uniform_default_q": {"distribution": "q_uniform", "min": 0, "max": 10},
    "q_uniform_int_q": {"distribution": "q_uniform", "min": 0, "max": 10, "q": 2},
    "log_uniform_values": {"distribution": "log_uniform_values", "min": 1.0e-5, "max": 0.1},
    "q_log_uniform_values": {"distribution": "q_log_uniform_values", "min": 1, "max": 100},
    "inv_log_uniform_values": {"distribution": "inv_log_uniform_values", "min": 0.01, "max": 1},
    "normal_defaults": {"distribution": "normal"},
    "q_normal_defaults": {"distribution": "q_normal"},
    "log_normal_defaults": {"distribution": "log_normal", "mu": 2},
    "q_log_normal_defaults": {"distribution": "q_log_normal", "sigma": 0.5},
    "beta_defaults": {"distribution": "beta"},
    "q_beta_defaults": {"distribution": "q_beta", "a": 2},
    "categorical_w_probabilities_named": {"distribution": "categorical_w_probabilities", "values": [1, 2],
                                          "probabilities": [0.5, 0.5]},
}


@functools.cache
def reference_fill() -> dict[str, Any]:
    """W&B's (distribution, filled config) for every INFERENCE case."""
    return run_reference(f"""
        import json
        from sweeps.config import fill_parameter
        cases = json.loads({json.dumps(json.dumps(INFERENCE))})
        print(json.dumps({{k: fill_parameter("p", v)[1] for k, v in cases.items()}}))
    """)


@pytest.mark.parametrize("case", INFERENCE, ids=list(INFERENCE))
def test_inference_and_defaults_match_wandb(case: str) -> None:
    filled = reference_fill()[case]
    dist = param(INFERENCE[case])
    assert isinstance(dist, Distribution)
    expected_name = filled.pop("distribution")
    assert dist.name == ("categorical" if expected_name == "categorical_w_probabilities" else expected_name)
    for key, value in filled.items():
        ours = getattr(dist, key)
        assert (list(ours) if isinstance(ours, tuple) else ours) == value, key
        if key == "q":  # the type decides int vs float samples
            assert type(ours) is type(value)


def test_defaults_of_metric_and_hyperband_match_wandb() -> None:
    config = {"method": "random", "metric": {"name": "loss"}, "parameters": {"a": {"values": [1]}},
              "early_terminate": {"type": "hyperband", "min_iter": 2}}
    ref = run_reference(f"""
        import json
        from sweeps.config.schema import fill_validate_metric
        from sweeps.config import fill_validate_early_terminate
        cfg = json.loads({json.dumps(json.dumps(config))})
        cfg = fill_validate_early_terminate(fill_validate_metric(cfg))
        print(json.dumps([cfg["metric"], cfg["early_terminate"]]))
    """)
    spec = load_spec(config)
    assert spec.metric == Metric(**ref[0], target=None)
    assert spec.early_terminate == Hyperband(min_iter=2, max_iter=None, s=None, eta=ref[1]["eta"],
                                             strict=ref[1]["strict"])
    assert spec.metric.mode == "min"


# --- accept iff W&B accepts (validator and engine), differences documented -------------------------

def _hyperband(**fields: Any) -> dict[str, Any]:
    return {"method": "random", "metric": {"name": "loss"}, "parameters": {"a": {"values": [1, 2]}},
            "early_terminate": {"type": "hyperband", **fields}}


def _params(**params: Any) -> dict[str, Any]:
    return {"method": "random", "parameters": params}


AGREEMENT: dict[str, Any] = {
    "minimal_random": _params(a={"values": [1, 2]}),
    "all_top_level_keys": {**_params(a={"min": 0, "max": 3}), "metric": {"name": "l", "goal": "maximize",
                           "target": 0.9, "impute": "best", "impute_while_running": "latest"},
                           "program": "t.py", "command": ["${env}", "python", "${program}", "${args}", 10],
                           "name": "n", "description": "d", "project": "p", "entity": "e", "run_cap": 5.0,
                           "controller": {"type": "local"}, "apiVersion": "v1", "kind": "sweep", "job": "j",
                           "image_uri": "i"},
    "scheduler_wandb": {**_params(a={"values": [1]}), "scheduler": {"engine": "wandb"}},
    "scheduler_optuna": {**_params(a={"values": [1]}), "scheduler": {"engine": "optuna"}},
    "metrics_multi": {**_params(a={"values": [1]}), "metrics": [{"name": "a"}, {"name": "b"}]},
    "nested": _params(opt={"parameters": {"lr": {"min": 0.1, "max": 1.0}, "name": {"values": ["adam"]}}}),
    "nested_min_gt_max": _params(opt={"parameters": {"lr": {"min": 1.0, "max": 0.1}}}),
    "nested_extra_key": _params(opt={"parameters": {"lr": {"value": 1}}, "value": 2}),
    "every_kind": _params(**{f"p{i}": v for i, v in enumerate(INFERENCE.values())}),
    "log_uniform_v1": _params(a={"distribution": "log_uniform", "min": -9.2, "max": -2.3}),
    "numeric_string": _params(a={"min": "1e-5", "max": 0.1}),
    "numeric_string_target": {**_params(a={"values": [1]}), "metric": {"name": "l", "target": "1e-3"}},
    "sigma_zero": _params(a={"distribution": "normal", "sigma": 0}),
    "beta_a_zero": _params(a={"distribution": "beta", "a": 0}),
    "nan_bound": _params(a={"min": float("nan"), "max": 1.0}),
    "nested_probabilities_sum": _params(o={"parameters": {"a": {"values": [1, 2], "probabilities": [0.5, 0.6]}}}),
    "unknown_macro": {**_params(a={"values": [1]}), "command": ["python", "x.py", "${project}"]},
    "command_string": {**_params(a={"values": [1]}), "command": "python x.py"},
    "command_empty": {**_params(a={"values": [1]}), "command": []},
    "command_envvar": {**_params(a={"values": [1]}), "command": ["${envvar:HOME}/x.py", "${args_json_file}"]},
    "min_gt_max": _params(a={"min": 2, "max": 1}),
    "min_eq_max": _params(a={"min": 1.0, "max": 1.0}),
    "int_uniform_float": _params(a={"distribution": "int_uniform", "min": 1.0, "max": 3}),
    "bool_bound": _params(a={"min": True, "max": 3}),
    "string_bounds": _params(a={"min": "a", "max": "b"}),
    "probabilities_sum": _params(a={"values": [1, 2], "probabilities": [0.5, 0.6]}),
    "probabilities_length": _params(a={"values": [1, 2], "probabilities": [1.0]}),
    "categorical_named_with_probabilities": _params(a={"distribution": "categorical", "values": [1],
                                                       "probabilities": [1.0]}),
    "w_probabilities_named_without": _params(a={"distribution": "categorical_w_probabilities", "values": [1]}),
    "values_empty": _params(a={"values": []}),
    "log_values_min_zero": _params(a={"distribution": "log_uniform_values", "min": 0, "max": 1}),
    "q_zero": _params(a={"distribution": "q_uniform", "min": 0, "max": 1, "q": 0}),
    "sigma_negative": _params(a={"distribution": "normal", "sigma": -1}),
    "mu_without_distribution": _params(a={"mu": 0, "sigma": 1}),
    "unknown_distribution": _params(a={"distribution": "loguniform", "min": 1, "max": 2}),
    "param_not_mapping": _params(a=0.1),
    "param_name_digit": _params(**{"1a": {"value": 1}}),
    "param_name_dot": _params(**{"a.b": {"value": 1}}),
    "parameters_empty": _params(),
    "parameters_missing": {"method": "random"},
    "method_missing": {"parameters": {"a": {"value": 1}}},
    "method_custom": _params(a={"values": [1]}) | {"method": "custom"},
    "method_unknown": _params(a={"values": [1]}) | {"method": "hyperopt"},
    "unknown_top_key": {**_params(a={"values": [1]}), "paramters": {}},
    "top_level_list": [1, 2],
    "program_not_string": {**_params(a={"values": [1]}), "program": 3},
    "metric_goal_bad": {**_params(a={"values": [1]}), "metric": {"name": "l", "goal": "min"}},
    "metric_no_name": {**_params(a={"values": [1]}), "metric": {"goal": "minimize"}},
    "metric_extra_key": {**_params(a={"values": [1]}), "metric": {"name": "l", "mode": "min"}},
    "impute_while_running_bool": {**_params(a={"values": [1]}), "metric": {"name": "l",
                                                                           "impute_while_running": False}},
    "run_cap_zero": {**_params(a={"values": [1]}), "run_cap": 0},
    "controller_no_type": {**_params(a={"values": [1]}), "controller": {}},
    "kind_bad": {**_params(a={"values": [1]}), "kind": "job"},
    "grid_ok": {"method": "grid", "parameters": {"a": {"values": [1, 2]}, "b": {"min": 1, "max": 3},
                                                 "c": {"distribution": "q_uniform", "min": 0, "max": 1, "q": 0.5},
                                                 "d": {"value": 1}}},
    "grid_uniform": {"method": "grid", "parameters": {"a": {"min": 0.0, "max": 1.0}}},
    "grid_probabilities": {"method": "grid", "parameters": {"a": {"values": [1, 2], "probabilities": [0.5, 0.5]}}},
    "bayes_ok": {"method": "bayes", "metric": {"name": "l"}, "parameters": {"a": {"min": 0.0, "max": 1.0}}},
    "bayes_no_metric": {"method": "bayes", "parameters": {"a": {"min": 0.0, "max": 1.0}}},
    "bayes_constants": {"method": "bayes", "metric": {"name": "l"}, "parameters": {"a": {"value": 1}}},
    "hyperband_without_metric": {k: v for k, v in _hyperband(min_iter=3).items() if k != "metric"},
    "hyperband_min_iter_float": _hyperband(min_iter=3.0),
    "hyperband_max_iter_no_s": _hyperband(max_iter=27, min_iter=3),
    "hyperband_s_float": _hyperband(max_iter=27, s=2.0),
    "hyperband_eta_one": _hyperband(min_iter=3, eta=1),
    "hyperband_extra_key": _hyperband(min_iter=3, grace=1),
    "hyperband_no_form": _hyperband(eta=3),
    "hyperband_type": _hyperband(min_iter=3) | {"early_terminate": {"type": "asha", "min_iter": 3}},
    "hyperband_strict_false": _hyperband(min_iter=3, strict=False),
    **{f"bands_{m}_{s}_{e}": _hyperband(max_iter=m, s=s, eta=e)
       for m in (1, 2, 3, 9, 27) for s in (0, 1, 3) for e in (1.5, 3, 10)},
}

# Configs W&B (validator + engine) accepts that raysweep refuses, and why.
RAYSWEEP_STRICTER = {
    "sigma_zero": "sigma 0 samples NaN in W&B; refused",
    "beta_a_zero": "a or b of 0 samples NaN in W&B; refused",
    "nan_bound": "non-finite bounds sample NaN in W&B; refused",
    "nested_probabilities_sum": "W&B checks probabilities only at the top level; raysweep at every level",
    "unknown_macro": "W&B's agent silently drops an unknown macro; raysweep reports it",
}
# Configs W&B rejects that raysweep accepts, and why.
RAYSWEEP_LENIENT = {
    "log_uniform_v1": "W&B's validator flags the v1 log kinds but its engine samples them; raysweep warns",
    "numeric_string": "`1e-5` strings are read as numbers, with a NumericStringWarning",
    "numeric_string_target": "`1e-3` strings are read as numbers, with a NumericStringWarning",
    "hyperband_extra_key": "sweeps' schema refuses a key early_terminate does not know; raysweep ignores it "
                           "with an IgnoredKeyWarning, so configs carrying extra keys still run",
}


@functools.cache
def reference_verdicts() -> dict[str, dict[str, Any]]:
    """Per case: W&B's schema violations, and the engine's error when it runs the config."""
    return run_reference("""
        import json, sys
        from sweeps import RunState, SweepRun, next_runs, stop_runs
        from sweeps.config import schema_violations_from_proposed_config
        out = {}
        for key, cfg in json.load(sys.stdin).items():
            try:
                bad = schema_violations_from_proposed_config(cfg)
            except Exception as exc:
                bad = [repr(exc)]
            engine = None
            try:
                if not bad:
                    next_runs(cfg, [], n=2)
                    if "early_terminate" in cfg:
                        run = SweepRun(name="r", state=RunState.running, history=[{"loss": 1.0}] * 5)
                        stop_runs(cfg, [run])
            except Exception as exc:
                engine = repr(exc)
            out[key] = {"violations": bad, "engine": engine}
        print(json.dumps(out))
    """, stdin=json.dumps(AGREEMENT))


@pytest.mark.parametrize("case", AGREEMENT, ids=list(AGREEMENT))
def test_accepts_exactly_what_wandb_accepts(case: str) -> None:
    verdict = reference_verdicts()[case]
    wandb_ok = not verdict["violations"] and verdict["engine"] is None
    config = AGREEMENT[case]
    try:
        load_quietly(config if isinstance(config, dict) else yaml.safe_dump(config))
        ours_ok = True
    except SweepConfigError:
        ours_ok = False
    if case in RAYSWEEP_STRICTER:
        assert wandb_ok and not ours_ok, verdict
    elif case in RAYSWEEP_LENIENT:
        assert ours_ok and not wandb_ok, verdict
    else:
        assert ours_ok == wandb_ok, verdict


# --- the bad-input corpus: one SweepConfigError naming the file, the key path and the fix ------------

EXPECTED = yaml.safe_load((BAD / "expected.yml").read_text())


def test_every_bad_file_has_an_expectation() -> None:
    assert sorted(p.name for p in BAD.glob("*.yaml")) == sorted(EXPECTED)
    assert len(EXPECTED) >= 40


@pytest.mark.parametrize("name", sorted(EXPECTED), ids=sorted(EXPECTED))
def test_bad_file_names_path_and_fix(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    with pytest.raises(SweepConfigError) as info:
        load_quietly(BAD / name)
    error = info.value
    assert error.source == str(BAD / name) and str(BAD / name) in str(error)
    found = {v.path: v.message for v in error.violations}
    expected = EXPECTED[name]
    assert expected["path"] in found, found
    assert expected["hint"] in found[expected["path"]]


def test_all_problems_are_reported_at_once() -> None:
    found = violations({"method": "grdi", "metric": {"name": "l", "goal": "minimise"}, "run_cap": -1,
                        "parameters": {"lr": {"min": 0.1, "max": 0.01}, "bs": {"valeus": [1]}}})
    assert set(found) == {"method", "metric.goal", "run_cap", "parameters.lr.max", "parameters.bs"}


# --- numeric strings (YAML 1.1 reads 1e-5 as a string) ----------------------------------------------

def test_numeric_strings_load_as_numbers_with_one_warning() -> None:
    text = "method: random\nparameters:\n  lr: {min: 1e-5, max: 1.0e-1}\n  wd: {min: '0.001', max: 1E2}\n"
    with pytest.warns(NumericStringWarning) as record:
        spec = load_spec(text)
    assert len(record) == 1
    assert "`min: 1.0e-5`" in str(record[0].message) and "`max: 1.0e+2`" in str(record[0].message)
    assert spec.parameters == {"lr": Uniform(1e-5, 0.1), "wd": Uniform(0.001, 100.0)}


@pytest.mark.parametrize("text, number", [("1e-5", 1e-5), ("1.0e5", 1e5), ("-2E+3", -2000.0), (".5e-3", 5e-4),
                                          ("10", 10), ("0.25", 0.25), ("+7", 7), ("08", 8), ("5.", 5.0),
                                          ("0.00001", 1e-5)])
def test_numeric_string_literal_reads_back_as_the_number(text: str, number: float) -> None:
    assert parse_numeric_string(text) == number and type(parse_numeric_string(text)) is type(number)
    assert yaml.safe_load(f"x: {yaml_number_literal(text)}")["x"] == number


@pytest.mark.parametrize("text", ["1e400", "nan", "inf", "1_000", "0x10", "1e", "e5", "", ".", "- 1", "9" * 5000,
                                  "\u0661e5"], ids=lambda t: t[:8])
def test_non_numbers_stay_strings(text: str) -> None:
    assert parse_numeric_string(text) is None


@given(st.from_regex(r"[-+]?([0-9]{1,3}\.?[0-9]{0,3}|\.[0-9]{1,3})[eE][-+]?[0-9]{1,3}", fullmatch=True))
def test_every_exponent_literal_reads_back(text: str) -> None:
    number = parse_numeric_string(text)
    assert number == float(text) or number is None and not math.isfinite(float(text))
    if number is not None:
        assert yaml.safe_load(f"x: {yaml_number_literal(text)}")["x"] == number


def test_v1_log_uniform_warns_that_bounds_are_exponents() -> None:
    with pytest.warns(LogUniformExponentWarning, match="log_uniform_values"):
        spec = load_spec({**RANDOM, "parameters": {"lr": {"distribution": "log_uniform", "min": 1e-4, "max": 0.1}}})
    assert spec.parameters["lr"].name == "log_uniform"


# --- sources, the spec's fields and the parameter tree ----------------------------------------------

def test_path_text_and_dict_give_the_same_spec(tmp_path: Path) -> None:
    text = "method: grid\nparameters:\n  b: {values: [1, 2]}\n  a: {min: 1, max: 3}\n"
    (tmp_path / "s.yaml").write_text(text)
    specs = [load_spec(tmp_path / "s.yaml"), load_spec(str(tmp_path / "s.yaml")), load_spec(text),
             load_spec(yaml.safe_load(text))]
    assert all(s.parameters == specs[0].parameters and s.raw == yaml.safe_load(text) for s in specs)
    assert [s.source for s in specs] == [str(tmp_path / "s.yaml")] * 2 + [None, None]
    assert [s.source_text for s in specs] == [text] * 3 + [None]


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(SweepConfigError, match="cannot read"):
        load_spec(tmp_path / "nope.yaml")


def test_flat_parameters_are_sorted_at_every_level() -> None:
    spec = load_spec({**RANDOM, "parameters": {
        "z": {"value": 1}, "opt": {"parameters": {"name": {"values": ["a"]}, "lr": {"min": 0.1, "max": 1.0}}},
        "b": {"min": 1, "max": 2}}})
    assert list(spec.flat_parameters()) == [("b",), ("opt", "lr"), ("opt", "name"), ("z",)]
    assert spec.parameters["opt"] == {"name": Categorical(("a",)), "lr": Uniform(0.1, 1.0)}
    assert isinstance(spec.flat_parameters()[("b",)], IntUniform)


def test_sections_are_typed_with_defaults() -> None:
    spec = load_spec({"method": "bayes", "metric": {"name": "acc", "goal": "maximize", "target": 0.99},
                      "parameters": {"x": {"distribution": "normal"}, "q": {"distribution": "q_uniform",
                                                                             "min": 0, "max": 4}},
                      "early_terminate": {"type": "hyperband", "max_iter": 27.0, "s": 2},
                      "run_cap": 10.0, "controller": {"type": "local"}, "name": "n", "project": "p"})
    assert spec.metric == Metric("acc", "maximize", 0.99) and spec.metric.mode == "max"
    assert spec.early_terminate == Hyperband(min_iter=None, max_iter=27, s=2, eta=3, strict=True)
    assert spec.parameters["x"] == Normal(0.0, 1.0) and spec.parameters["q"] == QUniform(0, 4, 1.0)
    assert (spec.run_cap, spec.controller, spec.name, spec.project, spec.entity) == (10, {"type": "local"},
                                                                                       "n", "p", None)


@pytest.mark.parametrize("command, expected", [
    (["${env}", "${interpreter}", "${program}", "${args}"], ["${env}", "${interpreter}", "${program}", "${args}"]),
    (["python", "t.py", "--epochs", 10, True], ["python", "t.py", "--epochs", "10", "True"]),
    (["${envvar:DATA_DIR}/t.py", "--cfg=${unknown_inside}"], ["${envvar:DATA_DIR}/t.py", "--cfg=${unknown_inside}"]),
    ([], None),
], ids=["macros", "scalars_as_str", "envvar_and_inner_text", "empty_is_default"])
def test_command_items(command: list[Any], expected: list[str] | None) -> None:
    spec = load_spec({**RANDOM, "program": "t.py", "command": command, "parameters": {"a": {"value": 1}}})
    assert spec.command == expected and spec.program == "t.py"


def test_known_macros_are_the_wandb_agents() -> None:
    """The agent's own table, less `args_dict` (internal: in a command it expands to bare key names)."""
    keys = run_reference("""
        import json
        from wandb.sdk.launch.sweeps.utils import create_sweep_command_args
        agent = set(create_sweep_command_args({"args": {"a": {"value": 1}}}))
        print(json.dumps(sorted(agent | {"env", "interpreter", "program", "args_json_file"})))
    """)
    assert KNOWN_MACROS == {f"${{{k}}}" for k in keys} - {"${args_dict}"}


def test_program_is_checked_only_for_files_and_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = {**RANDOM, "program": "train.py", "parameters": {"a": {"value": 1}}}
    text = yaml.safe_dump(config)
    assert load_spec(config).program == "train.py"
    assert "program" in violations(text)
    assert load_spec(text, check_program=False).program == "train.py"
    (tmp_path / "train.py").write_text("")
    assert load_spec(text).program == "train.py"


@pytest.mark.parametrize("text", [
    "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, "
    "*b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, "
    "*e, *e, *e, *e, *e, *e]\n",
    "[" * 3000 + "]" * 3000,
    "a:\n" + "".join(" " * i + "b:\n" for i in range(1, 200)),
], ids=["alias_bomb", "deep_flow", "deep_block"])
def test_hostile_yaml_is_refused_quickly(text: str) -> None:
    with pytest.raises(SweepConfigError):
        load_spec(text)


# --- configs/ ----------------------------------------------------------------------------------------

CONFIGS = sorted((REPO / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_example_config_loads(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        spec = load_spec(path)
    assert spec.method in ("grid", "random", "bayes") and spec.flat_parameters()
    expected = [NumericStringWarning] if "1e-5\n" in path.read_text() else []
    assert [w.category for w in record] == expected


def test_example_configs_cover_methods_kinds_and_features(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    specs = {p.stem: load_quietly(p) for p in CONFIGS}
    kinds = {d.name for s in specs.values() for d in s.flat_parameters().values()}
    assert kinds >= {"constant", "categorical", "int_uniform", "uniform", "q_uniform", "log_uniform_values",
                     "q_log_uniform_values", "inv_log_uniform_values", "normal", "q_normal", "log_normal",
                     "q_log_normal", "beta", "q_beta"}
    assert {s.method for s in specs.values()} == {"grid", "random", "bayes"}
    bayes = [s for s in specs.values() if s.method == "bayes"]
    assert any(all(d.continuous for d in s.flat_parameters().values()) for s in bayes)
    assert any(not all(d.continuous for d in s.flat_parameters().values()) for s in bayes)
    stops = [s.early_terminate for s in specs.values() if s.early_terminate]
    assert any(h.max_iter is None for h in stops) and any(h.max_iter is not None for h in stops)
    assert any(any(len(k) > 1 for k in s.flat_parameters()) for s in specs.values())
    assert any(isinstance(d, Categorical) and d.probabilities for s in specs.values()
               for d in s.flat_parameters().values())


# --- fuzz: any input gives a SweepSpec or a SweepConfigError, never another exception ----------------

KEYS = ["method", "parameters", "metric", "early_terminate", "program", "command", "run_cap", "name",
        "controller", "scheduler", "metrics", "kind", "distribution", "values", "value", "probabilities", "min",
        "max", "q", "mu", "sigma", "a", "b", "type", "min_iter", "max_iter", "s", "eta", "strict", "goal",
        "target", "impute", "engine", "lr", "1e-5", "opt"]
WORDS = ["grid", "random", "bayes", "custom", "uniform", "normal", "q_uniform", "log_uniform_values", "beta",
         "hyperband", "minimize", "maximize", "local", "${args}", "${program}", "${nope}", "1e-5", "0.5", "nan"]
SCALARS = (st.none() | st.booleans() | st.integers(-10, 10) | st.floats(allow_nan=True, allow_infinity=True)
           | st.sampled_from([10**400, -(10**400)])
           | st.sampled_from(WORDS) | st.text(max_size=8) | st.dates())
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.sampled_from(KEYS) | SCALARS, inner, max_size=5), max_leaves=25)
PARAM = st.dictionaries(st.sampled_from(KEYS[12:23]), VALUES, max_size=4)
PARAMS = st.dictionaries(st.sampled_from(["lr", "bs", "opt", "1x", "a.b"]) | SCALARS,
                         PARAM | st.fixed_dictionaries({"parameters": st.dictionaries(st.sampled_from(["lr", "m"]),
                                                                                      PARAM, max_size=3)}),
                         max_size=4)
WILD_CONFIG = st.fixed_dictionaries(
    {"method": st.sampled_from(WORDS[:4]) | SCALARS, "parameters": PARAMS | VALUES},
    optional={"metric": st.dictionaries(st.sampled_from(["name", "goal", "target", "impute"]), VALUES) | VALUES,
              "early_terminate": st.dictionaries(st.sampled_from(KEYS[23:30]), VALUES) | VALUES,
              "command": st.lists(SCALARS) | VALUES, "program": VALUES, "run_cap": VALUES,
              "junk": VALUES, "scheduler": VALUES, "controller": VALUES})
GOOD = {"min": st.sampled_from([0.001, 0.5, 1, 0, -2]), "max": st.sampled_from([2, 10.0, 100, "1e3"]),
        "q": st.sampled_from([1, 0.5, 2.0]), "mu": st.floats(-3, 3), "sigma": st.floats(0.1, 3),
        "a": st.floats(0.5, 5), "b": st.sampled_from([1, 2.5]), "value": SCALARS,
        "values": st.lists(st.integers() | st.text(max_size=3), min_size=2, max_size=2),
        "probabilities": st.sampled_from([[0.5, 0.5], [0.25, 0.75], ["1e-1", 0.9]])}


@st.composite
def near_valid_parameter(draw: st.DrawFn) -> dict[str, Any]:
    """A parameter of a random kind with mostly sensible fields, sometimes one broken or extra key."""
    kind = draw(st.sampled_from(sorted(DISTRIBUTIONS)))
    fields = [f for f in dataclasses.fields(DISTRIBUTIONS[kind]) if kind != "categorical" or f.name == "values"]
    setting: dict[str, Any] = {"distribution": kind} if draw(st.booleans()) or kind not in INFERRED else {}
    for f in fields:
        if f.default is dataclasses.MISSING or f.name == "probabilities" or draw(st.booleans()):
            setting[f.name] = draw(GOOD[f.name] if draw(st.integers(0, 9)) else VALUES)
    if draw(st.integers(0, 9)) == 0:
        setting[draw(st.sampled_from(KEYS))] = draw(VALUES)
    return setting


INFERRED = {"constant", "categorical", "categorical_w_probabilities", "int_uniform", "uniform"}
NEAR_PARAMS = st.dictionaries(st.sampled_from(["lr", "bs", "dropout", "opt", "w"]),
                              near_valid_parameter() | st.fixed_dictionaries(
                                  {"parameters": st.dictionaries(st.sampled_from(["lr", "m"]), near_valid_parameter(),
                                                                 min_size=1, max_size=2)}), min_size=1, max_size=4)
NEAR_CONFIG = st.fixed_dictionaries(
    {"method": st.sampled_from(["grid", "random", "bayes"]), "parameters": NEAR_PARAMS},
    optional={"metric": st.fixed_dictionaries({"name": st.just("loss")}, optional={
                  "goal": st.sampled_from(["minimize", "maximize", "min"]), "target": st.sampled_from([0.5, "1e-2"])}),
              "early_terminate": st.fixed_dictionaries({"type": st.just("hyperband")}, optional={
                  "min_iter": st.integers(0, 5), "max_iter": st.integers(1, 30), "s": st.integers(0, 3),
                  "eta": st.sampled_from([1, 2, 3.5])}),
              "command": st.lists(st.sampled_from([*KNOWN_MACROS, "python", "${nope}", 3, "${envvar:X}"]), max_size=5),
              "run_cap": st.integers(-1, 5), "name": st.text(max_size=5)})
CONFIG = NEAR_CONFIG | WILD_CONFIG


def test_fuzz_strategy_reaches_both_outcomes() -> None:
    def loads(config: dict[str, Any]) -> bool:
        try:
            return bool(load_quietly(config))
        except SweepConfigError:
            return False

    fixed = settings(database=None, derandomize=True, max_examples=2000, phases=[Phase.generate])
    for method in ("grid", "random", "bayes"):
        assert find(NEAR_CONFIG, lambda c: c["method"] == method and loads(c), settings=fixed)
    assert find(NEAR_CONFIG, lambda c: not loads(c), settings=fixed)


FUZZ = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def spec_or_config_error(source: Any) -> None:
    try:
        spec = load_quietly(source)
    except SweepConfigError as error:
        assert error.violations and all(isinstance(v.path, str) and v.message for v in error.violations)
        return
    assert spec.method in ("grid", "random", "bayes")
    assert all(isinstance(d, Distribution) for d in spec.flat_parameters().values())
    json.dumps(spec.raw)  # what W&B and the run log store must be plain data


@FUZZ
@given(CONFIG)
def test_fuzz_generated_configs(config: dict[str, Any]) -> None:
    spec_or_config_error(config)


@FUZZ
@given(CONFIG)
def test_fuzz_generated_yaml_text(config: dict[str, Any]) -> None:
    try:
        text = yaml.safe_dump(config, default_flow_style=bool(len(str(config)) % 2))
    except yaml.YAMLError:
        return
    spec_or_config_error(text)


YAML_BITS = [*":-[]{}&*!|>'\"%@`#,? \t\n", "\n  ", "method: ", "parameters:\n  lr:\n    ", "min: ", "1e-5",
             "!!python/object ", "!!set ", "&a ", "*a", "values: ", "---\n", "${args}", "x", "2024-02-30", "!!int ",
             "!!float ", "!!bool ", "!!timestamp ", "!!binary ", "<<: ", "? "]


@FUZZ
@given(st.lists(st.sampled_from(YAML_BITS), max_size=40).map("".join) | st.text(max_size=80))
def test_fuzz_arbitrary_text(text: str) -> None:
    if "\n" not in text and (text.endswith((".yaml", ".yml", ".json")) or os.path.exists(text)):
        text += "\n"  # keep it YAML text, never a path on this machine
    spec_or_config_error(text)


@pytest.mark.parametrize("config", [
    _params(a={"min": 0, "max": 10**400}), _params(a={"distribution": "q_uniform", "min": 0, "max": 1, "q": 10**400}),
    _params(a={"values": [1, 2], "probabilities": [10**400, 0]}), {**_params(a={"value": 1}), "run_cap": 10**400},
    _hyperband(max_iter=10**400, s=2), _hyperband(min_iter=3, eta=10**400),
    {**_params(a={"value": 1}), "metric": {"name": "l", "target": -(10**400)}},
], ids=["max", "q", "probabilities", "run_cap", "max_iter", "eta", "target"])
def test_numbers_beyond_float_range_are_config_errors(config: dict[str, Any]) -> None:
    with pytest.raises(SweepConfigError):
        load_quietly(config)


def test_huge_values_do_not_flood_the_error() -> None:
    big = "x" * 100_000
    with pytest.raises(SweepConfigError) as info:
        load_spec(yaml.safe_dump({"method": "random", "program": big, big: 1, "parameters": {"a": {"value": 1}}}))
    assert len(str(info.value)) < 2_000 and {"program", f"{big[:100]} ... {big[:100]}"} <= {
        v.path for v in info.value.violations}
    assert all(v.message.endswith("expects") for v in info.value.violations if v.path == "program")


def test_valid_configs_survive_a_yaml_round_trip() -> None:
    config = AGREEMENT["every_kind"]
    assert load_spec(yaml.safe_dump(config)).parameters == load_spec(config).parameters
    assert not math.isnan(load_spec(config).flat_parameters()[("p4",)].min)
    assert isinstance(load_spec(config).flat_parameters()[("p3",)], Constant)


# --- fuzz over W&B's whole schema: every top-level key, parameters nested at any depth, any JSON -------

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6)
                    | st.sampled_from(WORDS),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4)
                                                                                | st.sampled_from(KEYS), inner,
                                                                                max_size=3), max_leaves=12)
UNKNOWN_KEY = st.sampled_from(["junk", "metirc", "early_terminate_", "Method", ""]) | st.text(max_size=6)


def _mostly(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``good`` seven times in eight, else any JSON value in its place."""
    return st.sampled_from([True] * 7 + [False]).flatmap(lambda ok: good if ok else JSON)


def _section(required: dict[str, Any], optional: dict[str, Any]) -> st.SearchStrategy[Any]:
    """A mapping with W&B's keys for a section, each mostly sensible, sometimes with an unknown key."""
    known = st.fixed_dictionaries({k: _mostly(v) for k, v in required.items()},
                                  optional={k: _mostly(v) for k, v in optional.items()})
    extra = st.sampled_from([False] * 5 + [True]).flatmap(
        lambda odd: st.dictionaries(UNKNOWN_KEY, JSON, min_size=1, max_size=1) if odd else st.just({}))
    return _mostly(st.builds(lambda a, b: {**b, **a}, known, extra))


METRIC = _section({"name": st.sampled_from(["loss", "acc"])},
                  {"goal": st.sampled_from(["minimize", "maximize", "min"]), "target": st.sampled_from([0.5, "1e-2"]),
                   "impute": st.sampled_from(["latest", "best", "worst"]),
                   "impute_while_running": st.sampled_from(["latest", "best", "worst", "false", False])})
STOP = _section({"type": st.just("hyperband")},
                {"min_iter": st.integers(0, 5), "max_iter": st.integers(1, 30), "s": st.integers(0, 3),
                 "eta": st.sampled_from([1, 2, 3.5]), "strict": st.booleans()})
SCHEDULER = _section({"engine": st.sampled_from(["wandb", "optuna", "ax"])},
                     {"source": st.just("opt.py"), "optimizer": st.just("make"), "search_space": st.just("space")})
PARAM_NAME = _mostly(st.sampled_from(["lr", "bs", "opt", "m"])).filter(
    lambda k: isinstance(k, (str, int, float, bool, type(None))))
PARAM_TREE = st.deferred(lambda: st.dictionaries(
    PARAM_NAME, _mostly(near_valid_parameter() | st.fixed_dictionaries({"parameters": PARAM_TREE})),
    min_size=1, max_size=3))
TOP_LEVEL = {
    "method": st.sampled_from(["grid", "random", "bayes", "custom"]), "metric": METRIC,
    "parameters": PARAM_TREE, "early_terminate": STOP,
    "command": st.lists(st.sampled_from([*KNOWN_MACROS, "python", "${nope}", 3]), max_size=4),
    "program": st.sampled_from(["train.py", "", "missing/x.py"]),
    "controller": _section({"type": st.sampled_from(["local", "cloud"])}, {}), "scheduler": SCHEDULER,
    "job": st.just("job:v1"), "run_cap": st.integers(-1, 5), "name": st.text(max_size=4),
    "description": st.text(max_size=4), "entity": st.just("me"), "project": st.just("p"),
    "metrics": st.lists(METRIC, max_size=3), "apiVersion": st.just("v1"), "kind": st.sampled_from(["sweep", "job"]),
    "image_uri": st.just("img"),
}


@st.composite
def schema_config(draw: st.DrawFn) -> dict[str, Any]:
    """A near-valid config with some of W&B's top-level keys set or replaced, sometimes an unknown one."""
    config = draw(NEAR_CONFIG)
    keys = draw(st.lists(st.sampled_from(sorted(TOP_LEVEL)), unique=True, max_size=4))
    config.update({key: draw(_mostly(TOP_LEVEL[key])) for key in keys})
    for key in [k for k in ("method", "parameters") if draw(st.sampled_from([False] * 20 + [True]))]:
        del config[key]
    if draw(st.sampled_from([False] * 5 + [True])):
        config[draw(UNKNOWN_KEY)] = draw(JSON)
    return config


SCHEMA_CONFIG = schema_config()


def test_schema_fuzz_covers_every_top_level_key_wandb_knows() -> None:
    schema = run_reference("""
        import json
        from sweeps.config.schema import sweep_config_jsonschema
        print(json.dumps(sorted(sweep_config_jsonschema["properties"])))
    """)
    assert sorted(TOP_LEVEL) == schema


def _depth(tree: Any) -> int:
    """How many `parameters:` levels a raw parameter tree nests."""
    if not isinstance(tree, dict):
        return 0
    return 1 + max([_depth(v["parameters"]) for v in tree.values() if isinstance(v, dict) and "parameters" in v],
                   default=0)


def test_schema_fuzz_reaches_valid_specs_deep_trees_and_errors() -> None:
    def loads(config: dict[str, Any]) -> SweepSpec | None:
        try:
            return load_quietly(config)
        except SweepConfigError:
            return None

    fixed = settings(database=None, derandomize=True, max_examples=3000, phases=[Phase.generate])
    for method in ("grid", "random", "bayes"):
        assert find(SCHEMA_CONFIG, lambda c, m=method: c.get("method") == m and len(c) >= 4 and bool(loads(c)),
                    settings=fixed)
    assert find(SCHEMA_CONFIG, lambda c: any(len(k) >= 2 for k in getattr(loads(c), "flat_parameters", dict)()),
                settings=fixed)
    assert find(SCHEMA_CONFIG, lambda c: _depth(c.get("parameters")) >= 4, settings=fixed)
    assert find(SCHEMA_CONFIG, lambda c: "scheduler" in c and "source" in str(c) and loads(c) is None, settings=fixed)


def _key_path_named(violation: Any, config: dict[str, Any]) -> bool:
    """A violation names where it is: a key the config holds, or a top-level key W&B knows."""
    return any(violation.path == str(k) or violation.path.startswith((f"{k}.", f"{k}["))
               for k in [*config, *TOP_LEVEL])


@FUZZ
@given(SCHEMA_CONFIG)
def test_fuzz_every_schema_key(config: dict[str, Any]) -> None:
    try:
        spec = load_quietly(config)
    except SweepConfigError as error:
        assert error.violations and all(_key_path_named(v, config) for v in error.violations), error
        return
    assert spec.method in ("grid", "random", "bayes") and json.dumps(spec.raw)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SCHEMA_CONFIG)
def test_fuzz_every_schema_key_through_the_cli(config: dict[str, Any]) -> None:
    """`raysweep validate/show/sample` on the file: exit 0, or exit 2 with every key path named."""
    try:
        text = yaml.safe_dump(config)
    except yaml.YAMLError:
        return
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "sweep.yaml"
        path.write_text(text)
        for verb in (["validate"], ["show"], ["sample", "-n", "2", "--seed", "1"]):
            err = io.StringIO()
            shown = warnings.showwarning
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
                try:
                    code = cli.main([*verb, str(path)])
                finally:
                    warnings.showwarning = shown
            assert code in (0, 2), err.getvalue()
            if code == 2:
                assert "invalid sweep config" in err.getvalue() and "Traceback" not in err.getvalue()
                break


def test_unknown_early_terminate_keys_are_ignored_with_a_warning_naming_them() -> None:
    with pytest.warns(IgnoredKeyWarning) as record:
        spec = load_spec(_hyperband(min_iter=3, grace=1, etaa=2))
    assert spec.early_terminate == Hyperband(min_iter=3, max_iter=None, s=None)
    text = str(record[0].message)
    assert "early_terminate.grace" in text and "early_terminate.etaa" in text and "did you mean 'eta'?" in text
    assert "metric.goal" in violations({**_hyperband(min_iter=3), "metric": {"name": "l", "goal": "maximise"}})


def test_missing_program_warns_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    text = yaml.safe_dump({**RANDOM, "program": "train.py", "parameters": {"a": {"value": 1}}})
    with pytest.warns(MissingProgramWarning, match=f"'train.py' not found \\(relative to {tmp_path}\\)"):
        assert load_spec(text, check_program="warn").program == "train.py"
    assert "program" in violations(text)
