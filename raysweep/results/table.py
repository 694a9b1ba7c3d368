"""The results table printed at the end of a sweep and by `raysweep results`.

One line per run, best first by the sweep metric's summary value, with the
swept parameters as columns, the way W&B's sweep table reads; crashed runs get
their exit code and the tail of their output underneath, so a user sees why.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import pandas as pd
from rich import box
from rich.console import RenderableType
from rich.table import Table

from raysweep.spec.distributions import Constant
from raysweep.values import rank_key

if TYPE_CHECKING:
    from raysweep.spec.load import SweepSpec

_MAX_COLUMNS = 8


def sort_best_first(runs: pd.DataFrame, spec: SweepSpec) -> pd.DataFrame:
    """Runs ordered best first by `summary.<metric>` (`raysweep.values.rank_key`); runs it cannot rank go last."""
    if spec.metric is None or f"summary.{spec.metric.name}" not in runs:
        return runs
    maximize = spec.metric.goal == "maximize"
    key = runs[f"summary.{spec.metric.name}"].map(lambda value: rank_key(value, maximize))
    return runs.assign(_key=key).sort_values("_key", kind="stable").drop(columns="_key")


def _state(row: pd.Series) -> str:
    rung = row.get("stopped_at_rung")
    if row.get("early_stopped") is True or (rung is not None and _present(rung)):
        return f"stopped@{int(rung)}" if _present(rung) else "stopped"
    return str(row.get("state", ""))


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _cell(value: Any) -> str:
    if not _present(value):
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def results_frame(runs: pd.DataFrame, spec: SweepSpec, top: int | None = None) -> pd.DataFrame:
    """The table's cells as text: run, state, the metric, the swept parameters, runtime; best first."""
    ordered = sort_best_first(runs, spec)
    if top:
        ordered = ordered.head(top)
    constants = {"config." + ".".join(path) for path, dist in spec.flat_parameters().items()
                 if isinstance(dist, Constant)}
    params = [c for c in ordered.columns
              if c.startswith("config.") and c not in constants][:_MAX_COLUMNS]
    metric = [f"summary.{spec.metric.name}"] if spec.metric and \
        f"summary.{spec.metric.name}" in ordered else []
    return pd.DataFrame({
        "run": ordered["name"],
        "state": ordered.apply(_state, axis=1),
        **{c.removeprefix("summary."): ordered[c].map(_cell) for c in metric},
        **{c.removeprefix("config."): ordered[c].map(_cell) for c in params},
        "runtime": ordered["runtime"].map(lambda s: f"{s:.1f}s" if _present(s) else "-"),
    })


def results_table(runs: pd.DataFrame, spec: SweepSpec, top: int | None = None) -> str:
    """A plain-text table of the runs, best first (`top` limits the rows)."""
    if runs.empty:
        return "no runs recorded yet"
    return results_frame(runs, spec, top).to_string(index=False)


def rich_results_table(runs: pd.DataFrame, spec: SweepSpec, top: int | None = None) -> RenderableType:
    """The same table drawn by `rich` for a terminal: the best run in bold, numbers right-aligned."""
    if runs.empty:
        return "no runs recorded yet"
    frame = results_frame(runs, spec, top)
    table = Table(box=box.SIMPLE_HEAD, header_style="bold")
    for i, column in enumerate(frame.columns):
        table.add_column(column, justify="left" if i < 2 else "right", overflow="fold")
    for i, row in enumerate(frame.itertuples(index=False)):
        table.add_row(*map(str, row), style="bold" if i == 0 and spec.metric else None)
    return table


def failures(runs: pd.DataFrame, tail_lines: int = 5) -> str:
    """Exit code and output tail of every crashed or failed run, for the end of a sweep."""
    failed = runs[runs["state"].isin(["crashed", "failed"])] if "state" in runs else runs.iloc[0:0]
    blocks = []
    for _, row in failed.iterrows():
        code = row.get("exit_code")
        header = f"{row['name']} ({row['state']}" + (
            f", exit code {int(code)})" if _present(code) else ")")
        error = str(row.get("error") or "").strip().splitlines()[-tail_lines:]
        blocks.append("\n".join([header, *("    " + line for line in error)]))
    return "\n".join(blocks)
