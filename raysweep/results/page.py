"""The sweep report: W&B's sweep views, offline, as one self-contained HTML file.

The data of each view comes from `raysweep.results.data`; this module packs it
into one HTML page whose small vanilla JavaScript (``assets/``) draws
it as SVG, so the report opens on a machine without internet.  Numbers are
rounded for the page and curves thinned to `CURVE_POINTS` in all, so the page
of 10,000 runs stays a few MB.

>>> raysweep.report("raysweep-runs/digits-mlp-3k9x2a7q")  # doctest: +SKIP
PosixPath('raysweep-runs/digits-mlp-3k9x2a7q/report.html')
"""

from __future__ import annotations

import html
import json
import os
import re
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raysweep.runlog.atomic import write_atomic
from raysweep.values import finite_number
from raysweep.results.data import (Axis, Source, Sweep, axes, best_runs, curve, importance, label,
                                  metric_vs_time, milestones, open_sweep, parallel_coordinates)

__all__ = ["render", "report"]

#: Learning-curve points kept in a report, all runs together: 10,000 runs stay under ~10 MB.
CURVE_POINTS = 200_000
_PLACEHOLDER = re.compile(r"__(CSS|JS|DATA|TITLE)__")


def _num(value: Any) -> float | None:
    """A finite number rounded to 6 digits for the page (JSON has no NaN), else None."""
    number = finite_number(value)
    return None if number is None else float(f"{number:.6g}")


def _nums(values: Any) -> list[float | None]:
    return [_num(v) for v in values]


def _cell(value: Any) -> Any:
    """A table cell for the page: a rounded number, a label, or None."""
    if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
        return _num(value)
    return None if value is None else label(value)


def _about(sweep: Sweep) -> dict[str, Any]:
    """The page's header: what sweep this is, how far it got, and its config as given."""
    info, spec = sweep.info, sweep.spec
    first = sweep.runs["created_at"].min() if len(sweep.runs) else None
    return {"name": info.get("name"), "id": info.get("id"), "state": info.get("state"),
            "method": spec.method, "path": str(sweep.path),
            "metric": {"name": spec.metric.name, "goal": spec.metric.goal} if spec.metric else None,
            "created_at": info.get("created_at"), "finished_at": info.get("finished_at"),
            "first_run": None if first is None or pd.isna(first) else first.isoformat(),
            "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "yaml": (sweep.path / "sweep.yaml").read_text(encoding="utf-8")}


def _axis(axis: Axis, values: pd.Series) -> dict[str, Any]:
    """An axis with each run's value: category index, or number."""
    if axis.kind == "category":
        index = {label: i for i, label in enumerate(axis.categories)}
        column: list[int | None] | list[float | None] = [index.get(v) for v in values]
    else:
        column = _nums(values)
    return {"label": axis.label, "kind": axis.kind, "categories": list(axis.categories),
            "values": column}


def _curves(sweep: Sweep) -> dict[str, Any]:
    """Learning curves as ``[run index, iterations, values]``, thinned to `CURVE_POINTS`."""
    budget = max(16, CURVE_POINTS // max(1, len(sweep.runs)))
    rungs = milestones(sweep)
    curves = [(i, curve(sweep, run_id, budget, rungs)) for i, run_id in enumerate(sweep.runs["id"])]
    return {"milestones": rungs, "budget": budget,
            "runs": [[i, iterations.tolist(), _nums(values)]
                     for i, (iterations, _, values) in curves if len(values)]}


def _best_table(sweep: Sweep) -> dict[str, Any]:
    best = best_runs(sweep)
    state = [state if pd.isna(rung) else f"stopped at {int(rung)}"
             for state, rung in zip(best["state"], best["stopped_at_rung"], strict=True)]
    best = best.drop(columns=["early_stopped", "stopped_at_rung"]).assign(state=state)
    names = {"name": "run", "runtime": "runtime (s)"}
    headers = [names.get(c, c.removeprefix("config.").removeprefix("summary.")) for c in best]
    return {"columns": headers, "rows": [[_cell(v) for v in row]
                                         for row in best.itertuples(index=False)]}


def _payload(sweep: Sweep) -> dict[str, Any]:
    """Everything the page draws, in columns aligned by run (oldest run first)."""
    coordinates = parallel_coordinates(sweep)
    timeline = metric_vs_time(sweep)
    table = importance(sweep)
    return {
        "sweep": _about(sweep),
        "runs": {"name": coordinates["name"].tolist(), "kind": coordinates["kind"].tolist(),
                 "t": _nums(timeline["elapsed"]), "value": _nums(timeline["value"]),
                 "best": _nums(timeline["best_so_far"]),
                 "rung": _nums(sweep.runs["stopped_at_rung"])},
        "axes": [_axis(axis, coordinates[axis.column]) for axis in axes(sweep)],
        "importance": {"rows": [[f, _num(i), _num(c)] for f, i, c in
                                table.itertuples(index=False)], "note": table.attrs["note"]},
        "curves": _curves(sweep),
        "best": _best_table(sweep),
    }


def render(source: Source) -> str:
    """The report of the run log at `source` as one HTML page (scripts and styles inline)."""
    sweep = open_sweep(source)
    data = json.dumps(_payload(sweep), separators=(",", ":"), allow_nan=False)
    assets = resources.files("raysweep.results") / "assets"
    parts = {"CSS": (assets / "report.css").read_text(encoding="utf-8"),
             "JS": (assets / "report.js").read_text(encoding="utf-8"),
             "DATA": data.replace("<", "\\u003c"),  # no `</script>` inside the data
             "TITLE": html.escape(f"{sweep.info.get('name') or 'sweep'} · raysweep report")}
    template = (assets / "report.html").read_text(encoding="utf-8")
    return _PLACEHOLDER.sub(lambda match: parts[match.group(1)], template)


def report(directory: Source, path: str | os.PathLike[str] | None = None) -> Path:
    """Write the HTML report of the run log `directory`; returns the file's path.

    Args:
        directory: a run-log directory (``raysweep-runs/<name>-<id>``), finished or running.
        path: where to write it (default ``<directory>/report.html``).
    """
    sweep = open_sweep(directory)
    target = Path(path) if path is not None else sweep.path / "report.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, render(sweep))
    return target
