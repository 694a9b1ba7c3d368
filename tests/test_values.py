"""The value rules every layer shares: plain values, finite numbers, the one best-run rule."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from raysweep.results.table import sort_best_first
from raysweep.runlog.rundir import best_record
from raysweep.spec.load import load_spec
from raysweep.values import Dropped, best_of, finite_number, is_better, plain, rank_key

#: Metric values in the order they were logged; only the finite numbers may rank.
LOGGED = [0.5, math.nan, -math.inf, math.inf, None, "0.1", True, 0.2, np.float64(0.2), 10**400, 0.9]


@pytest.mark.parametrize(("value", "number"), [
    (3, 3.0), (-0.5, -0.5), (np.float32(0.25), 0.25), (np.int64(7), 7.0), (Fraction(1, 4), 0.25),
    (True, None), (np.bool_(True), None), ("1.5", None), (None, None), (math.nan, None),
    (math.inf, None), (-math.inf, None), (10**400, None), ([1.0], None), (1 + 2j, None),
])
def test_finite_number_is_a_real_finite_non_bool(value: object, number: float | None) -> None:
    assert finite_number(value) == number


def test_plain_makes_numpy_and_containers_plain_and_drops_placeholders() -> None:
    class Image(Dropped):
        pass

    value = {1: np.float64(0.5), "a": (np.int32(2), Image()), "b": {np.str_("x")}, "c": Image(),
             "d": np.arange(3), "e": object}
    assert plain(value) == {"1": 0.5, "a": [2], "b": ["x"], "d": [0, 1, 2], "e": str(object)}
    assert type(plain(np.float64(0.5))) is float and type(plain(np.int64(2))) is int


@pytest.mark.parametrize("maximize", [False, True])
def test_only_finite_numbers_rank_and_the_rest_keep_their_order(maximize: bool) -> None:
    ordered = sorted(range(len(LOGGED)), key=lambda i: rank_key(LOGGED[i], maximize))
    finite = [0, 7, 8, 10]  # 0.5, 0.2, 0.2 (numpy, tied), 0.9
    best_first = [10, 0, 7, 8] if maximize else [7, 8, 0, 10]
    assert ordered == best_first + [i for i in range(len(LOGGED)) if i not in finite]
    assert best_of(LOGGED, lambda v: v, maximize) == LOGGED[best_first[0]]
    assert best_of([math.nan, -math.inf, None], lambda v: v, maximize) is None


def test_is_better_is_strict_and_nothing_unranked_beats_anything() -> None:
    assert is_better(0.3, None, maximize=False) and is_better(0.1, 0.3, maximize=False)
    assert not is_better(0.3, 0.3, maximize=False) and is_better(0.5, 0.3, maximize=True)
    for unranked in (math.nan, -math.inf, math.inf, None, "0.0", False):
        assert not is_better(unranked, None, maximize=False)
        assert not is_better(unranked, 1e9, maximize=False) and not is_better(unranked, -1e9, maximize=True)
        assert is_better(1e9, unranked, maximize=False)


@pytest.mark.parametrize("goal", ["minimize", "maximize"])
def test_the_run_log_and_the_results_table_pick_the_same_best_run(goal: str) -> None:
    spec = load_spec({"method": "random", "metric": {"name": "loss", "goal": goal},
                      "parameters": {"x": {"values": [1, 2]}}})
    records = [{"id": f"r{i}", "summary": {"loss": value}} for i, value in enumerate(LOGGED)]
    runs = pd.DataFrame({"id": [r["id"] for r in records], "summary.loss": LOGGED})
    table_order = list(sort_best_first(runs, spec)["id"])
    assert best_record(records, "loss", goal)["id"] == table_order[0]
    assert table_order[:4] == (["r10", "r0", "r7", "r8"] if goal == "maximize" else ["r7", "r8", "r0", "r10"])
