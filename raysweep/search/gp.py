"""raysweep's Gaussian-process searcher: a Ray `Searcher` on the current bayes_opt (3.x) API.

Ray 2.60's `BayesOptSearch` calls `bayes_opt.UtilityFunction`, which bayes_opt 2.0
removed, and it silently linearises log ranges. This searcher instead works like
W&B's own GP: every parameter lives in the unit cube as its CDF value ``u`` and
goes back through the distribution's `ppf`, so log, normal and beta parameters
are searched on the scale they are sampled on. The sweep-level layer in
`searchers.py` turns the ``{label: u}`` suggestions into W&B values and feeds back
one number per finished trial.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from bayes_opt import TargetSpace
from bayes_opt.acquisition import ExpectedImprovement
from scipy import stats
from scipy.stats import qmc
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import Matern

from raysweep.search.stateful import StatefulSearcher
from raysweep.spec.distributions import Distribution
from raysweep.values import finite_number

# Quantiles are kept this far inside [0, 1]: at the edges normal / log_normal
# parameters map to infinity.
UNIT_EPS = 1e-6
# The GP is refitted on every suggestion; above this many observations it sees
# the best half of them plus a seeded random half of the rest (O(n^3) fit).
MAX_GP_POINTS = 200
# GP and acquisition settings. Matern 1.5 as W&B's GP; EI with a small xi on the
# warped, standardised targets; 5 kernel-fit restarts (bayes_opt's default).
# Chosen on Branin and Hartmann-6 (10 seeds x 50 runs) against W&B's engine.
MATERN_NU = 1.5
GP_RESTARTS = 5
EI_XI = 0.001
# Halvings of [0, 1] that find a value's quantile: past a double's resolution.
BISECT_STEPS = 56


def from_unit(dist: Distribution, u: float) -> Any:
    """The W&B value of `dist` at quantile `u` (clipped to stay finite)."""
    return dist.ppf(min(max(float(u), UNIT_EPS), 1.0 - UNIT_EPS))[0]


def to_unit(dist: Distribution, value: Any) -> float:
    """The quantile ``u`` at which `dist`'s `ppf` gives `value`: the inverse `from_unit` needs.

    Found by bisection, which works for every W&B kind since each `ppf` is
    monotone: the first ``u`` whose value is ``>= value`` and the first whose
    value is ``> value`` bound the step of a discrete (int, ``q_``) value, and
    its middle is returned; for a continuous value both are the same point.
    A value outside the distribution's range lands on the nearest edge.
    """
    target = float(value)
    bounds = np.array([[UNIT_EPS, 1.0 - UNIT_EPS]] * 2)  # rows: ">= value", "> value"
    for _ in range(BISECT_STEPS):
        mid = bounds.mean(axis=1)
        found = np.array(dist.ppf(mid), dtype=float)
        above = np.array([found[0] >= target, found[1] > target])
        bounds[above, 1] = mid[above]
        bounds[~above, 0] = mid[~above]
    return float(bounds[:, 1].mean())


class UnitCubeGP(StatefulSearcher):
    """Expected-improvement GP search over ``[0, 1]^d``, one dimension per label.

    Starts with a Latin-hypercube design of `n_initial_points` points (better
    coverage than W&B's 2 random ones), then on every suggestion fits a GP to
    the warped results and maximises EI with bayes_opt's acquisition optimiser
    (10,000 random points, then L-BFGS-B from the best 10). Trials still
    running count at the mean result (constant liar), so parallel trials
    spread out; trials without a finite result count at the worst result seen,
    like W&B's default ``impute: worst``.
    """

    def __init__(self, labels: list[str], *, metric: str | None, mode: str | None,
                 seed: int | None, n_initial_points: int) -> None:
        super().__init__(metric=metric, mode=mode)
        self._labels = list(labels)
        self._rng = np.random.default_rng(seed)
        self._design = qmc.LatinHypercube(d=len(labels), rng=self._rng).random(n_initial_points).tolist()
        self._observed: list[tuple[list[float], float]] = []  # (u, result to maximise)
        self._failed: list[list[float]] = []
        self._pending: dict[str, list[float]] = {}
        self._suggested = 0

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        """Take metric/mode from TuneConfig when not given at construction; the space is ours."""
        self._metric = self._metric or metric
        self._mode = self._mode or mode
        return True

    def suggest(self, trial_id: str) -> dict[str, float]:
        if self._suggested < len(self._design):
            u = self._design[self._suggested]
        elif len(self._observed) < 2:
            u = self._rng.uniform(size=len(self._labels)).tolist()
        else:
            u = self._acquire()
        self._suggested += 1
        self._pending[trial_id] = u
        return dict(zip(self._labels, u, strict=True))

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        u = self._pending.pop(trial_id, None)
        if u is None:
            return
        value = finite_number((result or {}).get(self._metric))
        if value is None:
            self._failed.append(u)
        else:
            self._observed.append((u, value if self._mode == "max" else -value))

    def add_evaluated(self, point: dict[str, float], value: float | None) -> None:
        """A run another driver evaluated at quantiles `point` (value None: no finite metric).

        It counts as one of this searcher's own earlier suggestions, so the
        Latin-hypercube design is not started again by a later driver.
        """
        u = [float(point[label]) for label in self._labels]
        self._suggested += 1
        if value is None:
            self._failed.append(u)
        else:
            self._observed.append((u, value if self._mode == "max" else -value))

    def _acquire(self) -> list[float]:
        """Maximise expected improvement of a GP fitted to everything known so far."""
        target_space = TargetSpace(None, {label: (0.0, 1.0) for label in self._labels},
                                   allow_duplicate_points=True)
        for u, target in zip(*self._training_data(), strict=True):
            target_space.register(dict(zip(self._labels, u, strict=True)), target)
        random_state = np.random.RandomState(self._rng.integers(2**31 - 1))
        gp = GaussianProcessRegressor(kernel=Matern(nu=MATERN_NU), alpha=1e-6, normalize_y=True,
                                      n_restarts_optimizer=GP_RESTARTS, random_state=random_state)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sklearn convergence chatter on flat data
            best = ExpectedImprovement(xi=EI_XI).suggest(
                gp=gp, target_space=target_space, random_state=random_state)
        return np.clip(best, 0.0, 1.0).tolist()

    def _training_data(self) -> tuple[list[list[float]], list[float]]:
        """Observed points with warped targets, plus imputed failures and pending lies.

        The targets are Yeo-Johnson transformed and standardised: typical
        losses have a long tail of bad values that would otherwise flatten the
        GP around the optimum (Branin-like shapes, diverged runs).
        """
        observed = self._subset(self._observed)
        y = np.array([target for _, target in observed])
        y = y / max(float(np.max(np.abs(y))), 1.0)  # huge values would overflow the std
        warped = -stats.yeojohnson(-(y - y.mean()) / (y.std() or 1.0))[0]
        standard = ((warped - warped.mean()) / (warped.std() or 1.0)).tolist()
        worst = min(standard)
        points = [u for u, _ in observed] + self._failed + list(self._pending.values())
        targets = standard + [worst] * len(self._failed) + [0.0] * len(self._pending)
        return points, targets

    def _subset(self, observed: list[tuple[list[float], float]]) -> list[tuple[list[float], float]]:
        if len(observed) <= MAX_GP_POINTS:
            return observed
        ranked = sorted(observed, key=lambda item: item[1], reverse=True)
        half = MAX_GP_POINTS // 2
        rest = self._rng.choice(len(ranked) - half, size=half, replace=False)
        return ranked[:half] + [ranked[half + i] for i in sorted(rest.tolist())]

    def get_state(self) -> dict:
        return {
            "metric": self._metric, "mode": self._mode, "labels": self._labels,
            "rng": self._rng.bit_generator.state, "design": self._design,
            "observed": self._observed, "failed": self._failed,
            "pending": self._pending, "suggested": self._suggested,
        }

    def set_state(self, state: dict) -> None:
        self._metric, self._mode, self._labels = state["metric"], state["mode"], state["labels"]
        self._rng.bit_generator.state = state["rng"]
        self._design, self._observed, self._failed = state["design"], state["observed"], state["failed"]
        self._pending, self._suggested = state["pending"], state["suggested"]
