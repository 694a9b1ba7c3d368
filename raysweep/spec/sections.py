"""The typed sections of a sweep file, `metric:` and `early_terminate:`, with W&B's defaults.

The defaults are written here once: `raysweep.spec.validate` fills a section's
missing keys from these dataclasses (`defaults`) before it checks them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class Metric:
    """`metric:` — what the sweep optimises, with W&B's defaults."""

    name: str
    goal: str = "minimize"
    target: float | None = None
    impute: str = "worst"
    impute_while_running: str = "false"

    @property
    def mode(self) -> Literal["min", "max"]:
        """Ray Tune's name for ``goal``."""
        return "max" if self.goal == "maximize" else "min"


@dataclass(frozen=True)
class Hyperband:
    """`early_terminate: {type: hyperband}`. When ``max_iter`` is set it wins over ``min_iter`` (as in W&B)."""

    min_iter: int | None = None
    max_iter: int | None = None
    s: int | None = None
    eta: float = 3
    strict: bool = True


def defaults(section: type[Metric] | type[Hyperband]) -> dict[str, Any]:
    """The keys of `section` that have a default, with it (W&B's, as the dataclass gives it)."""
    return {field.name: field.default for field in dataclasses.fields(section)
            if field.default is not dataclasses.MISSING}
