"""raysweep's unit-cube GP searcher on its own: design, learning, impute-worst, saved state."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from raysweep.search.gp import UNIT_EPS, UnitCubeGP, from_unit
from raysweep.spec.distributions import LogUniformValues, Normal


def bowl(point: dict[str, float]) -> float:
    return (point["x"] - 0.3) ** 2 + (point["y"] - 0.7) ** 2


def run(searcher: UnitCubeGP, n: int, start: int = 0) -> list[float]:
    values = []
    for i in range(start, start + n):
        point = searcher.suggest(f"t{i}")
        values.append(bowl(point))
        searcher.on_trial_complete(f"t{i}", {"loss": values[-1]})
    return values


def test_from_unit_maps_quantiles_through_the_ppf_and_stays_finite() -> None:
    assert from_unit(LogUniformValues(1e-4, 1e-1), 0.5) == math.exp((math.log(1e-4) + math.log(1e-1)) / 2)
    assert math.isfinite(from_unit(Normal(0, 1), 0.0)) and math.isfinite(from_unit(Normal(0, 1), 1.0))
    assert from_unit(Normal(0, 1), 0.0) == from_unit(Normal(0, 1), UNIT_EPS)


def test_the_design_is_a_latin_hypercube_then_the_gp_closes_in() -> None:
    searcher = UnitCubeGP(["x", "y"], metric="loss", mode="min", seed=3, n_initial_points=5)
    first = [searcher.suggest(f"d{i}") for i in range(5)]
    for axis in ("x", "y"):  # one point in each fifth of each axis
        assert sorted(int(p[axis] * 5) for p in first) == [0, 1, 2, 3, 4]
    for i, point in enumerate(first):
        searcher.on_trial_complete(f"d{i}", {"loss": bowl(point)})
    later = run(searcher, 15, start=5)
    assert min(later) < 1e-4 and min(later) < min(bowl(p) for p in first) / 100


def test_runs_without_a_finite_value_count_as_the_worst_seen() -> None:
    searcher = UnitCubeGP(["x", "y"], metric="loss", mode="min", seed=1, n_initial_points=3)
    for i, value in enumerate([0.5, math.nan, None]):
        searcher.suggest(f"t{i}")
        searcher.on_trial_complete(f"t{i}", {"loss": value} if value is not None else None)
    points, targets = searcher._training_data()
    assert len(points) == 3 and targets[1:] == [min(targets)] * 2


def test_maximising_flips_the_sign_and_saved_state_continues_identically(tmp_path: Path) -> None:
    searcher = UnitCubeGP(["x", "y"], metric="acc", mode="max", seed=5, n_initial_points=3)
    for i in range(4):
        point = searcher.suggest(f"t{i}")
        searcher.on_trial_complete(f"t{i}", {"acc": -bowl(point)})
    assert all(target <= 0 for _, target in searcher._observed)
    searcher.save(str(tmp_path / "gp.pkl"))
    restored = UnitCubeGP(["x", "y"], metric=None, mode=None, seed=None, n_initial_points=3)
    restored.restore(str(tmp_path / "gp.pkl"))
    assert (restored.metric, restored.mode) == ("acc", "max")
    assert np.allclose(list(restored.suggest("next").values()), list(searcher.suggest("next").values()))
