"""Every private name of Ray that raysweep uses, in one place.

Ray Tune has no public hook for three things raysweep needs: ASHA with rungs
of its own (W&B's bands) rather than a geometric series, a trial created
under a trial id of raysweep's choosing (a cut-off run restarted as itself),
and a Ray domain that samples with the numpy Generator Ray hands its samplers.
Ray's own ASHA, trial factory and samplers do these through the private names
below.  They hold because raysweep pins ``ray[tune]==2.60.0``; if a newer Ray
moves one of them, importing this module (or
``tests/search/test_ray_internals.py``) says which one, instead of a sweep
failing half-way with an ``AttributeError``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ray

from raysweep.errors import moved_private_name

#: The Ray release these names were read from (``pyproject.toml`` pins it).
TESTED_RAY = "2.60.0"

try:
    from ray.tune.experiment.config_parser import _create_trial_from_spec
    from ray.tune.schedulers.async_hyperband import _Bracket
    from ray.tune.search.sample import _BackwardsCompatibleNumpyRng
except ImportError as error:  # pragma: no cover - only with another Ray
    raise moved_private_name("Ray", ray.__version__, f"ray[tune]=={TESTED_RAY}",
                             "raysweep/search/_ray_internals.py", error) from error

if TYPE_CHECKING:
    from ray.tune.experiment import Trial
    from ray.tune.schedulers import AsyncHyperBandScheduler
    from ray.tune.search import SearchGenerator

__all__ = ["TESTED_RAY", "Bracket", "count_stopped", "create_trial", "forget_trial", "metric_sign",
           "numpy_random_state", "rung", "set_brackets", "set_rungs", "trial_bracket"]

#: Ray's ASHA bracket: `AsyncHyperBandScheduler` asks it to judge each result.
Bracket = _Bracket


# ----------------------------------------------------------------- ASHA

def set_rungs(bracket: Bracket, milestones: list[int]) -> None:
    """Give `bracket` these rungs (Ray keeps ``[(milestone, {trial_id: value})]``, highest first)."""
    bracket._rungs = [(milestone, {}) for milestone in sorted(milestones, reverse=True)]


def rung(bracket: Bracket, milestone: int) -> dict[str, float] | None:
    """The values recorded at `milestone` (trial id -> value, changed in place), None if not a rung."""
    return dict(bracket._rungs).get(milestone)


def set_brackets(scheduler: AsyncHyperBandScheduler, brackets: list[Bracket]) -> None:
    """Replace the brackets `scheduler` made from its grace period by these."""
    scheduler._brackets = list(brackets)


def trial_bracket(scheduler: AsyncHyperBandScheduler, trial: Trial) -> Bracket:
    """The bracket `scheduler` put `trial` in when it was added."""
    return scheduler._trial_info[trial.trial_id]


def forget_trial(scheduler: AsyncHyperBandScheduler, trial: Trial) -> None:
    """Drop `trial` from `scheduler`'s brackets table, as its own ``on_trial_complete`` does."""
    scheduler._trial_info.pop(trial.trial_id, None)


def count_stopped(scheduler: AsyncHyperBandScheduler) -> None:
    """Count one more stopped trial in `scheduler`'s own tally (its debug string shows it)."""
    scheduler._num_stopped += 1


def metric_sign(scheduler: AsyncHyperBandScheduler) -> float:
    """+1.0 when `scheduler` maximises its metric, -1.0 when it minimises (set by metric/mode)."""
    sign = scheduler._metric_op
    if sign is None:
        raise ValueError("the scheduler has no metric mode yet: Tune sets it through set_search_properties")
    return float(sign)


# ---------------------------------------------------------- trial factory

def create_trial(generator: SearchGenerator, spec: dict[str, Any], flat_config: dict[str, Any], *,
                 trial_id: str, tag: str) -> Trial:
    """A trial of `spec` with `trial_id`, numbered by `generator` like the trials it makes itself.

    The experiment tag is ``<number>_<tag>``, as Ray's is ``<number>_<params>``.
    """
    generator._counter += 1
    return _create_trial_from_spec(spec, generator._parser, evaluated_params=flat_config,
                                   experiment_tag=f"{generator._counter}_{tag}", trial_id=trial_id)


# ----------------------------------------------------------------- samplers

def numpy_random_state(random_state: Any) -> Any:
    """`random_state` (None, a seed, a numpy Generator or RandomState) as the wrapper Ray's samplers use."""
    if isinstance(random_state, _BackwardsCompatibleNumpyRng):
        return random_state
    return _BackwardsCompatibleNumpyRng(random_state)
