"""raysweep's `method: bayes`: Optuna's Gaussian-process sampler behind a Ray `Searcher`.

Optuna's `GPSampler` (Matern-5/2 with one length scale per parameter, log
expected improvement, categoricals and integers handled natively) found the
optimum of every problem in `bench/search_quality.py` more reliably than W&B's
engine, Optuna's TPE or the bayes_opt GP raysweep used before (figures in
bench/RESULTS.md).  Runs in flight (this driver's and other agents') are
believed to end at the GP's expectation (`OptunaBayes._gp_point`).

W&B's meaning of each distribution is kept by searching it on the scale W&B
samples it on: a categorical as the index of its value, an `int_uniform` as
its integer, every other kind as its quantile ``u`` in [0, 1] sent through the
distribution's exact `ppf`. For uniform and log-uniform kinds ``u`` is an
affine map of the value (of its log), so the GP sees the same geometry as a
native Optuna float; for normal, beta and the quantised kinds it is the warped
scale W&B's own GP uses. The first `n_initial` proposals are W&B random draws.

Failed trials (no finite metric) count at the worst result seen when they end,
as W&B's default ``impute: worst``; ones that end before any finite result
exists are added with the first finite result, which is then the worst.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.samplers import GPSampler, RandomSampler, TPESampler
from optuna.study import StudyDirection
from optuna.trial import TrialState, create_trial

from raysweep.search import _optuna_internals as optuna_internals
from raysweep.search.stateful import StatefulSearcher
from raysweep.spec.distributions import Categorical, Distribution, IntUniform
from raysweep.values import finite_number, is_better

# Quantiles are kept this far inside [0, 1]: at the edges normal / log_normal
# parameters map to infinity.
UNIT_EPS = 1e-6
# Above this many ended trials the GP's cubic fit nears the 2 s a proposal may
# take on one core (bench/search_quality.py --timing-only), so proposals come
# from Optuna's multivariate TPE on the same trials instead.
MAX_GP_TRIALS = 500
# Grid points (twice: coarse, then within a cell) on which a W&B value is turned
# back into its quantile (`add_evaluated`).
_INVERSE_GRID = 4097

optuna.logging.set_verbosity(optuna.logging.WARNING)


def from_unit(dist: Distribution, u: float) -> Any:
    """The W&B value of `dist` at quantile `u` (clipped to stay finite)."""
    return dist.ppf(min(max(float(u), UNIT_EPS), 1.0 - UNIT_EPS))[0]


def optuna_distribution(dist: Distribution) -> BaseDistribution:
    """The Optuna distribution a W&B parameter is searched in (see the module docstring)."""
    if isinstance(dist, Categorical):
        return CategoricalDistribution(_possible(dist))
    if isinstance(dist, IntUniform):
        return IntDistribution(int(dist.min), int(dist.max))
    return FloatDistribution(0.0, 1.0)


def _possible(dist: Categorical) -> list[int]:
    """Indices of the values W&B can draw: a value of probability 0 never is."""
    return [i for i, p in enumerate(dist.probabilities or [1.0] * len(dist.values)) if p > 0]


def to_wandb(dist: Distribution, encoded: Any) -> Any:
    """The W&B value of a searched (encoded) value."""
    if isinstance(dist, Categorical):
        return dist.values[int(encoded)]
    if isinstance(dist, IntUniform):
        return int(encoded)
    return from_unit(dist, encoded)


def from_wandb(dist: Distribution, value: Any) -> Any:
    """The searched value of a W&B value, None when `dist` cannot yield it.

    Numeric kinds go back through their own `ppf` (non-decreasing), inverted
    on a grid and again inside the grid cell it falls in, so no kind's formula
    is written a second time.
    """
    if isinstance(dist, Categorical):
        matches = [i for i, option in enumerate(dist.values) if option == value and type(option) is type(value)]
        matches = matches or [i for i, option in enumerate(dist.values) if option == value]
        return next((i for i in matches if i in _possible(dist)), None)
    number = finite_number(value)
    if number is None:
        return None
    if isinstance(dist, IntUniform):
        return int(min(max(round(number), dist.min), dist.max))
    grid = np.linspace(UNIT_EPS, 1.0 - UNIT_EPS, _INVERSE_GRID)
    values = np.asarray(dist.ppf(grid), dtype=float)
    low, high = int(np.searchsorted(values, number, "left")), int(np.searchsorted(values, number, "right"))
    if high > low:  # a quantised value: the middle of the quantiles that round to it
        return float((grid[low] + grid[high - 1]) / 2)
    if low in (0, len(grid)):  # beyond what the search reaches: its nearest end
        return float(grid[min(low, len(grid) - 1)])
    fine = np.linspace(grid[low - 1], grid[low], _INVERSE_GRID)  # the grid cell it lies in, finely
    return float(np.interp(number, np.asarray(dist.ppf(fine), dtype=float), fine))


class OptunaBayes(StatefulSearcher):
    """`method: bayes` over an in-memory Optuna study, one label per searched parameter.

    Proposals are ``{label: W&B value}``. Ray's trials map to Optuna trials
    through `_running`, other drivers' runs in flight through `_elsewhere`;
    both stay running trials of the study until they end, so proposals made
    while they run spread out (`_gp_point`; past `MAX_GP_TRIALS`, TPE's own
    constant liar).  Every trial is asked through the study with its values
    enqueued (a random draw or the GP's point), except TPE's.
    """

    def __init__(self, dists: Mapping[str, Distribution], *, metric: str | None, mode: str | None,
                 seed: int | None, n_initial: int) -> None:
        super().__init__(metric=metric, mode=mode)
        self._dists = dict(dists)
        self._space = {label: optuna_distribution(dist) for label, dist in self._dists.items()}
        self._rng = np.random.default_rng(seed)
        self._n_initial = n_initial
        self._gp = GPSampler(seed=seed, n_startup_trials=n_initial)
        self._tpe = TPESampler(seed=seed, n_startup_trials=n_initial, multivariate=True, constant_liar=True)
        self._fixed = RandomSampler(seed=seed)  # asks trials whose values are all enqueued: draws nothing
        self._study: optuna.Study | None = None
        self._running: dict[str, int] = {}  # Ray trial id -> Optuna trial number
        self._elsewhere: dict[str, int] = {}  # run id of another driver's running run -> Optuna trial number
        self._unimputed: list[dict[str, Any]] = []  # failed before any finite result
        self._worst: float | None = None

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        """Take metric/mode from TuneConfig when not given at construction; the space is ours."""
        self._metric = self._metric or metric
        self._mode = self._mode or mode
        return True

    @property
    def study(self) -> optuna.Study:
        """The study, created on first use: the direction is known only once `mode` is."""
        if self._study is None:
            direction = StudyDirection.MAXIMIZE if self._mode == "max" else StudyDirection.MINIMIZE
            self._study = optuna.create_study(direction=direction, sampler=self._gp)
        return self._study

    def engine(self) -> str:
        """Which model proposes next: random first, then the GP, then TPE past `MAX_GP_TRIALS` ended trials.

        Random draws go on until `n_initial` trials are ended or in flight
        (the GP believes the ones in flight) and at least two have ended.
        """
        ended = len(self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        running = len(self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
        if ended + running < self._n_initial or ended < 2:
            return "random"
        return "GP" if ended <= MAX_GP_TRIALS else "TPE"

    def suggest(self, trial_id: str) -> dict[str, Any]:
        study = self.study
        engine = self.engine()
        if engine == "TPE":
            study.sampler = self._tpe
        else:
            study.enqueue_trial(self._random_point() if engine == "random" else self._gp_point())
            study.sampler = self._fixed
        trial = study.ask(self._space)
        self._running[trial_id] = trial.number
        return {label: to_wandb(self._dists[label], trial.params[label]) for label in self._dists}

    def _gp_point(self) -> dict[str, Any]:
        """The GP's proposal, made on a copy of the study in which each running trial has ended at its belief.

        A "Kriging believer" (Ginsbourger et al., 2010): a run in flight is
        told the value the GP expects of it, so the GP's mean is unchanged
        but its uncertainty there is gone, and the next proposal goes where
        something is still to be learnt.  On the mixed problem of
        bench/search_quality.py with 4 runs in flight it kept far closer to
        one-at-a-time search than Optuna's own q-batch log EI, a constant
        liar (mean, best or worst value) or ignoring the runs in flight
        (bench/RESULTS.md, "Search quality").
        """
        trials = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))
        ended = [trial for trial in trials if trial.state == TrialState.COMPLETE]
        running = [trial for trial in trials if trial.state == TrialState.RUNNING]
        beliefs = iter(optuna_internals.posterior_mean(self._space, ended, running) if running else [])
        believed = optuna.create_study(direction=self.study.direction, sampler=self._gp)
        believed.add_trials(trial if trial.state == TrialState.COMPLETE
                            else create_trial(params=trial.params, distributions=trial.distributions,
                                              value=next(beliefs))
                            for trial in trials)
        return believed.ask(self._space).params

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        number = self._running.pop(trial_id, None)
        if number is None:
            return
        value = None if error else finite_number((result or {}).get(self._metric))
        if value is not None or self._worst is not None:
            self.study.tell(number, self._record(value))
        else:
            self._unimputed.append(self.study.trials[number].params)
            self.study.tell(number, state=TrialState.FAIL)

    def add_evaluated(self, config: Mapping[str, Any], value: Any) -> bool:
        """Feed an earlier run of the sweep: its nested W&B `config` and its metric `value`.

        A value that is None, NaN or infinite counts as a failed run. A config
        this space cannot hold (a parameter missing, a value that is not one of
        a categorical's) is left out: False. Otherwise True.
        """
        params = self._params(config)
        if params is None:
            return False
        number = finite_number(value)
        if number is None and self._worst is None:
            self._unimputed.append(params)
        else:
            self.study.add_trial(create_trial(params=params, distributions=self._space, value=self._record(number)))
        return True

    def running_elsewhere(self, running: Mapping[str, Mapping[str, Any]]) -> None:
        """The runs other drivers of the sweep have in flight now: run id -> nested W&B config.

        Each is a running trial of the study, as this driver's own running
        runs are, so the next proposal spreads away from them (q-batch log
        EI) instead of repeating what another agent with the same data just
        proposed.  Ones no longer listed (ended, or their driver died) are
        dropped as failed trials, which no model reads; an ended run comes
        back through `add_evaluated`.
        """
        for run_id in [run_id for run_id in self._elsewhere if run_id not in running]:
            self.study.tell(self._elsewhere.pop(run_id), state=TrialState.FAIL)
        for run_id, config in running.items():
            params = None if run_id in self._elsewhere else self._params(config)
            if params is not None:
                self.study.add_trial(create_trial(params=params, distributions=self._space, state=TrialState.RUNNING))
                self._elsewhere[run_id] = len(self.study.get_trials(deepcopy=False)) - 1

    def _params(self, config: Mapping[str, Any]) -> dict[str, Any] | None:
        """The searched values of a nested W&B config; None when this space cannot hold it."""
        params = {}
        for label, dist in self._dists.items():
            node: Any = config
            for key in label.split("/"):
                if not isinstance(node, Mapping) or key not in node:
                    return None
                node = node[key]
            params[label] = from_wandb(dist, node)
            if params[label] is None:
                return None
        return params

    def _record(self, value: float | None) -> float:
        """The value to tell for a result (None: failed), updating the worst and the deferred failures."""
        if value is not None and (self._worst is None or is_better(self._worst, value, self._mode == "max")):
            self._worst = value
        assert self._worst is not None
        deferred, self._unimputed = self._unimputed, []
        for params in deferred:
            self.study.add_trial(create_trial(params=params, distributions=self._space, value=self._worst))
        return self._worst if value is None else value

    def _random_point(self) -> dict[str, Any]:
        """One W&B random draw, encoded: categorical weights and integer bounds as W&B samples them."""
        point = {}
        for label, dist in self._dists.items():
            u = float(self._rng.uniform())
            if isinstance(dist, Categorical):
                point[label] = Categorical(tuple(range(len(dist.values))), dist.probabilities).ppf(u)[0]
            elif isinstance(dist, IntUniform):
                point[label] = dist.ppf(u)[0]
            else:
                point[label] = min(max(u, UNIT_EPS), 1.0 - UNIT_EPS)
        return point

    def get_state(self) -> dict:
        return {"metric": self._metric, "mode": self._mode, "rng": self._rng.bit_generator.state,
                "samplers": (self._gp, self._tpe, self._fixed), "study": self._study, "running": dict(self._running),
                "elsewhere": dict(self._elsewhere),
                "unimputed": list(self._unimputed), "worst": self._worst}

    def set_state(self, state: dict) -> None:
        self._metric, self._mode = state["metric"], state["mode"]
        self._rng.bit_generator.state = state["rng"]
        self._gp, self._tpe, self._fixed = state["samplers"]
        self._study, self._running = state["study"], dict(state["running"])
        self._elsewhere = dict(state.get("elsewhere", {}))
        self._unimputed, self._worst = list(state["unimputed"]), state["worst"]

