"""The data of the sweep report's views, each a DataFrame computed from a run log.

W&B users judge a sweep by looking at it: parallel coordinates, parameter
importance, the metric against time and the learning curves.  Each view is a
public function here returning a DataFrame, so a notebook gets the numbers the
HTML page (`raysweep.results.page`) draws.  Each takes a run-log directory or a
`Sweep` read once by `open_sweep`, and reads a running sweep's log as it is.

>>> importance("raysweep-runs/digits-mlp-3k9x2a7q")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raysweep.runlog.atomic import read_jsonl
from raysweep.spec.distributions import Categorical, Constant
from raysweep.results.table import sort_best_first
from raysweep.runlog.rundir import HISTORY
from raysweep.runlog.log import RunLog, load
from raysweep.spec.load import SweepSpec, load_spec
from raysweep.search.stopping import hyperband_milestones
from raysweep.protocol import metric_value
from raysweep.values import rank_key

__all__ = ["Axis", "Sweep", "axes", "best_runs", "curve", "importance", "label", "learning_curves",
           "metric_vs_time", "milestones", "open_sweep", "parallel_coordinates", "run_kind"]

#: Runs the random forest is fit on at most (a bootstrap sample per tree), so 10,000 runs stay fast.
FOREST_SAMPLES = 2_000
BEST_RUNS = 10
NO_SKLEARN = ("scikit-learn is not installed, so this table has correlation only; "
              "`pip install scikit-learn` adds random-forest importance")


@dataclass(frozen=True)
class Sweep:
    """A run log read once for every view: its spec, sweep.json and runs (oldest first)."""

    path: Path
    spec: SweepSpec
    info: dict[str, Any]
    runs: pd.DataFrame

    @property
    def metric(self) -> str | None:
        return self.spec.metric.name if self.spec.metric else None

    def values(self) -> pd.Series:
        """Each run's ``summary[metric]`` as floats (NaN where absent or not a number)."""
        column = f"summary.{self.metric}"
        if column not in self.runs:
            return pd.Series(np.nan, index=self.runs.index, dtype=float)
        return pd.to_numeric(self.runs[column], errors="coerce").astype(float)


Source = str | os.PathLike[str] | Sweep


@dataclass(frozen=True)
class Axis:
    """A swept parameter as a plot axis: ``linear``, ``log`` or ``category``."""

    column: str
    label: str
    kind: str
    categories: tuple[str, ...] = ()


def open_sweep(source: Source) -> Sweep:
    """Read the run log at `source` (a `Sweep` is returned as it is)."""
    if isinstance(source, Sweep):
        return source
    log = RunLog.open(source)
    with warnings.catch_warnings():  # the sweep file's warnings were shown when it ran
        warnings.simplefilter("ignore")
        spec = load_spec(log.path / "sweep.yaml", check_program=False)
    runs = load(log.path).sort_values("created_at", kind="stable").reset_index(drop=True)
    return Sweep(log.path, spec, log.sweep_info(), runs)


def run_kind(runs: pd.DataFrame) -> pd.Series:
    """``finished``, ``stopped`` (early), ``crashed`` (crashed, failed, killed) or ``running``."""
    kind = runs["state"].map({"finished": "finished", "running": "running"}).fillna("crashed")
    return kind.where(~runs["early_stopped"].eq(True), "stopped")


def label(value: Any) -> str:
    """A categorical value as the text the report shows (JSON for non-strings: 16, true, [1, 2])."""
    return value if isinstance(value, str) else json.dumps(value)


def axes(source: Source) -> list[Axis]:
    """The swept (non-constant) parameters that runs have, in W&B's order.

    Categoricals are categories in the order the sweep file lists them; a
    log-distributed parameter gets a log axis unless a run has a value <= 0
    (a q_log_* parameter can round to 0).
    """
    sweep = open_sweep(source)
    found = []
    for path, dist in sweep.spec.flat_parameters().items():
        column = "config." + ".".join(path)
        if isinstance(dist, Constant) or column not in sweep.runs:
            continue
        values = sweep.runs[column].dropna()
        if isinstance(dist, Categorical):
            given = [label(v) for v in dist.values]
            seen = [v for v in dict.fromkeys(values.map(label)) if v not in given]
            found.append(Axis(column, ".".join(path), "category", (*given, *sorted(seen))))
        else:
            log = "log" in dist.name and bool((pd.to_numeric(values, errors="coerce") > 0).all())
            found.append(Axis(column, ".".join(path), "log" if log else "linear"))
    return found


def parallel_coordinates(source: Source) -> pd.DataFrame:
    """One row per run: id, name, kind, each swept ``config.<key>`` and ``summary.<metric>``.

    Category parameters are given as the labels the axis shows, numbers as floats.
    """
    sweep = open_sweep(source)
    frame = pd.DataFrame({"id": sweep.runs["id"], "name": sweep.runs["name"],
                          "kind": run_kind(sweep.runs)})
    for axis in axes(sweep):
        column = sweep.runs[axis.column]
        frame[axis.column] = column.map(label, na_action="ignore") if axis.kind == "category" \
            else pd.to_numeric(column, errors="coerce")
    if sweep.metric:
        frame[f"summary.{sweep.metric}"] = sweep.values()
    return frame


def _design(sweep: Sweep) -> tuple[pd.DataFrame, pd.Series]:
    """Encoded parameters (one-hot categories, log10 of log parameters) and the finite metric."""
    coordinates = parallel_coordinates(sweep)
    y = sweep.values()
    keep = np.isfinite(y)
    parts = []
    for axis in axes(sweep):
        column = coordinates.loc[keep, axis.column]
        if axis.kind == "category":
            parts.append(pd.get_dummies(column, prefix=axis.label, prefix_sep=" = ", dtype=float))
            continue
        column = np.log10(column) if axis.kind == "log" else column
        parts.append(column.fillna(column.median()).rename(axis.label))
    x = pd.concat(parts, axis=1) if parts else pd.DataFrame(index=y[keep].index)
    return x, y[keep]


def _pearson(x: pd.Series, y: pd.Series) -> float:
    if len(x) < 2 or x.std() == 0 or y.std() == 0:
        return math.nan
    return float(np.corrcoef(x.to_numpy(float), y.to_numpy(float))[0, 1])


def _forest_importance(x: pd.DataFrame, y: pd.Series) -> np.ndarray | None:
    """Random-forest feature importance (impurity decrease, sums to 1); None without sklearn."""
    try:
        from sklearn.ensemble import RandomForestRegressor
    except ImportError:
        return None
    if len(y) < 2 or x.shape[1] == 0:
        return np.full(x.shape[1], math.nan)
    forest = RandomForestRegressor(n_estimators=100, random_state=0, n_jobs=1,
                                   max_samples=min(len(y), FOREST_SAMPLES))
    forest.fit(x.to_numpy(float), y.to_numpy(float))
    return forest.feature_importances_


def importance(source: Source) -> pd.DataFrame:
    """W&B's parameter-importance table: feature, importance, correlation; most important first.

    A feature is a numeric parameter (log10 of a log-distributed one) or one
    value of a categorical (``optimizer = adam``, one-hot).  Importance is a
    random forest's (NaN when scikit-learn is missing: then sorted by
    |correlation|); correlation is Pearson's with ``summary[metric]``, over the
    runs that have a finite metric value.
    """
    x, y = _design(open_sweep(source))
    forest = _forest_importance(x, y)
    frame = pd.DataFrame({
        "feature": list(x.columns),
        "importance": np.full(x.shape[1], math.nan) if forest is None else forest,
        "correlation": [_pearson(x[c], y) for c in x.columns]})
    key = frame["importance"] if forest is not None else frame["correlation"].abs()
    frame.attrs["note"] = None if forest is not None else NO_SKLEARN
    return frame.assign(_key=key).sort_values("_key", ascending=False, na_position="last",
                                              kind="stable").drop(columns="_key")


def metric_vs_time(source: Source) -> pd.DataFrame:
    """One row per run by creation: id, name, kind, created_at, elapsed (s), value, best_so_far."""
    sweep = open_sweep(source)
    created = sweep.runs["created_at"]
    value = sweep.values()
    maximize = bool(sweep.spec.metric and sweep.spec.metric.goal == "maximize")
    key = value.map(lambda v: rank_key(v, maximize)).replace(math.inf, np.nan).cummin()
    best = -key if maximize else key
    return pd.DataFrame({"id": sweep.runs["id"], "name": sweep.runs["name"],
                         "kind": run_kind(sweep.runs), "created_at": created,
                         "elapsed": (created - created.min()).dt.total_seconds(),
                         "value": value, "best_so_far": best.ffill()})


def curve(sweep: Sweep, run_id: str, budget: int | None,
           rungs: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Iterations, steps and values of the run's metric, thinned to `budget` points."""
    rows = [row for row in read_jsonl(sweep.path / "runs" / run_id / HISTORY)
            if sweep.metric and metric_value(row, sweep.metric) is not None]
    keep = _thin(len(rows), budget, rungs)
    steps = np.asarray([rows[i].get("_step", i) for i in keep], dtype=np.int64)
    return keep + 1, steps, np.asarray([float(rows[i][sweep.metric]) for i in keep])


def milestones(source: Source) -> list[int]:
    """The ASHA rungs (W&B hyperband bands) runs are judged at; [] without early_terminate."""
    terminate = open_sweep(source).spec.early_terminate
    return hyperband_milestones(terminate) if terminate else []


def learning_curves(source: Source, points_per_run: int | None = None) -> pd.DataFrame:
    """Long table of ``summary[metric]``'s history: id, name, kind, iteration, step, value.

    ``iteration`` counts the run's values of the metric (1, 2, ...), as W&B's
    hyperband and raysweep's ASHA do, so the rungs (`milestones`) are on its
    axis.  With `points_per_run`, longer runs are thinned evenly, keeping their
    first and last points and those at rungs.
    """
    sweep = open_sweep(source)
    rungs = milestones(sweep)
    parts = [(run_id, name, kind, *curve(sweep, run_id, points_per_run, rungs)) for
             run_id, name, kind in zip(sweep.runs["id"], sweep.runs["name"], run_kind(sweep.runs), strict=True)]
    lengths = [len(part[3]) for part in parts]
    return pd.DataFrame({
        **{key: np.repeat([part[i] for part in parts], lengths).astype(object)
           for i, key in enumerate(("id", "name", "kind"))},
        **{key: np.concatenate([part[i] for part in parts]) if parts else []
           for i, key in enumerate(("iteration", "step", "value"), start=3)}})


def _thin(length: int, budget: int | None, rungs: list[int]) -> np.ndarray:
    """Indices to keep of a curve: all, or `budget` evenly spaced plus the points at rungs."""
    if budget is None or length <= budget:
        return np.arange(length)
    even = np.linspace(0, length - 1, max(budget, 2)).round().astype(int)
    at_rungs = np.asarray([r - 1 for r in rungs if r <= length], dtype=int)
    return np.union1d(even, at_rungs)


def best_runs(source: Source, top: int = BEST_RUNS) -> pd.DataFrame:
    """The `top` runs by ``summary[metric]`` (the sweep's goal) with their swept config."""
    sweep = open_sweep(source)
    metric = [f"summary.{sweep.metric}"] if sweep.metric else []
    columns = ["name", "id", "state", "early_stopped", "stopped_at_rung", *metric, "runtime",
               *(axis.column for axis in axes(sweep))]
    ordered = sort_best_first(sweep.runs, sweep.spec)
    return ordered.reindex(columns=columns).head(top).reset_index(drop=True)
