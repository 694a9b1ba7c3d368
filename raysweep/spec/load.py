"""A W&B sweep config (file, YAML text or dict) read into a typed, validated `SweepSpec`.

raysweep promises to run W&B sweep files unchanged, so this module accepts every
key and parameter form of W&B's engine (`sweeps` 0.3.0, `config/schema.json`),
infers each parameter's distribution the way W&B does and fills W&B's defaults.
Where W&B would fail at run time, or silently do something else, raysweep
refuses the file up front instead, with every problem in one `SweepConfigError`.

>>> spec = load_spec("method: random\\nparameters:\\n  lr: {min: 0.0001, max: 0.1}\\n")
>>> spec.parameters["lr"]
Uniform(min=0.0001, max=0.1)
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from raysweep.spec import validate
from raysweep.spec.tree import leaves
from raysweep.spec.distributions import Distribution
from raysweep.errors import SweepConfigError, Violation
from raysweep.spec.parameters import ParamTree, parse_parameters
from raysweep.spec.sections import Hyperband, Metric
from raysweep.spec.macros import ENVVAR_MACRO, KNOWN_MACROS
from raysweep.spec.violations import Report, check_string, plain_copy, suggest

__all__ = ["ENVVAR_MACRO", "KNOWN_MACROS", "Hyperband", "IgnoredKeyWarning", "LogUniformExponentWarning",
           "Metric", "MissingProgramWarning", "NumericStringWarning", "ParamTree", "SweepSpec", "load_spec"]


class NumericStringWarning(UserWarning):
    """A number written like ``1e-5``, which YAML reads as a string, was read as a number.

    W&B rejects such a parameter; raysweep accepts it and says which line to write.
    """


class IgnoredKeyWarning(UserWarning):
    """An `early_terminate` key W&B does not read was ignored (W&B ignores it too)."""


class MissingProgramWarning(UserWarning):
    """`program` names no file here; only running the sweep needs it (`validate`, `show`, `sample` go on)."""


class LogUniformExponentWarning(UserWarning):
    """A v1 ``log_uniform``-style parameter takes natural-log exponents, not values (W&B flags it too)."""


T = TypeVar("T")


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep config; ``raw`` keeps the config as given for sweep.yaml and W&B."""

    method: str
    parameters: ParamTree
    metric: Metric | None
    early_terminate: Hyperband | None
    program: str | None
    command: list[str] | None
    run_cap: int | None
    name: str | None
    description: str | None
    project: str | None
    entity: str | None
    controller: dict[str, Any] | None
    raw: dict[str, Any]
    source_text: str | None
    source: str | None

    def flat_parameters(self) -> dict[tuple[str, ...], Distribution]:
        """Key path -> distribution, in W&B's order (names sorted at every level)."""
        return leaves(self.parameters, sort=True)


def load_spec(source: str | os.PathLike[str] | Mapping[str, Any], *,
              check_program: bool | Literal["warn"] = True) -> SweepSpec:
    """Read a sweep config from a YAML file path, YAML text, or a dict.

    A string is a path when it has no newline and names a file (or ends in .yaml/.yml/.json);
    otherwise it is YAML text. For a file or text, `program` must exist relative to the cwd
    (``check_program=False`` skips that, e.g. for a finished run log's sweep.yaml; ``"warn"`` makes
    a missing file a `MissingProgramWarning`, for commands that do not run it). Raises
    `SweepConfigError` listing every problem found; warns (`NumericStringWarning`) once if
    numbers were written as YAML strings like ``1e-5``.
    """
    text, path = _read_source(source)
    given = _yaml_load(text, path) if text is not None else source
    report = Report()
    config = plain_copy(report, given)
    if not report.violations and not isinstance(config, dict):
        report.add("", f"a sweep config must be a mapping of keys (method:, parameters:, ...), got {_what(config)}")
    if report.violations:
        raise SweepConfigError(report.violations, source=path)
    spec = _assemble(config, report, text, path, check_program)
    if report.violations or spec is None:
        raise SweepConfigError(report.violations, source=path)
    _warn(report)
    return spec


def _what(value: object) -> str:
    """How to name a non-mapping document in the error, guessing at a mistyped file path."""
    if value is None:
        return "an empty document"
    if isinstance(value, str) and " " not in value.strip():
        return f"the text {value!r} (if that is meant as a file: there is no such file)"
    return f"a {type(value).__name__}"


def _read_source(source: object) -> tuple[str | None, str | None]:
    """(YAML text or None for a mapping, file path or None)."""
    if isinstance(source, Mapping):
        return None, None
    if isinstance(source, os.PathLike) or (isinstance(source, str) and _looks_like_path(source)):
        path = os.fspath(source)
        try:
            return Path(path).read_text(encoding="utf-8"), str(path)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise SweepConfigError([Violation("", f"cannot read the sweep file: {exc}")], source=str(path)) from exc
    if isinstance(source, str):
        return source, None
    raise TypeError(f"load_spec takes a path, YAML text or a mapping, not {type(source).__name__}")


def _looks_like_path(text: str) -> bool:
    """A one-line string naming a file (or a sweep-file name that may be missing) is a path."""
    if "\n" in text:
        return False
    if text.endswith((".yaml", ".yml", ".json")):
        return True
    try:
        return Path(text).is_file()
    except (OSError, ValueError):
        return False


def _yaml_load(text: str, path: str | None) -> Any:
    """``yaml.safe_load``, with syntax errors, tabs and tags reported by line.

    PyYAML's constructors raise plain Python errors on some text (``2024-02-30``,
    ``!!int abc``, ``!!timestamp x``, a 5000-digit number), and a deep nesting
    overflows its recursive parser; all of those mean the file is not valid YAML.
    """
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        raise SweepConfigError([_yaml_violation(exc, text)], source=path) from exc
    except yaml.YAMLError as exc:
        raise SweepConfigError([Violation("", f"not valid YAML: {exc}")], source=path) from exc
    except RecursionError as exc:
        raise SweepConfigError([Violation("", "not valid YAML: nested too deeply")], source=path) from exc
    except Exception as exc:  # noqa: BLE001 - see the docstring: a constructor failed on the user's text
        raise SweepConfigError([Violation("", f"not valid YAML: PyYAML cannot build a value ({exc}); look for an "
                                              "impossible date, a !!tag on the wrong text, or a huge number")],
                               source=path) from exc


def _yaml_violation(exc: yaml.MarkedYAMLError, text: str) -> Violation:
    """The error at its line (path ``line N``), with where the broken construct began and a fix."""
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark else 0
    lines = text.splitlines()
    source_line = lines[line - 1] if 0 < line <= len(lines) else ""
    context = exc.context or ""
    if exc.context_mark is not None and exc.context_mark is not mark and context:
        context += f" (from line {exc.context_mark.line + 1}, column {exc.context_mark.column + 1})"
    problem = " ".join(p for p in (context, str(exc.problem or "")) if p)
    column = f"column {mark.column + 1}: " if mark else ""
    return Violation(f"line {line}" if line else "", f"not valid YAML, {column}{problem}; "
                                                     f"{_yaml_fix(problem, source_line)}")


def _yaml_fix(problem: str, source_line: str) -> str:
    """The likely fix for a YAML error, from the problem text and the offending line."""
    if "constructor for the tag" in problem:
        return "raysweep reads plain YAML only; remove the tag and write the value itself"
    if "single document" in problem:
        return "a sweep file holds one YAML document; remove the `---` line and what follows, or merge them"
    if "${" in source_line:
        return "inside [...] or {...} a macro must be quoted ('${args}'), or write the list one item per line"
    if "\t" in problem or "\t" in source_line[: len(source_line) - len(source_line.lstrip())]:
        return "YAML does not allow tabs for indentation; indent with spaces"
    return "check the indentation, the closing brackets, and that every `key: value` has a space after the colon"


def _assemble(config: dict[str, Any], report: Report, text: str | None, path: str | None,
              check_program: bool | Literal["warn"]) -> SweepSpec | None:
    """Check every section and build the spec; None when anything is wrong (all of it reported)."""
    _unknown_top_level(report, config)
    method = validate.check_method(report, config.get("method"))
    tree = _parameters(report, config)
    metric = _section(report, config, "metric", validate.check_metric)
    stop = _section(report, config, "early_terminate", validate.check_early_terminate)
    if "early_terminate" in config and "metric" not in config:
        report.add("metric", "early_terminate needs a metric to compare runs; add e.g. "
                             "`metric: {name: val_loss, goal: minimize}`")
    validate.check_search(report, method, leaves(tree, sort=True), "metric" in config)
    strings = _strings(report, config)
    if "program" in strings:
        validate.check_program(report, strings["program"], check_program if text is not None else False)
    command = validate.check_command(report, config["command"], "program" in config) if "command" in config else None
    run_cap = _section(report, config, "run_cap", validate.check_run_cap)
    controller = _section(report, config, "controller", validate.check_controller)
    _extras(report, config)
    if report.violations or method is None:
        return None
    return SweepSpec(
        method=method, parameters=tree, metric=Metric(**metric) if metric else None,
        early_terminate=Hyperband(**stop) if stop else None, program=strings.get("program"), command=command,
        run_cap=run_cap, name=strings.get("name"), description=strings.get("description"),
        project=strings.get("project"), entity=strings.get("entity"), controller=controller,
        raw=copy.deepcopy(config), source_text=text, source=path,
    )


def _section(report: Report, config: dict[str, Any], key: str, check: Callable[[Report, Any], T]) -> T | None:
    """``check(report, config[key])`` when the key is present."""
    return check(report, config[key]) if key in config else None


def _unknown_top_level(report: Report, config: dict[str, Any]) -> None:
    """W&B's schema forbids other top-level keys; a typo gets the closest real key."""
    for key in config:
        if key not in validate.TOP_LEVEL_KEYS:
            report.add(str(key), f"unknown top-level key; {suggest(key, validate.TOP_LEVEL_KEYS, 'W&B keys are')}")


def _parameters(report: Report, config: dict[str, Any]) -> ParamTree:
    """The parameter tree; `parameters` is required (W&B 0.3.0 waives it only for custom schedulers)."""
    if "parameters" not in config:
        report.add("parameters", "missing; add the parameters to sweep, e.g. `parameters: {lr: {min: 1.0e-4, "
                                 "max: 0.1}}` (raysweep does not read scheduler.search_space)")
        return {}
    return parse_parameters(report, "parameters", config["parameters"])


def _strings(report: Report, config: dict[str, Any]) -> dict[str, str]:
    """The string-valued top-level keys that are present and are strings (others are reported)."""
    keys = ("name", "description", "project", "entity", "program", "apiVersion", "job", "image_uri")
    return {k: config[k] for k in keys if k in config and check_string(report, k, config[k])}


def _extras(report: Report, config: dict[str, Any]) -> None:
    """Keys W&B accepts that raysweep checks but does not use (kind, metrics, scheduler)."""
    if "kind" in config and config["kind"] != "sweep":
        report.add("kind", f"must be sweep, got {config['kind']!r}; write `kind: sweep` or remove it")
    if "metrics" in config:
        report.add("metrics", "multi-objective `metrics:` needs method: custom, which raysweep does not support; "
                              "optimise one value with `metric: {name: ..., goal: ...}`")
    if "scheduler" in config:
        validate.check_scheduler(report, config)


def _warn(report: Report) -> None:
    """The warnings of a config that loaded: one per kind, so a long file does not flood the output."""
    if report.numeric_fixes:
        warnings.warn("YAML reads a number without a dot or without an exponent sign (1e-5, 1.0e5) as a "
                      "string; raysweep read these as numbers, W&B rejects them:\n  "
                      + "\n  ".join(report.numeric_fixes), NumericStringWarning, stacklevel=3)
    if report.exponent_notes:
        warnings.warn("\n".join(report.exponent_notes), LogUniformExponentWarning, stacklevel=3)
    if report.ignored_keys:
        warnings.warn("\n".join(report.ignored_keys), IgnoredKeyWarning, stacklevel=3)
    if report.missing_program:
        warnings.warn("\n".join(report.missing_program), MissingProgramWarning, stacklevel=3)
