"""One check that a run config belongs to its sweep: every parameter, each value one its
distribution can yield, and nothing else (shared by the searcher, `sample` and CLI tests)."""

from __future__ import annotations

from typing import Any

from raysweep.spec.distributions import Categorical, Constant
from raysweep.spec.load import SweepSpec
from raysweep.spec.tree import leaves


def assert_config_in_space(config: dict[str, Any], spec: SweepSpec) -> None:
    params = spec.flat_parameters()
    flat = leaves(config)
    assert set(flat) == set(params), f"keys {sorted(flat)} != parameters {sorted(params)}"
    for path, dist in params.items():
        value = flat[path]
        if isinstance(dist, Constant):
            assert value == dist.value, (path, value)
        elif isinstance(dist, Categorical):
            assert value in dist.values, (path, value)
        else:
            low, high = dist.support()
            assert isinstance(value, (int, float)) and low <= value <= high, (path, value, low, high)
