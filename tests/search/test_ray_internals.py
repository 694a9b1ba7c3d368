"""Ray's private names that raysweep uses still mean what raysweep expects.

Each check drives the real Ray object through `raysweep.search._ray_internals`
and then asks Ray's own code whether it saw the change, so a newer Ray that
renames or repurposes one of them fails here, naming it, rather than in the
middle of a sweep.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import ray
from ray import tune
from ray.tune.experiment import Trial
from ray.tune.schedulers import AsyncHyperBandScheduler
from ray.tune.search import SearchGenerator, Searcher

from raysweep.search import _ray_internals as internals


def _expect(private: str, used_by: str, check: Callable[[], Any]) -> Any:
    """Run `check`; on any failure, say which private name of Ray changed and who relies on it."""
    try:
        return check()
    except Exception as error:  # noqa: BLE001 - every failure here means the same thing
        pytest.fail(f"Ray {ray.__version__} changed {private} (raysweep was written against "
                    f"{internals.TESTED_RAY}); raysweep.search._ray_internals.{used_by} relies on it: "
                    f"{type(error).__name__}: {error}")


def test_the_pinned_ray_is_the_one_these_names_were_read_from() -> None:
    assert ray.__version__ == internals.TESTED_RAY


def test_bracket_rungs_are_read_by_rays_own_bracket() -> None:
    bracket = internals.Bracket(1, 9, 3, 0, stop_last_trials=False)
    internals.set_rungs(bracket, [2, 11, 5])
    recorded = _expect("_Bracket._rungs", "rung", lambda: internals.rung(bracket, 5))
    assert recorded == {} and internals.rung(bracket, 3) is None
    recorded["t1"] = 0.5
    shown = _expect("_Bracket._rungs / debug_str", "set_rungs", bracket.debug_str)
    assert shown == "Bracket: Iter 11.000: None | Iter 5.000: 0.5 | Iter 2.000: None", (
        f"Ray {ray.__version__}'s _Bracket no longer reads _rungs as [(milestone, {{trial: value}})], "
        f"highest first (raysweep.search._ray_internals.set_rungs): {shown}")


def _scheduler() -> AsyncHyperBandScheduler:
    scheduler = AsyncHyperBandScheduler(max_t=9, grace_period=1, reduction_factor=3, brackets=1)
    scheduler.set_search_properties(metric="loss", mode="min")
    return scheduler


def test_scheduler_tables_are_rays_own() -> None:
    scheduler = _scheduler()
    assert _expect("AsyncHyperBandScheduler._metric_op", "metric_sign",
                   lambda: internals.metric_sign(scheduler)) == -1.0
    ours = internals.Bracket(1, 9, 3, 0)
    internals.set_rungs(ours, [4])
    internals.set_brackets(scheduler, [ours])
    trial = Trial("__fake", trial_id="t1", stub=True)
    scheduler.on_trial_add(None, trial)  # Ray picks the trial's bracket from `_brackets`
    assert _expect("AsyncHyperBandScheduler._trial_info / _brackets", "trial_bracket",
                   lambda: internals.trial_bracket(scheduler, trial)) is ours
    internals.count_stopped(scheduler)
    text = scheduler.debug_string()
    assert "num_stopped=1" in text and "Iter 4.000" in text, (
        f"Ray {ray.__version__}'s AsyncHyperBandScheduler no longer reports _num_stopped/_brackets "
        f"(raysweep.search._ray_internals.count_stopped, set_brackets): {text}")
    _expect("AsyncHyperBandScheduler._trial_info", "forget_trial",
            lambda: internals.forget_trial(scheduler, trial))
    with pytest.raises(KeyError):
        internals.trial_bracket(scheduler, trial)


class _Fixed(Searcher):
    def suggest(self, trial_id: str) -> dict[str, Any]:
        return {"x": 1}


def test_create_trial_numbers_trials_like_the_generator() -> None:
    tune.register_trainable("raysweep_internals_probe", lambda config: None)
    generator = SearchGenerator(_Fixed())
    spec = {"run": "raysweep_internals_probe", "config": {"x": 2}}
    trial = _expect("_create_trial_from_spec / SearchGenerator._parser, _counter", "create_trial",
                    lambda: internals.create_trial(generator, spec, {"x": 2}, trial_id="abc123",
                                                   tag="resumed"))
    assert (trial.trial_id, trial.experiment_tag, trial.config) == ("abc123", "1_resumed", {"x": 2})


def test_numpy_random_state_is_what_rays_samplers_take() -> None:
    state = _expect("ray.tune.search.sample._BackwardsCompatibleNumpyRng", "numpy_random_state",
                    lambda: internals.numpy_random_state(np.random.default_rng(7)))
    assert internals.numpy_random_state(state) is state
    drawn = tune.uniform(0, 1).sample(random_state=state)  # Ray's own sampler takes it
    assert drawn == np.random.default_rng(7).uniform(0, 1)
