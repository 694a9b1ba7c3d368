"""Sweep `method` -> Ray Tune searcher that proposes what W&B's engine would.

- ``grid``: W&B's grid points in W&B's order (`grid_points`), then FINISHED.
- ``random``: independent draws from the Ray domains of `space.py`, seeded.
- ``bayes``: a model of `metric.name`: Optuna's GP over every kind of space
  (`gp.py`), which proposes W&B values with W&B's exact types, bounds and
  rounding, and learns runs it did not propose from their W&B configs.

Every method is wrapped in `SweepSearcher`, which turns the inner searcher's flat
``{"opt/lr": ...}`` proposals into nested ``wandb.config``-style dicts with the
constants filled in, stops after `max_runs` suggestions (``--count``,
``run_cap``), and feeds back one number per trial: the best value of the metric
the trial logged, as W&B's engine does.
"""

from __future__ import annotations

import copy
import itertools
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import yaml
from ray import cloudpickle
from ray.tune.search import ConcurrencyLimiter, SearchGenerator, Searcher
from ray.tune.utils.util import flatten_dict, merge_dicts

from raysweep.search import _ray_internals as ray_internals, space
from raysweep.search.gp import MAX_GP_TRIALS, OptunaBayes
from raysweep.search.stateful import StatefulSearcher
from raysweep.protocol import META_KEY
from raysweep.values import finite_number, is_better, plain
from raysweep.spec.distributions import Categorical, Constant, Distribution, IntUniform
from raysweep.spec.load import SweepSpec


@dataclass(frozen=True)
class Params:
    """A sweep's parameters in W&B's order, each searched under a flat label like ``"opt/lr"``.

    ``/`` cannot occur in a W&B parameter name, so labels never collide.
    """

    paths: tuple[tuple[str, ...], ...]
    dists: tuple[Distribution, ...]

    @classmethod
    def of(cls, spec: SweepSpec) -> Params:
        flat = spec.flat_parameters()
        return cls(tuple(flat), tuple(flat.values()))

    def searched(self) -> dict[str, Distribution]:
        """Label -> distribution of every parameter that is not a constant."""
        return {"/".join(path): dist for path, dist in zip(self.paths, self.dists, strict=True)
                if not isinstance(dist, Constant)}

    def nest(self, flat: Mapping[str, Any]) -> dict[str, Any]:
        """The nested config for searched values keyed by label, constants filled in."""
        config: dict[str, Any] = {}
        for path, dist in zip(self.paths, self.dists, strict=True):
            value = copy.deepcopy(dist.value) if isinstance(dist, Constant) else flat["/".join(path)]
            node = config
            for key in path[:-1]:
                node = node.setdefault(key, {})
            node[path[-1]] = value
        return config


def _yaml_key(value: Any) -> str:
    """W&B 0.3.0's grid identity of a value: its YAML text, integral floats as ints (1.0 == 1)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return yaml.dump(value, default_flow_style=True, sort_keys=True)


def _grid_axis(dist: Distribution) -> list[tuple[str, Any]]:
    """A parameter's grid values with their keys; a duplicate keeps its first place, the last value.

    That is what W&B's engine yields: its product over values keeps the first
    occurrence of each combination and looks values up by hash (last one wins).
    """
    by_key: dict[str, Any] = {}
    for value in dist.grid_values():
        by_key[_yaml_key(value)] = value  # dict keeps the key's first position, takes the last value
    return list(by_key.items())


def _run_identity(paths: list[tuple[str, ...]], axes: list[list[tuple[str, Any]]],
                  config: Mapping[str, Any]) -> tuple[str, ...] | None:
    """W&B's key of an existing run's config: one value key per grid parameter, None if one is missing.

    Dict values are cut down to the keys the grid's own values use, as W&B
    does, so keys a run added at runtime do not make it a new point.
    """
    identity = []
    for path, axis in zip(paths, axes, strict=True):
        value: Any = config
        for name in path:
            if not isinstance(value, Mapping) or name not in value:
                return None
            value = value[name]
        known = {key for _, option in axis if isinstance(option, Mapping) for key in option}
        if isinstance(value, Mapping) and known:
            value = {key: item for key, item in value.items() if key in known}
        identity.append(_yaml_key(value))
    return tuple(identity)


def _flat_grid(params: Params, exclude: Sequence[Mapping[str, Any]] = ()) -> list[dict[str, Any]]:
    """W&B's grid: product in sorted-name order (depth first), the last name varying fastest.

    Points equal to the config of a run in `exclude` are left out, as W&B's
    grid skips the points its sweep already ran.
    """
    searched, axes, paths = _grid_axes(params)
    done = {_run_identity(paths, axes, config) for config in exclude}
    return [dict(zip(searched, (value for _, value in combo), strict=True))
            for combo in itertools.product(*axes) if tuple(key for key, _ in combo) not in done]


def _grid_axes(params: Params) -> tuple[dict[str, Distribution], list[list[tuple[str, Any]]],
                                        list[tuple[str, ...]]]:
    """The searched parameters, each one's grid values with keys, and each one's path."""
    searched = params.searched()
    return (searched, [_grid_axis(dist) for dist in searched.values()],
            [tuple(label.split("/")) for label in searched])


def grid_points(spec: SweepSpec) -> list[dict[str, Any]]:
    """Every point of the sweep's grid as a nested config, in W&B's order."""
    params = Params.of(spec)
    return [params.nest(point) for point in _flat_grid(params)]


class GridSearcher(StatefulSearcher):
    """Yields precomputed grid points (flat, by label) in order, then FINISHED."""

    def __init__(self, points: list[dict[str, Any]]) -> None:
        super().__init__()
        self._points = points
        self._next = 0

    def suggest(self, trial_id: str) -> dict[str, Any] | str:  # type: ignore[override]  # Ray's hint omits FINISHED
        if self._next >= len(self._points):
            return Searcher.FINISHED
        self._next += 1
        return copy.deepcopy(self._points[self._next - 1])

    def get_state(self) -> dict:
        return {"next": self._next}

    def set_state(self, state: dict) -> None:
        self._next = state["next"]


class RandomSearcher(StatefulSearcher):
    """Independent draws from the Ray domains of `space.py`, from one seeded numpy Generator."""

    def __init__(self, domains: dict[str, Any], seed: int | None) -> None:
        super().__init__()
        self._domains = domains
        self._rng = np.random.default_rng(seed)

    def suggest(self, trial_id: str) -> dict[str, Any]:
        return {label: domain.sample(random_state=self._rng) for label, domain in self._domains.items()}

    def get_state(self) -> dict:
        return {"rng": self._rng.bit_generator.state}

    def set_state(self, state: dict) -> None:
        self._rng.bit_generator.state = state["rng"]


class SharedSweep(Protocol):
    """The run log's shared state as a searcher sees it (`raysweep.runlog.lease.Ledger`).

    Every method but `locked` is called inside ``with locked():``.
    """

    configs: list[dict[str, Any]]

    def locked(self) -> AbstractContextManager[Any]: ...
    def known(self, trial_id: str) -> bool: ...
    def full(self) -> bool: ...
    def claim(self, trial_id: str, config: Mapping[str, Any]) -> Any: ...
    def adopt(self, trial_id: str, config: Mapping[str, Any]) -> Any: ...
    def orphans(self) -> dict[str, dict[str, Any]]: ...
    def evaluated_elsewhere(self, *, values: bool = True) -> list[tuple[dict[str, Any], float | None]]: ...
    def running_elsewhere(self) -> dict[str, dict[str, Any]]: ...


#: Seconds between two looks for runs of dead drivers while a sweep runs.
ORPHAN_CHECK_S = 1.0


class SweepSearcher(Searcher):
    """The searcher Ray sees: nested W&B configs, a run budget, one objective value per trial.

    It keeps the inner searcher as ``.searcher`` so that Ray's SearchGenerator
    checkpoints this wrapper with `get_state` and the inner one with `save`.
    The objective is the best value of `metric` over the trial's results and
    explicit summary updates (W&B's engine takes the run's min/max likewise);
    a trial without any finite value reaches the inner searcher as an error.

    `resumed` maps the Ray trial ids of runs a stopped driver cut off to their
    configs: asked for one of those ids (by `SweepTrialGenerator`), it returns that
    config, outside the `max_runs` budget and unseen by the inner searcher.

    With `shared` (other drivers may work on the sweep), each suggestion is
    made under the run log's lock: the runs others ended since are learnt
    first (`add_evaluated`) and the runs they have in flight are made known
    (`running_elsewhere`), a grid point another driver took (same
    `identity`) is skipped, ``run_cap`` counts every driver's runs, and the
    run is claimed before Ray sees it.  Until then, runs of drivers that died
    are adopted (`adopt_orphans`); a driver with nothing left to propose
    finishes, as a W&B agent does, and holds no resources idle (runs of a
    driver that dies after that are the next driver's to restart).
    """

    def __init__(self, searcher: Searcher, *, decode: Callable[[Mapping[str, Any]], dict[str, Any]],
                 metric: str | None, mode: str | None, max_runs: int | None,
                 resumed: Mapping[str, Mapping[str, Any]] | None = None,
                 encode: Callable[[Mapping[str, Any]], dict[str, Any] | None] | None = None,
                 identity: Callable[[Mapping[str, Any]], Hashable] | None = None) -> None:
        super().__init__(metric=metric, mode=mode)
        self.searcher = searcher
        self.resumed = {trial_id: dict(config) for trial_id, config in (resumed or {}).items()}
        self.shared: SharedSweep | None = None
        self._decode, self._encode, self._identity = decode, encode, identity
        self._max_runs = max_runs
        self._suggested = 0
        self._best: dict[str, float | None] = {}
        self._taken: set[Hashable] = set()  # identities of configs other drivers claimed
        self._configs_seen = 0
        self._orphans_checked = -ORPHAN_CHECK_S

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        """Accept TuneConfig's metric/mode where the sweep had none; the sweep owns the space."""
        self._metric = self._metric or metric
        self._mode = self._mode or mode
        return True

    def __getstate__(self) -> dict[str, Any]:
        """Ray pickles the searcher into its experiment; the shared run log is this process's, not kept."""
        return {**self.__dict__, "shared": None}

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:  # type: ignore[override]  # as above
        if trial_id in self.resumed:
            return copy.deepcopy(self.resumed.pop(trial_id))
        if self._budget_used():
            return Searcher.FINISHED
        if self.shared is None:
            return self._propose(trial_id)
        with self.shared.locked():
            self.learn(self.shared.evaluated_elsewhere(values=self.learns))
            if self.learns:
                self.running_elsewhere(self.shared.running_elsewhere())
            if self.shared.known(trial_id):
                return None  # another driver's run has this id: Ray draws a new one next time
            config = Searcher.FINISHED if self.shared.full() else self._propose(trial_id)
            if isinstance(config, dict):
                self.shared.claim(trial_id, config)
            return config

    def _budget_used(self) -> bool:
        return self._max_runs is not None and self._suggested >= self._max_runs

    def _propose(self, trial_id: str) -> dict[str, Any] | str | None:
        """The inner searcher's next config not taken by another driver (a grid point)."""
        while True:
            proposal = self.searcher.suggest(trial_id)
            if proposal is None or proposal == Searcher.FINISHED:
                return proposal
            config = plain(self._decode(proposal))
            if not self._taken_elsewhere(config):
                break
        self._suggested += 1
        self._best[trial_id] = None
        return config

    def _taken_elsewhere(self, config: Mapping[str, Any]) -> bool:
        if self._identity is None or self.shared is None:
            return False
        claimed = self.shared.configs
        self._taken.update(self._identity(c) for c in claimed[self._configs_seen:])
        self._configs_seen = len(claimed)
        return self._identity(config) in self._taken

    def adopt_orphans(self) -> None:
        """Take over, under their own trial ids, runs whose driver died (within this driver's budget).

        Looked for at most every `ORPHAN_CHECK_S` seconds, so a run's cost
        does not grow with the sweep.
        """
        clock = time.monotonic()
        if self.shared is None or self._budget_used() or clock - self._orphans_checked < ORPHAN_CHECK_S:
            return
        self._orphans_checked = clock
        with self.shared.locked():
            for trial_id, config in self.shared.orphans().items():
                if self._budget_used():
                    break
                self.shared.adopt(trial_id, config)
                self.resumed[trial_id] = config
                self._suggested += 1

    @property
    def learns(self) -> bool:
        """Whether the inner searcher learns from runs it did not propose (bayes)."""
        return hasattr(self.searcher, "add_evaluated") and self._encode is not None

    def learn(self, evaluated: Sequence[tuple[Mapping[str, Any], float | None]]) -> None:
        """Give the inner searcher runs it did not propose, each a config and its metric value."""
        for config, value in evaluated:
            self.add_evaluated(config, value)

    def add_evaluated(self, config: Mapping[str, Any], value: float | None) -> None:
        """One run evaluated elsewhere (another driver, an earlier one): its config and value.

        `value` is the run's best finite metric value, None when it has none
        (a NaN, inf or missing metric: what an unbroken sweep feeds as an
        error).  Engines that learn (`add_evaluated` on the inner searcher)
        get the config in their own encoding; grid and random ignore it.
        """
        if not self.learns:
            return
        encoded = self._encode(config) if self._encode is not None else None
        if encoded is not None:
            self.searcher.add_evaluated(encoded, finite_number(value))  # type: ignore[attr-defined]

    def running_elsewhere(self, running: Mapping[str, Mapping[str, Any]]) -> None:
        """The runs other drivers have in flight now (run id -> config), for engines that learn.

        A bayes engine proposes away from them, as from its own running runs;
        without this, agents holding the same data propose the same point.
        """
        if not self.learns:
            return
        encoded = {run_id: self._encode(config) for run_id, config in running.items()} if self._encode else {}
        self.searcher.running_elsewhere(  # type: ignore[attr-defined]
            {run_id: config for run_id, config in encoded.items() if config is not None})

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id in self._best:  # not a resumed run: the inner searcher proposed it
            self._observe(trial_id, result)
            self.searcher.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id not in self._best:
            return
        self._observe(trial_id, result)
        best = self._best.pop(trial_id, None)
        if best is None:
            self.searcher.on_trial_complete(trial_id, result=None, error=True)
        else:
            self.searcher.on_trial_complete(trial_id, result={self._metric: best}, error=False)

    def _observe(self, trial_id: str, result: dict | None) -> None:
        if not result or self._metric is None:
            return
        summary = (result.get(META_KEY) or {}).get("summary") or {}
        for value in (result.get(self._metric), summary.get(self._metric)):
            if is_better(value, self._best[trial_id], self._mode == "max"):
                self._best[trial_id] = finite_number(value)

    def get_state(self) -> dict:
        return {"metric": self._metric, "mode": self._mode, "suggested": self._suggested,
                "best": dict(self._best), "resumed": dict(self.resumed)}

    def set_state(self, state: dict) -> None:
        self._metric, self._mode = state["metric"], state["mode"]
        self._suggested, self._best = state["suggested"], dict(state["best"])
        self.resumed = dict(state.get("resumed", {}))

    def save(self, checkpoint_path: str) -> None:
        """This wrapper's state and the inner searcher, for `restore` outside Ray's own walk."""
        with open(checkpoint_path, "wb") as f:
            cloudpickle.dump({"state": self.get_state(), "searcher": self.searcher}, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            saved = cloudpickle.load(f)
        self.set_state(saved["state"])
        self.searcher = saved["searcher"]


class SweepTrialGenerator(SearchGenerator):
    """Ray's trial factory for a sweep: runs a stopped driver cut off first, then new suggestions.

    A run's id derives from its Ray trial id (`raysweep.names.run_id_for`), on
    the driver and on the workers alike, so a cut-off run started again under
    its old trial id writes to its own run directory, as its next attempt.
    Ray's own factory draws a fresh id for every trial; this one differs only
    in that.  `max_concurrent` wraps the searcher as `TuneConfig` would, so
    that restarted runs count towards the limit too.
    """

    def __init__(self, searcher: SweepSearcher, max_concurrent: int | None = None) -> None:
        super().__init__(ConcurrencyLimiter(searcher, max_concurrent) if max_concurrent else searcher)
        self._sweep_searcher = searcher

    def create_trial_if_possible(self, experiment_spec: dict) -> Any:
        self._sweep_searcher.adopt_orphans()
        trial_id = next(iter(self._sweep_searcher.resumed), None)  # it drops each one it hands out
        if trial_id is None:
            return super().create_trial_if_possible(experiment_spec)
        config = self.searcher.suggest(trial_id)
        if config is None:  # the concurrency limit is reached
            return None
        spec = copy.deepcopy(experiment_spec)
        spec["config"] = merge_dicts(spec["config"], config)
        return ray_internals.create_trial(self, spec, flatten_dict(config), trial_id=trial_id, tag="resumed")


def initial_points(max_runs: int | None) -> int:
    """Random/space-filling trials before a model proposes: a fifth of the budget, 2 to 10."""
    return 10 if max_runs is None else min(10, max(2, max_runs // 5))


def _bayes(params: Params, metric: str, mode: str, seed: int | None, max_runs: int | None) -> OptunaBayes:
    return OptunaBayes(params.searched(), metric=metric, mode=mode, seed=seed,
                       n_initial=initial_points(max_runs))


def make_searcher(spec: SweepSpec, *, seed: int | None, max_runs: int | None,
                  exclude: Sequence[Mapping[str, Any]] = (),
                  resumed: Mapping[str, Mapping[str, Any]] | None = None) -> SweepSearcher:
    """The Ray searcher for the sweep's method; it stops after `max_runs` suggestions (None: never).

    `exclude` holds the configs of runs the sweep already has (a resumed
    sweep, a second agent): a grid skips those points, as W&B's grid does.
    `resumed` (trial id → config) are cut-off runs to start again first.
    """
    params = Params.of(spec)
    metric = spec.metric.name if spec.metric else None
    mode = spec.metric.mode if spec.metric else None
    if spec.method == "grid":
        inner: Searcher = GridSearcher(_flat_grid(params, exclude))
    elif spec.method == "random":
        inner = RandomSearcher({label: space.to_domain(dist) for label, dist in params.searched().items()}, seed)
    else:
        assert metric is not None and mode is not None, "load_spec requires a metric for bayes"
        inner = _bayes(params, metric, mode, seed, max_runs)
    return SweepSearcher(inner, decode=params.nest, metric=metric, mode=mode, max_runs=max_runs,
                         resumed=resumed, encode=dict, identity=_identity(params, spec))


def _identity(params: Params, spec: SweepSpec) -> Callable[[Mapping[str, Any]], Hashable] | None:
    """A grid point's identity (W&B's) for a nested config; None for methods without points."""
    if spec.method != "grid":
        return None
    _, axes, paths = _grid_axes(params)
    return lambda config: _run_identity(paths, axes, config)


def searcher_name(spec: SweepSpec) -> str:
    """One line for `raysweep show`: the engine and the space it searches."""
    if spec.method == "grid":
        return f"grid ({len(grid_points(spec))} points)"
    if spec.method == "random":
        return "random"
    kinds = [_searched_as(dist) for dist in Params.of(spec).searched().values()]
    counts = ", ".join(f"{kinds.count(kind)} {kind}" for kind in dict.fromkeys(kinds))
    return (f"bayes: Optuna GPSampler (Gaussian process, log EI; Optuna TPE past {MAX_GP_TRIALS} ended runs) "
            f"over {counts}")


def _searched_as(dist: Distribution) -> str:
    if isinstance(dist, Categorical):
        return "categorical (by index)"
    if isinstance(dist, IntUniform):
        return "integer"
    return "unit quantile (W&B ppf)"
