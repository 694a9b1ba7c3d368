"""W&B parameter distributions as Ray Tune domains that sample the same distribution.

Two users: `RandomSearcher` draws each random run's values from these domains
(with its own seeded Generator), and `raysweep show` prints them.  No Ray
searcher is handed them as a search space (grid walks W&B's grid points, bayes
searches quantiles), so they need only sample right and say what they sample.
Where Ray has a primitive with exactly W&B's distribution (uniform, randint
with max + 1, loguniform, randn, choice) it is used; every other kind (W&B's
unbounded half-to-even ``q`` rounding with its int/float typing, weighted
categoricals, log-normal, beta) becomes a small `Domain` subclass whose sampler
calls the `Distribution`'s own ppf.  Every domain built here carries the
`Distribution` it came from as ``domain.distribution``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ray import tune
from ray.tune.search import sample as ray_sample

from raysweep.search import _ray_internals as ray_internals
from raysweep.spec.distributions import (
    Categorical,
    Constant,
    Distribution,
    IntUniform,
    InvLogUniform,
    InvLogUniformValues,
    LogUniform,
    LogUniformValues,
    Normal,
    Uniform,
    describe_distribution,
)

if TYPE_CHECKING:
    from raysweep.spec.load import ParamTree, SweepSpec


class WandbSampler(ray_sample.Sampler):
    """Ray sampler that draws ``distribution.ppf(random_state.uniform())``."""

    def sample(
        self,
        domain: ray_sample.Domain,
        config: Any = None,
        size: int = 1,
        random_state: ray_sample.RandomState = None,
    ) -> Any:
        """One plain value for ``size == 1`` (as Ray's samplers), else a list of ``size``."""
        assert isinstance(domain, WandbDomain), "WandbSampler samples only the domains built here"
        rng = ray_internals.numpy_random_state(random_state)
        return domain.distribution.sample(rng, None if size == 1 else size)

    def __str__(self) -> str:
        return "W&B ppf"


class WandbDomain(ray_sample.Domain):
    """Mixin: a Ray domain sampled by W&B's formula, carrying its `Distribution`."""

    distribution: Distribution

    def __init__(self, distribution: Distribution, *args: Any) -> None:
        super().__init__(*args)
        self.distribution = distribution
        self.set_sampler(WandbSampler())


class WandbFloat(WandbDomain, ray_sample.Float):
    """Float-valued W&B kinds without a Ray primitive (log_normal, beta, float-q kinds)."""


class WandbInteger(WandbDomain, ray_sample.Integer):
    """q kinds with an integer `q`, which W&B returns as ints (possibly unbounded)."""


class WandbCategorical(WandbDomain, ray_sample.Categorical):
    """categorical with `probabilities` (W&B's categorical_w_probabilities)."""


def to_domain(dist: Distribution) -> Any:
    """The Ray param_space entry for one W&B distribution; a constant stays a plain value."""
    if isinstance(dist, Constant):
        return copy.deepcopy(dist.value)
    domain = _primitive(dist)
    if domain is None:
        return _custom(dist)
    domain.distribution = dist  # type: ignore[attr-defined]  # Ray's own domain, tagged like ours
    return domain


def _primitive(dist: Distribution) -> ray_sample.Domain | None:
    """Ray's own domain when it samples exactly W&B's distribution, else None."""
    if isinstance(dist, Uniform):
        return tune.uniform(dist.min, dist.max)
    if isinstance(dist, IntUniform):
        return tune.randint(dist.min, dist.max + 1)  # Ray's upper bound is exclusive
    if isinstance(dist, Normal):
        return tune.randn(dist.mu, dist.sigma)
    if isinstance(dist, Categorical) and dist.probabilities is None:
        return tune.choice(list(dist.values))
    if isinstance(dist, (LogUniformValues, InvLogUniformValues)):
        return tune.loguniform(dist.min, dist.max)  # the engine samples inv_* like this
    if isinstance(dist, (LogUniform, InvLogUniform)):
        low, high = dist.support()  # [e^min, e^max], or [e^-max, e^-min] for inv
        if 0 < low and high < math.inf:  # exponents beyond float range: use the ppf
            return tune.loguniform(low, high)
    return None


def _custom(dist: Distribution) -> WandbDomain:
    if isinstance(dist, Categorical):
        return WandbCategorical(dist, list(dist.values))
    domain_cls = WandbInteger if isinstance(getattr(dist, "q", None), int) else WandbFloat
    return domain_cls(dist, *dist.support())


def param_space(tree: ParamTree) -> dict[str, Any]:
    """Nested Ray param_space for a (nested) parameter tree, keys sorted like W&B's engine."""
    return {
        key: param_space(value) if isinstance(value, Mapping) else to_domain(value)
        for key, value in sorted(tree.items())
    }


def search_space(spec: SweepSpec) -> dict[str, Any]:
    """The Ray param_space of a sweep: nested dicts as `wandb.config` shows them."""
    return param_space(spec.parameters)


def describe(dist: Distribution) -> str:
    """One line for `raysweep show`: what W&B samples, then the Ray domain that does it."""
    meaning = describe_distribution(dist)
    domain = to_domain(dist)
    if not isinstance(domain, ray_sample.Domain):
        return meaning
    bounds = domain.domain_str
    if type(domain) is ray_sample.Integer:  # tune.randint: the upper bound is exclusive
        bounds = f"[{domain.lower}, {domain.upper})"
    return f"{meaning} -> Ray {type(domain).__name__}[{domain.get_sampler()}] {bounds}"
