"""Values as W&B stores them: plain Python, which of them are numbers, which run is best.

Every layer meets the values a sweep produces (a searcher's numpy scalars, a
script's torch tensors, a run log read back from disk), so the rules about
them live here, once: `plain` (the one converter to what YAML and JSON
accept), `finite_number` (what counts as a real, finite number) and
`rank_key` (what makes a run better than another).

The best-run rule, used by the run log's ``best_run``, the results table, the
report, the progress line and the searchers' objective alike: only a finite
number ranks.  NaN, +inf and -inf never make a run the best (a diverged run's
``-inf`` loss is no success), nor do bools, strings or a missing value; such
runs sort after every run that has a finite value, in their own order.  (The
early-stopping scheduler goes one step further and counts such a value as the
worst loss at its rung: see `raysweep.search.stopping`.)

Standard library only: `raysweep.trial.capture` loads this module by path
inside the user's program, where neither numpy nor raysweep need be importable.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from numbers import Real
from typing import Any, TypeVar

_T = TypeVar("_T")


class Dropped:
    """Base of objects that `plain` leaves out (W&B's media, tables and artifacts)."""


_SKIP = object()


def plain(value: Any) -> Any:
    """`value` as plain Python (dict/list/str/int/float/bool/None), the way W&B stores it.

    Searchers hand out numpy scalars and trainables log numpy and torch values:
    ``yaml.safe_dump`` rejects all of them (and subclasses of str or int) and
    ``json`` some.  Scalars and arrays become numbers and lists through their
    ``tolist()``, so numpy is never imported: this runs inside the user's
    program too, and is the one converter of the driver's run log.  Mapping
    keys become strings, `Dropped` objects are left out, anything else unknown
    becomes its ``str``.
    """
    if isinstance(value, Dropped):
        return _SKIP
    if isinstance(value, Mapping):
        pairs = ((str(k), plain(v)) for k, v in value.items())
        return {k: v for k, v in pairs if v is not _SKIP}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [v for v in map(plain, value) if v is not _SKIP]
    if callable(getattr(value, "tolist", None)):
        return plain(value.tolist())  # numpy/torch scalars and arrays
    for kind in (bool, int, float, str):
        if isinstance(value, kind):
            return kind(value)
    return None if value is None else str(value)


def finite_number(value: Any) -> float | None:
    """`value` as a float when it is a real, finite number, else None.

    Real numbers are ints, floats and numpy's numbers (which register as
    `numbers.Real`); bools are not numbers here (W&B's metric is never a
    flag), and neither are strings that look like numbers.
    """
    if isinstance(value, bool) or not isinstance(value, Real):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int beyond float range
        return None
    return number if math.isfinite(number) else None


def rank_key(value: Any, maximize: bool) -> float:
    """Where a metric value ranks, lower first; `math.inf` for every value that does not rank.

    Sort runs by it, stably, to list them best first (see the module docstring).
    """
    number = finite_number(value)
    if number is None:
        return math.inf
    return -number if maximize else number


def is_better(value: Any, than: Any, maximize: bool) -> bool:
    """Whether `value` ranks, and ranks strictly better than `than` (None: nothing ranked yet)."""
    key = rank_key(value, maximize)
    return key < math.inf and key < rank_key(than, maximize)


def best_of(items: Iterable[_T], value: Callable[[_T], Any], maximize: bool) -> _T | None:
    """The first of `items` whose `value` ranks best; None when no item's value ranks."""
    best, best_key = None, math.inf
    for item in items:
        key = rank_key(value(item), maximize)
        if key < best_key:
            best, best_key = item, key
    return best
