"""What a sweep will do, before it spends GPU hours: `validate`, `show` and `sample`.

`sample` draws configs through the very searcher a run uses, so what it prints
is what trials will receive.  Ray, Optuna and scikit-learn load only where a
line needs one of their objects (a Ray domain, a searcher, the scheduler's
rungs): `raysweep validate` never imports them, nor does `raysweep show` for a
random sweep of constants without early stopping.
"""

from __future__ import annotations

from typing import Any

from raysweep.spec.distributions import Constant, Distribution, describe_distribution
from raysweep.spec.load import ParamTree, SweepSpec
from raysweep.spec.macros import DEFAULT_COMMAND


def summary_line(spec: SweepSpec) -> str:
    """`random sweep 'digits' over 9 parameters, minimize val_loss, hyperband early stopping`."""
    name = f" '{spec.name}'" if spec.name else ""
    parts = [f"{spec.method} sweep{name} over {len(spec.flat_parameters())} parameters"]
    if spec.metric:
        parts.append(f"{spec.metric.goal} {spec.metric.name}")
    if spec.early_terminate:
        parts.append("hyperband early stopping")
    if spec.run_cap:
        parts.append(f"run_cap {spec.run_cap}")
    return ", ".join(parts)


def _tree_lines(tree: ParamTree, indent: str = "  ") -> list[str]:
    lines = []
    for key in sorted(tree):
        node = tree[key]
        if isinstance(node, Distribution):
            lines.append(f"{indent}{key}: {_describe(node)}")
        else:
            lines.append(f"{indent}{key}:")
            lines += _tree_lines(node, indent + "  ")
    return lines


def _describe(dist: Distribution) -> str:
    """What W&B samples, then the Ray domain that does it (a constant has none)."""
    if isinstance(dist, Constant):
        return describe_distribution(dist)
    from raysweep.search import space

    return space.describe(dist)


def _searcher_line(spec: SweepSpec) -> str:
    if spec.method == "random":
        return "random"
    from raysweep.search import searchers

    return searchers.searcher_name(spec)


def _scheduler_line(spec: SweepSpec) -> str:
    if spec.early_terminate is None:
        return "none (no early_terminate): every run trains to its end"
    from raysweep.search import stopping

    h = spec.early_terminate
    assert spec.metric is not None, "load_spec requires a metric for early_terminate"
    rungs = stopping.hyperband_milestones(h)
    shown = ", ".join(map(str, rungs[:8])) + (", ..." if len(rungs) > 8 else "")
    return (f"ASHA with W&B hyperband rungs at {shown} logged values of {spec.metric.name}; "
            f"keeps the best 1/{h.eta:g} at each rung ({'strict' if h.strict else 'best-so-far'})")


def describe_sweep(spec: SweepSpec) -> str:
    """The readable plan of a sweep: search space, searcher, scheduler, what runs."""
    lines = [summary_line(spec), "", "search space (Ray Tune domains):"]
    lines += _tree_lines(spec.parameters)
    lines += ["", f"searcher:  {_searcher_line(spec)}",
              f"scheduler: {_scheduler_line(spec)}"]
    if spec.metric and spec.metric.target is not None:
        lines.append(f"target:    the sweep ends once a run reaches {spec.metric.name} "
                     f"{'<=' if spec.metric.goal == 'minimize' else '>='} {spec.metric.target:g}")
    if spec.program or spec.command:
        command = spec.command or DEFAULT_COMMAND
        lines.append(f"runs:      {' '.join(command)}  (program: {spec.program})")
    return "\n".join(lines)


def sample_configs(spec: SweepSpec, n: int, *, seed: int | None = None) -> list[dict[str, Any]]:
    """Up to `n` configs from the searcher a run would use (a grid stops when exhausted)."""
    from raysweep.search import searchers as search

    searcher = search.make_searcher(spec, seed=seed, max_runs=n)
    if spec.metric is not None:
        searcher.set_search_properties(spec.metric.name, spec.metric.mode, {})
    configs = []
    for index in range(n):
        config = searcher.suggest(f"sample_{index:05d}")
        if not isinstance(config, dict):  # None (nothing yet) or Searcher.FINISHED
            break
        configs.append(config)
    return configs
