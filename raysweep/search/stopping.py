"""`early_terminate: {type: hyperband}` and `metric.target` on Ray Tune.

W&B's engine (``sweeps/hyperband_stopping.py``, 0.3.0) judges a run at fixed
"bands": ``int(min_iter * eta**k)``, or ``int(max_iter / eta**k)`` for k = 1..s.
Those are not a geometric series from a grace period (100, s=5 gives 1, 3, 11,
33), so Ray's stock `ASHAScheduler` cannot express them.  `WandbHyperbandScheduler`
keeps Ray's asynchronous successive halving rungs (ASHA, Li et al., arXiv:1810.05934)
with W&B's bands as rungs and W&B's cut at each rung, and judges as W&B's
controller does (``hyperband_stop_runs`` at every poll): every running run, at
every new value, against the *current* cut of the highest rung it has passed.
ASHA judges a run once, on reaching a rung, against the runs that reached it
before; W&B's cut moves as more runs reach the rung, and a run that was above
it can fall below it later.  So each value entering a rung re-judges every
running run whose highest rung that is (they are stopped through Ray's
controller), and each new value of a run re-judges that run.

As in W&B, a run's "iteration" is the number of values of ``metric.name`` it
has logged (rows without the metric do not count), not its step or epoch.

A NaN or ±inf value counts as an iteration and as the worst possible value
(W&B skips such values, and Ray's ASHA never stops a NaN run since ``nan <
cutoff`` is false, so a diverged run would otherwise train to the end): with
``strict`` the run is stopped at the next rung it reaches, unless it is the
first there; without it, its best finite value so far is what is judged.

Many drivers on one sweep (agents at once, a resume) judge as one would: each
gives its scheduler the sweep's `SharedRungs` (`raysweep.runlog.lease.Ledger`).
A value that enters a rung is published there, and before every decision (each
result, and each step of Ray's controller, as W&B's controller polls) the
scheduler takes in what the other drivers published since it last looked and
re-judges its running runs at each rung whose cut that moved.  Rungs are keyed
by run id, so a run counts once at a rung whichever driver ran it; a run that
starts again under a new driver (adopted from a dead one, or cut off and
resumed) goes on counting from its history in the run log, as W&B counts a
run's values across its attempts: the values published for its earlier
attempt are withdrawn and those its history holds published again.  Only
values at rungs are shared: the judged run's best so far (``strict: false``)
is its own driver's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

from ray.tune import Stopper
from ray.tune.result import TRAINING_ITERATION
from ray.tune.schedulers import AsyncHyperBandScheduler, TrialScheduler

from raysweep.errors import SweepConfigError, Violation
from raysweep.search import _ray_internals as ray_internals
from raysweep.protocol import META_KEY, metric_value

if TYPE_CHECKING:
    from ray.tune.experiment import Trial

    from raysweep.spec.load import Hyperband, SweepSpec

#: Key set on the result a run is early-stopped at: the rung (iteration) it was stopped at.
STOPPED_AT_RUNG = "_raysweep_stopped_at_rung"
#: W&B computes 100 bands from ``min_iter``; bands past this many metric values are
#: never reached, and for a large eta the later ones overflow a float.
MAX_MILESTONE = 10**9


def hyperband_milestones(h: Hyperband) -> list[int]:
    """The iterations at which W&B 0.3.0 judges a run, sorted, each once.

    With ``max_iter`` (which wins over ``min_iter``): max_iter/eta, /eta², … s
    times, truncated to int, stopping at the first below 1.  With ``min_iter``:
    min_iter·eta^k, truncated, up to `MAX_MILESTONE`.  The float arithmetic is
    W&B's own (repeated ``/=`` and ``*=``), so truncation lands where W&B's does.
    """
    bands: list[int] = []
    if h.max_iter is not None:
        band: float = h.max_iter
        for _ in range(h.s or 0):
            band /= h.eta
            if band < 1:
                break
            bands.append(int(band))
    elif h.min_iter is not None:
        band = h.min_iter
        while band <= MAX_MILESTONE and len(bands) < 100:
            bands.append(int(band))
            band *= h.eta
    if not bands:  # `load_spec` reports this per key; a hand-made Hyperband can still get here
        raise SweepConfigError([Violation(
            "early_terminate", f"no iteration to stop runs at (W&B: 'Bands must be an array of "
            f"length at least 1'): {h}; give min_iter, or max_iter with s >= 1 and max_iter >= eta")])
    return sorted(set(bands))


def band_threshold(losses: Sequence[float], eta: float) -> float:
    """W&B's cut at one rung: ``sorted(losses)[int(len/eta)]``, losses lower-is-better.

    ASHA's cut is ``np.nanpercentile(others, (1 - 1/eta)·100)`` over the trials
    that reached the rung *before* the judged one, and stops a value strictly
    worse than that interpolated quantile.  W&B's takes an element (no
    interpolation) of the values of every run at the rung, the judged run's
    own included, so it keeps the best ``int(n/eta) + 1`` of n, slightly more
    than ASHA's ~n/eta.  We use W&B's so that a sweep file stops the same runs
    as it does under ``wandb agent`` given the same histories (tested against
    the reference engine).
    """
    return sorted(losses)[int(1.0 / eta * len(losses))]


def stops_at_rung(rung_losses: Sequence[float], judged: float, eta: float) -> bool:
    """Whether W&B stops a run whose `judged` loss is weighed against `rung_losses`.

    `rung_losses` holds every run's loss at the rung, the judged run's included;
    `judged` is that run's loss at the rung (strict) or its best so far (not
    strict).  Ties with the threshold continue, as in W&B.
    """
    return judged > band_threshold(rung_losses, eta)


class SharedRungs(Protocol):
    """The rung values of every driver of a sweep (`raysweep.runlog.lease.Ledger`)."""

    def run_id(self, trial_id: str) -> str:
        """The run of Ray trial `trial_id`: rungs are keyed by it, the same in every driver."""
        ...

    def publish_rung(self, run_id: str, rung: int, loss: float) -> None:
        """Tell every driver the run's loss at `rung`."""
        ...

    def restart_rungs(self, run_id: str) -> None:
        """Tell every driver to forget the run's values: it starts again from its first value."""
        ...

    def rung_news(self) -> list[tuple[str, int | None, float]]:
        """(run id, rung, loss) published by any driver (this one too) since the last call, in order;
        a rung of None says that run restarted."""
        ...


class _WandbBracket(ray_internals.Bracket):
    """Ray's ASHA bracket (rungs of recorded values) with W&B's rungs and cut.

    Values here are losses (lower is better), unlike Ray's rewards.
    """

    def __init__(self, milestones: list[int], eta: float, strict: bool) -> None:
        super().__init__(milestones[0], milestones[-1], eta, 0, stop_last_trials=False)
        ray_internals.set_rungs(self, milestones)
        self._milestones = milestones
        self._strict = strict

    def cutoff(self, recorded: dict[str, float]) -> float | None:
        return band_threshold(list(recorded.values()), self.rf) if recorded else None

    def record(self, key: str, iteration: int, loss: float) -> bool:
        """Keep the loss run `key` has at `iteration` when that is a rung; whether it is one."""
        recorded = ray_internals.rung(self, iteration)
        if recorded is not None:
            recorded[key] = loss
        return recorded is not None

    def take(self, key: str, rung: int, loss: float) -> bool:
        """Keep a published value of run `key` at `rung`; whether it moved the rung (was not there)."""
        recorded = ray_internals.rung(self, rung)
        if recorded is None or recorded.get(key) == loss:
            return False
        recorded[key] = loss
        return True

    def forget(self, key: str) -> list[int]:
        """Drop run `key`'s values; the rungs that held one."""
        return [milestone for milestone in self._milestones
                if (ray_internals.rung(self, milestone) or {}).pop(key, None) is not None]

    def stops(self, progress: _Progress) -> bool:
        """W&B's verdict on a running trial now: its value at the highest rung it has passed
        (strict) or its best value so far (not strict) against that rung's current cut."""
        if progress.rung is None:
            return False
        recorded = ray_internals.rung(self, progress.rung) or {}
        judged = recorded[progress.key] if self._strict else progress.best
        return stops_at_rung(list(recorded.values()), judged, self.rf)


@dataclass
class _Progress:
    """What the scheduler knows of one trial: its rung key, metric values counted, best loss, last result."""

    trial: Trial
    key: str  # what its values are recorded under at the rungs: its run id when rungs are shared
    iteration: int = 0
    best: float = math.inf
    last_result: int = 0  # training_iteration of the last result seen: Ray may resend it, done
    rung: int | None = None  # the highest rung it has passed


class WandbHyperbandScheduler(AsyncHyperBandScheduler):
    """ASHA whose rungs, cut, iteration count and `strict` are W&B's hyperband's.

    Metric and mode come from `TuneConfig` through `set_search_properties`
    (giving them here too makes Ray 2.60 raise).  `stopped_at_rung` tells which
    rung a trial was stopped at.  The result it was stopped on also carries it
    under `STOPPED_AT_RUNG`, but that dict is Ray's flattened copy: callbacks
    get the original, so they must ask `stopped_at_rung`.  With `shared`, its
    rungs are those of every driver of the sweep (see the module's docstring).
    """

    def __init__(self, milestones: list[int], eta: float = 3, strict: bool = True,
                 shared: SharedRungs | None = None) -> None:
        super().__init__(max_t=milestones[-1], grace_period=milestones[0],
                         reduction_factor=eta, brackets=1, stop_last_trials=False)
        self.milestones = list(milestones)
        self._bracket = _WandbBracket(self.milestones, eta, strict)
        ray_internals.set_brackets(self, [self._bracket])
        self._shared = shared
        self._progress: dict[str, _Progress] = {}
        self._stopped_at: dict[str, int] = {}
        self._remembered: list[tuple[str, list[dict[str, Any]], int | None]] = []
        self._cut_off: dict[str, list[dict[str, Any]]] = {}

    def __getstate__(self) -> dict[str, Any]:
        """Ray pickles callbacks that hold this scheduler; the shared rungs are this process's."""
        return {**self.__dict__, "_shared": None}

    def stopped_at_rung(self, trial_id: str) -> int | None:
        """The milestone at which this scheduler stopped the trial, if it did."""
        return self._stopped_at.get(trial_id)

    def remember(self, run_id: str, history: Sequence[dict[str, Any]], stopped_at_rung: int | None) -> None:
        """Record an ended run of the sweep (an earlier or another driver's) at the rungs it reached.

        Its value at each milestone it reached is what this scheduler would
        have recorded had it seen the run's results (history rows, counted as
        `_advance` counts them), so a driver started on an existing sweep
        judges new runs as an unbroken sweep would.  A run stopped at a rung
        reached no later one.  Before metric and mode are known the history
        is kept and recorded when they are.
        """
        if self.metric is None:
            self._remembered.append((run_id, list(history), stopped_at_rung))
            return
        losses = self._losses(history)
        for milestone in self.milestones:
            if milestone <= len(losses) and (stopped_at_rung is None or milestone <= stopped_at_rung):
                self._bracket.record(run_id, milestone, losses[milestone - 1])

    def resume(self, trial_id: str, history: Sequence[dict[str, Any]]) -> None:
        """A run an earlier driver cut off will start again as `trial_id`: its values so far count.

        W&B counts a run's values across its attempts; the new attempt goes
        on from the rungs its history reached (`on_trial_add`).
        """
        self._cut_off[trial_id] = list(history)

    def _losses(self, history: Sequence[dict[str, Any]]) -> list[float]:
        """The run's metric values as losses, one per iteration (history rows counted as `_advance` counts)."""
        return [loss for loss in map(self._loss, history) if loss is not None]

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        accepted = super().set_search_properties(metric, mode, **spec)
        remembered, self._remembered = self._remembered, []
        for args in remembered:
            self.remember(*args)
        return accepted

    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        """A new trial starts counting; a retried or requeued one goes on counting (W&B counts a
        run's values across its attempts), with Ray's iteration numbers starting again.

        A run new to this scheduler that has values at the rungs already ran
        under another driver: its values are withdrawn, here and (published)
        in every driver, and replaced by those of its history when `resume`
        gave it (a cut-off run goes on counting); without one it counts from
        its first value again.
        """
        super().on_trial_add(tune_controller, trial)
        earlier = self._progress.get(trial.trial_id)
        if earlier is not None:
            self._progress[trial.trial_id] = _Progress(trial, earlier.key, earlier.iteration, earlier.best,
                                                       rung=earlier.rung)
        else:
            key = self._shared.run_id(trial.trial_id) if self._shared is not None else trial.trial_id
            self._catch_up(tune_controller)
            if self._bracket.forget(key) and self._shared is not None:
                self._shared.restart_rungs(key)
            self._progress[trial.trial_id] = self._carried_on(trial, key, self._cut_off.pop(trial.trial_id, []))
        self._stopped_at.pop(trial.trial_id, None)

    def _carried_on(self, trial: Trial, key: str, history: Sequence[dict[str, Any]]) -> _Progress:
        """The progress of a run's earlier attempts (none for a new run), its values recorded and
        published at the rungs they reached."""
        losses, rung = self._losses(history), None
        for milestone in self.milestones:
            if milestone <= len(losses):
                self._bracket.record(key, milestone, losses[milestone - 1])
                if self._shared is not None:
                    self._shared.publish_rung(key, milestone, losses[milestone - 1])
                rung = milestone
        return _Progress(trial, key, len(losses), min(losses, default=math.inf), rung=rung)

    def choose_trial_to_run(self, tune_controller: Any) -> Trial | None:
        """Ray's choice; first, take in the other drivers' rung values (Ray asks at every step)."""
        self._catch_up(tune_controller)
        return super().choose_trial_to_run(tune_controller)

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict[str, Any]) -> str:
        self._catch_up(tune_controller, judging=trial.trial_id)
        if trial.trial_id in self._stopped_at:
            return TrialScheduler.STOP  # a result on its way when another's value stopped it
        action = self._advance(trial, result, tune_controller)
        if action == TrialScheduler.STOP:
            result[STOPPED_AT_RUNG] = self._stopped_at[trial.trial_id]
        return action

    def on_trial_complete(self, tune_controller: Any, trial: Trial, result: dict[str, Any]) -> None:
        # A last result no one showed us (a Stopper ended the trial on it) still counts at its rung.
        if trial.trial_id not in self._stopped_at:
            self._advance(trial, result, None)
        ray_internals.forget_trial(self, trial)
        self._progress.pop(trial.trial_id, None)

    def on_trial_remove(self, tune_controller: Any, trial: Trial) -> None:
        super().on_trial_remove(tune_controller, trial)
        self._progress.pop(trial.trial_id, None)

    def _advance(self, trial: Trial, result: dict[str, Any], tune_controller: Any) -> str:
        """Count a new metric value of the trial, then judge it and, when the value entered a
        rung (moving its cut), every other running trial whose highest rung that is."""
        progress = self._progress.get(trial.trial_id)
        loss = self._loss(result)
        seen = result.get(TRAINING_ITERATION)
        if progress is None or loss is None or (seen is not None and seen <= progress.last_result):
            return TrialScheduler.CONTINUE
        progress.last_result = seen or progress.last_result
        progress.iteration += 1
        progress.best = min(progress.best, loss)
        bracket = cast(_WandbBracket, ray_internals.trial_bracket(self, trial))
        if bracket.record(progress.key, progress.iteration, loss):
            progress.rung = progress.iteration
            if self._shared is not None:
                self._shared.publish_rung(progress.key, progress.rung, loss)
            if tune_controller is not None:
                self._rejudge_others(progress.rung, trial.trial_id, tune_controller)
        if not bracket.stops(progress):
            return TrialScheduler.CONTINUE
        self._mark_stopped(progress)
        return TrialScheduler.STOP

    def _catch_up(self, tune_controller: Any, judging: str | None = None) -> None:
        """Take in the rung values other drivers published since the last look, and re-judge
        this driver's running trials at each rung they moved (`judging`, whose result Ray is
        handing over, is only marked: the answer to that result stops it).  Its own values
        come back too, and change nothing."""
        if self._shared is None:
            return
        moved: set[int] = set()
        for run_id, rung, loss in self._shared.rung_news():
            if rung is None:
                moved.update(self._bracket.forget(run_id))
            elif self._bracket.take(run_id, rung, loss):
                moved.add(rung)
        if tune_controller is not None:
            for rung in sorted(moved):
                self._rejudge_others(rung, None, tune_controller, judging)

    def _rejudge_others(self, rung: int, moved_by: str | None, tune_controller: Any,
                        judging: str | None = None) -> None:
        """Stop, through Ray's controller, the running trials (but `moved_by`) the new cut at `rung`
        puts below it; `judging` is only marked stopped, Ray stopping it on the answer to its result."""
        for trial_id, other in list(self._progress.items()):
            if trial_id != moved_by and other.rung == rung and trial_id not in self._stopped_at \
                    and self._bracket.stops(other):
                self._mark_stopped(other)
                if trial_id != judging:
                    tune_controller.stop_trial(other.trial)

    def _mark_stopped(self, progress: _Progress) -> None:
        """Remember the rung whose cut stopped the trial (the run log's ``stopped_at_rung``)."""
        ray_internals.count_stopped(self)
        self._stopped_at[progress.trial.trial_id] = progress.rung or progress.iteration

    def _loss(self, result: dict[str, Any]) -> float | None:
        """The metric as a loss (lower is better; non-finite = worst), None if not an iteration.

        Ray hands schedulers the result flattened (``_raysweep/history``), so
        the history flag is read back from its flat key.
        """
        history = result.get(f"{META_KEY}/history", True)
        value = metric_value({self.metric: result.get(self.metric), META_KEY: {"history": history}},
                             self.metric)
        if value is None:
            return None
        return -ray_internals.metric_sign(self) * value if math.isfinite(value) else math.inf


def make_scheduler(spec: SweepSpec, shared: SharedRungs | None = None) -> WandbHyperbandScheduler | None:
    """The sweep's early-stopping scheduler (its rungs those of every driver, with `shared`); None without
    ``early_terminate``."""
    h = spec.early_terminate
    if h is None:
        return None
    return WandbHyperbandScheduler(hyperband_milestones(h), eta=h.eta, strict=h.strict, shared=shared)


class TargetStopper(Stopper):
    """Ends the sweep once any run logs ``metric.target`` or better.

    Reaching it is ``>= target`` when maximising and ``<= target`` when
    minimising; only finite values of history rows count.
    """

    def __init__(self, metric: str, mode: str, target: float) -> None:
        self.metric = metric
        self.mode = mode
        self.target = target
        self.reached = False

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        value = metric_value(result, self.metric)
        if value is not None and math.isfinite(value):
            hit = value >= self.target if self.mode == "max" else value <= self.target
            self.reached = self.reached or hit
        return self.reached

    def stop_all(self) -> bool:
        return self.reached


def make_stopper(spec: SweepSpec) -> TargetStopper | None:
    """A `TargetStopper` when the sweep's metric has a ``target``, else None."""
    metric = spec.metric
    if metric is None or metric.target is None:
        return None
    return TargetStopper(metric.name, metric.mode, metric.target)
