"""Values as W&B stores them: plain Python, and which of them count as numbers.

Every layer meets the values a sweep produces (a searcher's numpy scalars, a
script's torch tensors, a run log read back from disk), so the two rules
about them live here, once: `plain` (the one converter to what YAML and JSON
accept) and `finite_number` (what counts as a metric value).  Standard
library only: `raysweep.trial.capture` loads this module by path inside the
user's program, where neither numpy nor raysweep need be importable.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from numbers import Real
from typing import Any


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
    number = float(value)
    return number if math.isfinite(number) else None
