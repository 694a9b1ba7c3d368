"""Checks of a sweep config's sections, each adding every problem it finds to one `Report`.

W&B's engine validates with a JSON Schema and reports bare messages such as
``{...} is not valid under any of the given schemas``; raysweep checks the same
rules in small Python functions so each message can name its key path and the
line to write instead. `spec.py` turns the finished report into one
`SweepConfigError` (or a `SweepSpec`), so a user fixes a file in one pass.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml

from raysweep.spec.distributions import Categorical, Constant, Distribution, IntUniform, QUniform
from raysweep.spec.sections import Hyperband, Metric, defaults
from raysweep.spec.macros import ENVVAR_MACRO, KNOWN_MACROS, unknown_macros
from raysweep.spec.violations import (
    Report, as_integer, check_choice, check_string, coerce_fields, is_number, suggest, unknown_keys,
)

TOP_LEVEL_KEYS = (
    "method", "parameters", "metric", "early_terminate", "program", "command", "name", "description",
    "project", "entity", "controller", "run_cap", "apiVersion", "kind", "job", "image_uri", "metrics",
    "scheduler",
)
METHODS = ("grid", "random", "bayes")
_STOP_KEYS = ("type", "min_iter", "max_iter", "s", "eta", "strict")


def check_program(report: Report, program: str, check_exists: bool | Literal["warn"]) -> None:
    """`program` names the training script; for a sweep file it must exist (relative to the cwd, as in W&B).

    ``check_exists="warn"`` is for commands that do not run it (validate, show, sample): W&B's
    `wandb sweep` accepts a missing file too, and only the agent needs it.
    """
    try:
        exists = Path(program).is_file()
    except (OSError, ValueError):
        exists = False
    if not program:
        report.add("program", "is empty; write the training script, e.g. `program: train.py`")
    elif check_exists and not exists:
        where = f"file {program!r} not found (relative to {Path.cwd()})"
        if check_exists == "warn":
            report.missing_program.append(f"program: {where}; running the sweep needs it")
        else:
            report.add("program", f"{where}; fix the path or run raysweep from the directory the sweep expects")


def check_command(report: Report, command: object, has_program: bool) -> list[str] | None:
    """`command` is a list of argv items; whole-item ``${macro}``s must be ones the agent knows."""
    if isinstance(command, str):
        report.add("command", f"must be a list, not a string; write `command: {_as_list(command)}`")
        return None
    if not isinstance(command, list):
        report.add("command", f"must be a list of strings, got {command!r}; write e.g. "
                              f"`command: {_as_list('${env} ${interpreter} ${program} ${args}')}`")
        return None
    items: list[str] = []
    for index, item in enumerate(command):
        path = f"command[{index}]"
        if isinstance(item, (dict, list)) or item is None:
            report.add(path, f"must be a string, got {item!r}; quote it")
            continue
        items.append(str(item))  # W&B's agent runs str(item), so `10` and `true` pass as "10", "True"
        _check_macro(report, path, str(item), has_program)
    return items or None  # W&B's agent treats an empty command as the default one


def _check_macro(report: Report, path: str, item: str, has_program: bool) -> None:
    """A whole-item macro (after ${envvar:...} substitution) the agent would drop, or a dangling ${program}."""
    if unknown_macros([item]):
        known = [*sorted(KNOWN_MACROS), "${envvar:NAME}"]
        expanded = ENVVAR_MACRO.sub("", item)
        report.add(path, f"unknown macro {item!r} (W&B's agent silently drops it); {suggest(expanded, known, 'known')}")
    elif ENVVAR_MACRO.sub("", item) == "${program}" and not has_program:
        report.add(path, "${program} needs a `program:` key; add `program: train.py` or write the script's path")


def _as_list(command: str) -> str:
    """The words of ``command`` as a one-line YAML list (macros quoted, as `{` requires)."""
    return yaml.safe_dump(command.split(), default_flow_style=True, width=10**6).strip()


def check_metric(report: Report, metric: object) -> dict[str, Any] | None:
    """`metric`: name (required), goal, target, impute, impute_while_running, with W&B's defaults."""
    if not isinstance(metric, dict):
        report.add("metric", f"must be a mapping, got {metric!r}; write `metric: {{name: val_loss, goal: minimize}}`")
        return None
    allowed = ("name", "goal", "target", "impute", "impute_while_running")
    unknown_keys(report, "metric", metric, allowed, "metric")
    metric = coerce_fields(report, "metric", metric, ["target"])
    out = {**defaults(Metric), **metric}
    ok = _metric_name(report, metric.get("name"))
    ok &= check_choice(report, "metric.goal", out["goal"], ("minimize", "maximize"))
    ok &= check_choice(report, "metric.impute", out["impute"], ("latest", "best", "worst"))
    unquoted = out["impute_while_running"] is False
    ok &= check_choice(report, "metric.impute_while_running", out["impute_while_running"],
                       ("latest", "best", "worst", "false"), "; quote it: `impute_while_running: 'false'`" * unquoted)
    if "target" in metric and not is_number(out["target"]):
        report.add("metric.target", f"must be a number, got {out['target']!r}; write e.g. `target: 0.95`")
        ok = False
    return {k: out[k] for k in allowed} if ok else None


def _metric_name(report: Report, name: object) -> bool:
    """The metric name is required and must be a non-empty string."""
    if isinstance(name, str) and name:
        return True
    found = "missing" if name is None else f"got {name!r}"
    report.add("metric.name", f"{found}; name the logged value to optimise, e.g. `name: val_loss`")
    return False


def check_early_terminate(report: Report, stop: object) -> dict[str, Any] | None:
    """W&B's `hyperband_stopping` schema plus the engine-time rules (max_iter needs s, bands exist)."""
    path = "early_terminate"
    if not isinstance(stop, dict):
        report.add(path, f"must be a mapping, got {stop!r}; write `early_terminate: {{type: hyperband, min_iter: 3}}`")
        return None
    before = len(report.violations)
    stop = _known_stop_keys(report, stop)
    stop = coerce_fields(report, path, stop, ("min_iter", "max_iter", "s", "eta"))
    check_choice(report, f"{path}.type", stop.get("type"), ("hyperband",))
    out = defaults(Hyperband)
    out.update({k: v for k, v in stop.items() if k in out})
    out["min_iter"], out["max_iter"] = _iterations(report, path, stop)
    if "s" in stop and (not isinstance(stop["s"], int) or isinstance(stop["s"], bool)):
        report.add(f"{path}.s", f"must be a whole number of brackets, got {stop['s']!r}; write e.g. `s: 2`")
    if not is_number(out["eta"]) or out["eta"] <= 1:
        report.add(f"{path}.eta", f"must be a number greater than 1, got {out['eta']!r}; write e.g. `eta: 3`")
    if not isinstance(out["strict"], bool):
        report.add(f"{path}.strict", f"must be true or false, got {out['strict']!r}")
    if len(report.violations) == before:
        _check_bands(report, path, out)
    return out if len(report.violations) == before else None


def _known_stop_keys(report: Report, stop: dict[Any, Any]) -> dict[Any, Any]:
    """`early_terminate` without the keys W&B's controller does not read, each noted for a warning.

    W&B ignores such keys for compatibility (old configs carry them), so refusing the file
    would break sweeps that run under W&B; a misspelt key still gets its closest real key.
    """
    for key in [k for k in stop if k not in _STOP_KEYS]:
        hint = suggest(key, _STOP_KEYS, "keys read are")
        report.ignored_keys.append(f"early_terminate.{key}: ignored, as W&B ignores it; {hint}")
    return {k: v for k, v in stop.items() if k in _STOP_KEYS}


def _iterations(report: Report, path: str, stop: dict[str, Any]) -> tuple[int | None, int | None]:
    """(min_iter, max_iter) as ints, reporting values that are not whole numbers in range."""
    values: list[int | None] = []
    for key, least in (("min_iter", 1), ("max_iter", None)):
        value = stop.get(key)
        number = as_integer(value)
        if key in stop and (number is None or (least is not None and number < least)):
            report.add(f"{path}.{key}", f"must be a whole number{' >= 1' if least else ''}, got {value!r}; "
                                        f"write e.g. `{key}: {3 if least else 27}`")
        values.append(number)
    return values[0], values[1]


def _check_bands(report: Report, path: str, stop: dict[str, Any]) -> None:
    """W&B 0.3.0 fails at run time without brackets; the max_iter form has none when
    ``s < 1`` or ``max_iter / eta < 1`` (its first bracket is ``int(max_iter / eta)``)."""
    if stop["max_iter"] is None:
        if stop["min_iter"] is None:
            report.add(path, "needs min_iter, or max_iter with s; write e.g. `min_iter: 3`")
        return
    if stop["s"] is None:
        report.add(f"{path}.s", "missing: max_iter needs s (how many brackets below max_iter); write e.g. `s: 2`, "
                                "or drop max_iter to use min_iter")
    elif stop["s"] < 1 or stop["max_iter"] / stop["eta"] < 1:
        report.add(path, f"max_iter {stop['max_iter']}, s {stop['s']}, eta {stop['eta']} give no brackets; "
                         "increase max_iter or s, decrease eta, or use min_iter")


def check_method(report: Report, method: object) -> str | None:
    """`method`: grid, random or bayes (W&B's `custom` needs a W&B launch scheduler)."""
    if method == "custom":
        report.add("method", "custom needs a W&B launch scheduler, which raysweep does not support; "
                             "use grid, random or bayes")
        return None
    return method if check_choice(report, "method", method, METHODS) else None  # type: ignore[return-value]


def check_run_cap(report: Report, run_cap: object) -> int | None:
    """`run_cap`: a whole number > 0, W&B's cap on the number of runs."""
    number = as_integer(run_cap)
    if number is None or number < 1:
        report.add("run_cap", f"must be a whole number > 0, got {run_cap!r}; write e.g. `run_cap: 50`")
        return None
    return number


def check_controller(report: Report, controller: object) -> dict[str, Any] | None:
    """`controller: {type: local|cloud}`: accepted for W&B compatibility, not used by raysweep."""
    if not isinstance(controller, dict):
        report.add("controller", f"must be a mapping, got {controller!r}; write `controller: {{type: local}}`")
        return None
    ok = check_choice(report, "controller.type", controller.get("type"), ("local", "cloud"))
    return controller if ok else None


def check_scheduler(report: Report, config: dict[str, Any]) -> None:
    """`scheduler` (W&B 0.3.0): only `engine: wandb` goes with grid/random/bayes; ignored otherwise."""
    scheduler = config["scheduler"]
    if not isinstance(scheduler, dict):
        report.add("scheduler", f"must be a mapping, got {scheduler!r}; remove it (raysweep does the scheduling)")
        return
    unknown_keys(report, "scheduler", scheduler, ("engine", "source", "optimizer", "search_space"), "scheduler")
    check_choice(report, "scheduler.engine", scheduler.get("engine"), ("wandb",),
                 "; optuna and ax need method: custom, which raysweep does not support")
    for key in ("source", "optimizer", "search_space"):
        if key in scheduler:
            check_string(report, f"scheduler.{key}", scheduler[key])
            if key != "source" and "source" not in scheduler:
                report.add(f"scheduler.{key}", "needs `source:` (the file that defines it)")
    for clash in ("early_terminate", "controller"):
        if clash in config and (clash != "controller" or _get(config, "controller", "type") == "local"):
            report.add("scheduler", f"cannot be used together with `{clash}`; remove one of them")


def _get(config: dict[str, Any], key: str, sub: str) -> object:
    """``config[key][sub]`` when ``config[key]`` is a mapping, else None."""
    value = config.get(key)
    return value.get(sub) if isinstance(value, dict) else None


def check_search(report: Report, method: str | None, flat: dict[tuple[str, ...], Distribution],
                 has_metric: bool) -> None:
    """Rules of the search method: what grid can enumerate, what bayes needs."""
    if method == "grid":
        for key, dist in flat.items():
            if not _griddable(dist):
                report.add("parameters." + ".parameters.".join(key),
                           f"grid search cannot enumerate {_kind(dist)}; grid accepts constant, categorical "
                           "(without probabilities), int_uniform and q_uniform. Write `values: [...]`, or use "
                           "method: random or bayes")
    if method == "bayes":
        if not has_metric:
            report.add("metric", "method: bayes needs a metric to optimise; add e.g. "
                                 "`metric: {name: val_loss, goal: minimize}`")
        if flat and all(isinstance(d, Constant) for d in flat.values()):
            report.add("parameters", "method: bayes needs at least one parameter that varies; every "
                                     "parameter is a constant `value:`")


def _griddable(dist: Distribution) -> bool:
    """W&B's grid_search.py accepts exactly these kinds."""
    if isinstance(dist, Categorical):
        return dist.probabilities is None
    return isinstance(dist, (Constant, IntUniform, QUniform))


def _kind(dist: Distribution) -> str:
    """How to name a distribution's kind in a message."""
    if isinstance(dist, Categorical) and dist.probabilities is not None:
        return "categorical with probabilities"
    return f"a {dist.name} parameter"
