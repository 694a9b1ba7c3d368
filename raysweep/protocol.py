"""How raysweep's own bookkeeping rides inside a Ray result, read by every layer.

A trial (`raysweep.trial.session`) writes each W&B history row as one Ray
result and marks the results that are not history rows under `META_KEY`; the
searchers, the early-stopping scheduler, the run-log recorder and the progress
display all read those marks.  The reading side lives here, below all of them,
so none of them imports the trial layer.  Standard library only.
"""

from __future__ import annotations

from typing import Any

#: Key under which raysweep's own bookkeeping rides inside a Ray result.
META_KEY = "_raysweep"


def is_history(result: dict[str, Any]) -> bool:
    """Whether a Ray result is a history row (as opposed to a summary-only update)."""
    return bool(result.get(META_KEY, {}).get("history", True))


def metric_value(result: dict[str, Any], metric: str) -> float | None:
    """The sweep metric of a history result as a float, or None when it is absent.

    W&B counts an iteration of a run each time it logs a number under the metric
    name; anything else (a string, a missing key, a summary-only update) is not one.
    Non-finite numbers are returned as they are: callers decide what NaN means.
    """
    if not is_history(result):
        return None
    value = result.get(metric)
    if isinstance(value, (bool, str, bytes)) or value is None:
        return None
    try:
        return float(value)  # ints, floats, numpy scalars
    except (TypeError, ValueError):
        return None
