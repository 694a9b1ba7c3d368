"""Optuna's private GP code that raysweep uses still means what raysweep expects.

`raysweep.search._optuna_internals.posterior_mean` is checked against what
it must be: the mean of Optuna's own GP, which nearly interpolates a smooth
function's values at the points it was fitted to and tracks it in between.
"""

from __future__ import annotations

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from raysweep.search import _optuna_internals as internals

SPACE = {"x": FloatDistribution(0.0, 1.0), "kind": CategoricalDistribution([0, 1])}


def _value(x: float, kind: int) -> float:
    return (x - 0.3) ** 2 + 0.5 * kind


def _trial(x: float, kind: int, state: TrialState = TrialState.COMPLETE) -> optuna.trial.FrozenTrial:
    value = _value(x, kind) if state == TrialState.COMPLETE else None
    return create_trial(params={"x": x, "kind": kind}, distributions=SPACE, value=value, state=state)


def test_the_pinned_optuna_is_the_one_these_names_were_read_from() -> None:
    assert optuna.__version__ == internals.TESTED_OPTUNA


def test_the_posterior_mean_follows_the_fitted_function() -> None:
    rng = np.random.default_rng(0)
    ended = [_trial(float(x), int(k)) for x, k in zip(rng.uniform(0, 1, 24), rng.integers(0, 2, 24), strict=True)]
    running = [_trial(x, k, TrialState.RUNNING) for x, k in ((0.3, 0), (0.3, 1), (0.9, 0), (0.55, 1))]
    expected = internals.posterior_mean(SPACE, ended, running)
    truth = [_value(t.params["x"], t.params["kind"]) for t in running]
    assert np.allclose(expected, truth, atol=0.05)
    at_ended = internals.posterior_mean(SPACE, ended, ended[:5])
    assert np.allclose(at_ended, [t.value for t in ended[:5]], atol=0.01)
