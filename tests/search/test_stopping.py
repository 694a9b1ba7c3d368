"""Early stopping: W&B's hyperband bands and cut, as ASHA rungs, checked against W&B's engine."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ray import tune
from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler

import raysweep.protocol
import raysweep.trial.session
from raysweep.errors import SweepConfigError
from raysweep.runlog.lease import Ledger
from raysweep.spec.load import Hyperband, load_spec
from raysweep.search.stopping import (
    MAX_MILESTONE,
    STOPPED_AT_RUNG,
    TargetStopper,
    WandbHyperbandScheduler,
    band_threshold,
    hyperband_milestones,
    make_scheduler,
    make_stopper,
    stops_at_rung,
)
from tests.reference import run_reference

# Runs W&B's `hyperband_stop_runs` on each case read from stdin; prints, per case,
# the runs it stops and the bands/thresholds it computed.
REF_STOP_RUNS = """
import json, sys
from sweeps import RunState, SweepRun
from sweeps.hyperband_stopping import hyperband_stop_runs
out = []
for case in json.load(sys.stdin):
    runs = [SweepRun(name=r["name"], state=RunState(r["state"]),
                     history=[{case["metric"]: v} for v in r["history"]]) for r in case["runs"]]
    config = {"method": "random", "parameters": {"x": {"value": 1}},
              "metric": {"name": case["metric"], "goal": case["goal"]},
              "early_terminate": {"type": "hyperband", **case["hyperband"]}}
    stopped = hyperband_stop_runs(runs, config)
    info = next((r.early_terminate_info for r in runs if r.early_terminate_info), None) or {}
    out.append({"stopped": sorted(r.name for r in stopped), "bands": info.get("bands"),
                "thresholds": [float(t) for t in info.get("thresholds", [])]})
print(json.dumps(out))
"""


def reference_stop_runs(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """W&B's decisions for each case ({metric, goal, hyperband, runs: [{name, state, history}]})."""
    return run_reference(REF_STOP_RUNS, stdin=json.dumps(cases))


def hyperband(**fields: Any) -> Hyperband:
    return Hyperband(**{"min_iter": None, "max_iter": None, "s": None, "eta": 3, **fields})


# ---------------------------------------------------------------- milestones

BAND_CONFIGS = {
    "min1-eta3": {"min_iter": 1, "eta": 3},
    "min3-eta3": {"min_iter": 3, "eta": 3},
    "min3-eta2.5": {"min_iter": 3, "eta": 2.5},
    "min2-eta1.5-duplicates": {"min_iter": 2, "eta": 1.5},
    "min1-eta1.1-float-truncation": {"min_iter": 1, "eta": 1.1},
    "min5-eta10": {"min_iter": 5, "eta": 10},
    "max27-s2": {"max_iter": 27, "s": 2, "eta": 3},
    "max27-s3": {"max_iter": 27, "s": 3, "eta": 3},
    "max100-s5-drops-below-1": {"max_iter": 100, "s": 5, "eta": 3},
    "max81-s4-exact-powers": {"max_iter": 81, "s": 4, "eta": 3},
    "max1000-s3-eta10": {"max_iter": 1000, "s": 3, "eta": 10},
    "max5-s2-eta2": {"max_iter": 5, "s": 2, "eta": 2},
    "max50-s3-eta2.5": {"max_iter": 50, "s": 3, "eta": 2.5},
    "max-wins-over-min": {"min_iter": 1, "max_iter": 27, "s": 2, "eta": 3},
}


@pytest.fixture(scope="module")
def reference_bands() -> dict[str, list[int]]:
    """W&B's bands for every config in BAND_CONFIGS, from one run of its engine."""
    cases = [{"metric": "loss", "goal": "minimize", "hyperband": config,
              "runs": [{"name": "a", "state": "running", "history": [1.0]}]}
             for config in BAND_CONFIGS.values()]
    return {key: out["bands"] for key, out in zip(BAND_CONFIGS, reference_stop_runs(cases))}


@pytest.mark.parametrize("key", list(BAND_CONFIGS), ids=list(BAND_CONFIGS))
def test_milestones_are_the_reference_bands(key: str, reference_bands: dict[str, list[int]]) -> None:
    expected = sorted({band for band in reference_bands[key] if band <= MAX_MILESTONE})
    assert hyperband_milestones(hyperband(**BAND_CONFIGS[key])) == expected


@pytest.mark.parametrize(("fields", "expected"), [
    ({"max_iter": 100, "s": 5}, [1, 3, 11, 33]),
    ({"min_iter": 3, "eta": 2.5}, [3, 7, 18, 46, 117, 292]),
], ids=["issue-example", "notes-example"])
def test_milestones_documented_examples(fields: dict[str, Any], expected: list[int]) -> None:
    assert hyperband_milestones(hyperband(**fields))[:len(expected)] == expected


@pytest.mark.parametrize("fields", [{"max_iter": 27}, {"max_iter": 2, "s": 2}, {"max_iter": 27, "s": 0}, {}],
                         ids=["max-without-s", "max-below-eta", "s-zero", "neither-form"])
def test_milestones_reject_configs_without_bands(fields: dict[str, Any]) -> None:
    with pytest.raises(SweepConfigError) as error:
        hyperband_milestones(hyperband(**fields))
    assert [v.path for v in error.value.violations] == ["early_terminate"]


# ------------------------------------------------------- the cut, as a pure rule

def test_threshold_on_worked_example() -> None:
    """The notes' example (min_iter=2, eta=2, minimize): 0.3.0 stops only b."""
    runs = [("a", "finished", [10, 9, 8, 7]), ("b", "running", [10, 10, 10]),
            ("c", "running", [10, 6, 9]), ("d", "finished", [10, 5, 5, 5]), ("e", "running", [9, 8])]
    case = {"metric": "loss", "goal": "minimize", "hyperband": {"min_iter": 2, "eta": 2},
            "runs": [{"name": n, "state": s, "history": h} for n, s, h in runs]}
    [reference] = reference_stop_runs([case])
    at_band_2 = [h[1] for _, _, h in runs]
    assert band_threshold(at_band_2, 2) == reference["thresholds"][0] == 8
    assert band_threshold([7, 5], 2) == reference["thresholds"][1] == 7
    ours = sorted(name for name, state, h in runs
                  if state == "running" and stops_at_rung(at_band_2, h[1], 2))
    assert ours == reference["stopped"] == ["b"]


def _judge_snapshot(histories: dict[str, list[float]], running: list[str], milestones: list[int],
                    eta: float, strict: bool, sign: float) -> list[str]:
    """Our rule applied to a W&B snapshot: each running run at the last band it has passed."""
    stopped = []
    for name in running:
        history = [sign * v for v in histories[name]]
        passed = [b for b in milestones if b <= len(history)]
        if passed:
            band = passed[-1]
            rung = [sign * h[band - 1] for h in histories.values() if len(h) >= band]
            judged = history[band - 1] if strict else min(history)
            stopped += [name] if stops_at_rung(rung, judged, eta) else []
    return sorted(stopped)


SNAPSHOT_SETTINGS = [(eta, strict, goal) for eta in (2, 3, 2.5) for strict in (True, False)
                     for goal in ("minimize", "maximize")]


def test_rule_matches_reference_on_random_histories() -> None:
    """Random histories (ties included): our cut stops exactly the runs W&B's engine stops."""
    rng = np.random.default_rng(7)
    cases, ours = [], []
    for eta, strict, goal in SNAPSHOT_SETTINGS:
        for _ in range(20):
            n = int(rng.integers(2, 12))
            histories = {f"r{i}": [float(v) for v in rng.integers(0, 6, size=int(rng.integers(0, 20)))]
                         for i in range(n)}
            running = [name for name in histories if rng.random() < 0.6]
            config = {"min_iter": 1, "eta": eta, "strict": strict}
            cases.append({"metric": "acc", "goal": goal, "hyperband": config, "runs": [
                {"name": k, "state": "running" if k in running else "finished", "history": h}
                for k, h in histories.items()]})
            ours.append(_judge_snapshot(histories, running, hyperband_milestones(hyperband(**config)),
                                        eta, strict, -1.0 if goal == "maximize" else 1.0))
    reference = [out["stopped"] for out in reference_stop_runs(cases)]
    assert sum(map(len, reference)) > 50  # the cases do exercise stopping
    assert ours == reference


# ------------------------------------------------- the scheduler, result by result

def _scheduler(milestones: list[int], eta: float, strict: bool = True, mode: str = "min",
               shared: Ledger | None = None) -> WandbHyperbandScheduler:
    scheduler = WandbHyperbandScheduler(milestones, eta=eta, strict=strict, shared=shared)
    assert scheduler.set_search_properties("loss", mode)
    return scheduler


def _add(scheduler: WandbHyperbandScheduler, name: str) -> Trial:
    trial = Trial("train", trial_id=name, stub=True)
    scheduler.on_trial_add(None, trial)
    return trial


def test_iteration_counts_metric_values_only() -> None:
    """Rows without the metric, summary-only results and Ray's repeated last result don't count."""
    scheduler = _scheduler([2], eta=2)
    for name in ("first", "other"):  # two runs at 1.0 at rung 2: the cut there is 1.0
        trial = _add(scheduler, name)
        for i in (1, 2):
            scheduler.on_trial_result(None, trial, {"loss": 1.0, "training_iteration": i})
    second = _add(scheduler, "second")
    results = [
        {"loss": 5.0, "training_iteration": 1},
        {"acc": 0.1, "training_iteration": 2},                        # no metric
        {"loss": "n/a", "training_iteration": 3},                     # not a number
        {"loss": 5.0, "_raysweep/history": False, "training_iteration": 4},  # summary-only
        {"loss": 5.0, "training_iteration": 1, "done": True},          # Ray's repeat
    ]
    assert [scheduler.on_trial_result(None, second, r) for r in results] == [TrialScheduler.CONTINUE] * 5
    last = {"loss": 5.0, "training_iteration": 5}
    assert scheduler.on_trial_result(None, second, last) == TrialScheduler.STOP
    assert last[STOPPED_AT_RUNG] == 2 == scheduler.stopped_at_rung("second")
    assert scheduler.stopped_at_rung("first") is None


def test_a_retried_or_requeued_run_goes_on_counting_its_values() -> None:
    """W&B counts a run's metric values across its attempts; Ray numbers each attempt's results from 1."""
    scheduler = _scheduler([2, 4], eta=3)
    for name in ("first", "second"):  # at rung 4 with them, W&B's cut is 1.0
        trial = _add(scheduler, name)
        for i in (1, 2, 3, 4):
            scheduler.on_trial_result(None, trial, {"loss": 1.0, "training_iteration": i})
    requeued = _add(scheduler, "requeued")
    for i in (1, 2, 3):
        assert scheduler.on_trial_result(None, requeued, {"loss": 0.5, "training_iteration": i}) == \
            TrialScheduler.CONTINUE
    scheduler.on_trial_error(None, requeued)
    scheduler.on_trial_add(None, requeued)  # what Ray calls when it requeues a trial
    last = {"loss": 5.0, "training_iteration": 1}  # its 4th value: judged at rung 4, and worse than 1.0
    assert scheduler.on_trial_result(None, requeued, last) == TrialScheduler.STOP
    assert scheduler.stopped_at_rung("requeued") == 4


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("mode", ["min", "max"])
def test_non_finite_value_is_the_worst(bad: float, mode: str) -> None:
    """A diverged run is stopped at its rung (Ray's ASHA would keep a NaN run forever)."""
    scheduler = _scheduler([1], eta=2, mode=mode)
    for name, value in [("a", 1.0), ("b", 2.0)]:
        assert scheduler.on_trial_result(None, _add(scheduler, name), {"loss": value}) == "CONTINUE"
    assert scheduler.on_trial_result(None, _add(scheduler, "bad"), {"loss": bad}) == TrialScheduler.STOP


def test_not_strict_judges_the_best_value_so_far() -> None:
    """strict: false keeps a run whose value at the rung is bad but whose best so far is good."""
    decisions = {}
    for strict in (True, False):
        scheduler = _scheduler([2], eta=3, strict=strict)
        good, late = _add(scheduler, "good"), _add(scheduler, "late")
        for i, value in enumerate([3.0, 3.0]):
            scheduler.on_trial_result(None, good, {"loss": value, "training_iteration": i + 1})
        scheduler.on_trial_result(None, late, {"loss": 1.0, "training_iteration": 1})
        decisions[strict] = scheduler.on_trial_result(None, late, {"loss": 9.0, "training_iteration": 2})
    assert decisions == {True: TrialScheduler.STOP, False: TrialScheduler.CONTINUE}


# ----------------------------------------------------------- target and factories

@pytest.mark.parametrize(("mode", "values", "reached_at"), [
    ("min", [0.5, 0.2, 0.1], 1),
    ("max", [0.5, 0.8, 0.95], 1),
    ("min", [math.nan, -math.inf, 0.3, 0.2], 3),
    ("min", [0.3, 0.25], None),
], ids=["min-reaches", "max-reaches", "non-finite-ignored", "never"])
def test_target_stopper(mode: str, values: list[float], reached_at: int | None) -> None:
    """Every result from the one that reaches the target on says stop, and so does stop_all."""
    stopper = TargetStopper("loss", mode, 0.2 if mode == "min" else 0.8)
    seen = [stopper("t1", {"loss": v}) for v in values]
    assert seen == [reached_at is not None and i >= reached_at for i in range(len(values))]
    assert stopper.stop_all() is (reached_at is not None)


def test_target_stopper_ignores_summary_only_results() -> None:
    stopper = TargetStopper("loss", "min", 0.2)
    assert not stopper("t1", {"loss": 0.1, "_raysweep": {"history": False, "summary": {}}})
    assert not stopper.stop_all()


SWEEP = {"method": "random", "metric": {"name": "loss", "goal": "maximize"},
         "parameters": {"x": {"min": 0.0, "max": 1.0}}}


def test_make_scheduler_and_stopper_from_spec() -> None:
    assert make_scheduler(load_spec(SWEEP)) is None
    assert make_stopper(load_spec(SWEEP)) is None
    spec = load_spec({**SWEEP, "metric": {"name": "loss", "goal": "maximize", "target": 0.9},
                      "early_terminate": {"type": "hyperband", "max_iter": 27, "s": 2, "eta": 3,
                                          "strict": False}})
    scheduler, stopper = make_scheduler(spec), make_stopper(spec)
    assert isinstance(scheduler, WandbHyperbandScheduler) and scheduler.milestones == [3, 9]
    assert scheduler._metric is None  # metric/mode come from TuneConfig only
    assert isinstance(stopper, TargetStopper) and (stopper.metric, stopper.mode, stopper.target) == \
        ("loss", "max", 0.9)


# -------------------------------------------------------------------- real Ray

class _MetricCounter(tune.Callback):
    """Counts, per trial, the results a callback sees that carry the metric."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.results: dict[str, int] = {}
        self.x: dict[str, float] = {}

    def on_trial_result(self, iteration: int, trials: list[Trial], trial: Trial,
                        result: dict[str, Any], **info: Any) -> None:
        counted = raysweep.protocol.metric_value(result, "loss") is not None
        self.counts[trial.trial_id] = self.counts.get(trial.trial_id, 0) + counted
        self.results[trial.trial_id] = result["training_iteration"]
        self.x[trial.trial_id] = trial.config["x"]


def _fit(trainable: Any, tmp_path: Path, scheduler: WandbHyperbandScheduler | None = None,
         stopper: TargetStopper | None = None) -> _MetricCounter:
    """Run the 8-point grid x = 0..7 on the session's Ray; what a callback saw, per trial."""
    counter = _MetricCounter()
    tuner = tune.Tuner(
        trainable, param_space={"x": tune.grid_search(list(range(8)))},
        tune_config=tune.TuneConfig(metric="loss", mode="min", scheduler=scheduler, reuse_actors=True),
        run_config=tune.RunConfig(name="stopping", storage_path=str(tmp_path.resolve()), verbose=0,
                                  stop=stopper, callbacks=[counter]))
    grid = tuner.fit()
    # stop_all may end the sweep before every grid point became a trial
    assert grid.num_errors == 0 and (len(grid) == 8 or stopper is not None and len(grid) <= 8)
    return counter


ITERATIONS = 12


def _assert_stopped_at_milestones(counter: _MetricCounter, scheduler: WandbHyperbandScheduler) -> None:
    stopped = {t: scheduler.stopped_at_rung(t) for t in counter.counts if scheduler.stopped_at_rung(t)}
    assert stopped, "some trial must be stopped early"
    for trial_id, rung in stopped.items():
        assert rung in scheduler.milestones and counter.counts[trial_id] == rung
    for trial_id, x in counter.x.items():
        if x in (0, 1):  # the two best are never below W&B's cut
            assert trial_id not in stopped and counter.counts[trial_id] == ITERATIONS


def _trainable(rows_without_metric: bool) -> Any:
    """loss = x + 1/(i+1) for 12 iterations; optionally with rows that must not count.

    Built in a function so that Ray ships it by value (workers cannot import tests/).
    """

    def train(config: dict[str, Any]) -> None:
        for i in range(ITERATIONS):
            if rows_without_metric:
                raysweep.trial.session.log({"epoch": i})
                raysweep.trial.session.log({"loss": config["x"] + 1 / (i + 1), "epoch": i})
                raysweep.trial.session.report_row(None, summary={"note": i})
            else:
                tune.report({"loss": config["x"] + 1 / (i + 1)})

    return train


@pytest.mark.integration
@pytest.mark.parametrize("rows_without_metric", [False, True],
                         ids=["metric-every-result", "rows-without-metric"])
def test_ray_stops_trials_exactly_at_milestones(ray_session: None, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                rows_without_metric: bool) -> None:
    monkeypatch.setenv("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    scheduler = make_scheduler(load_spec({
        **SWEEP, "metric": {"name": "loss", "goal": "minimize"},
        "early_terminate": {"type": "hyperband", "min_iter": 1, "eta": 2}}))
    assert scheduler is not None and scheduler.milestones[:4] == [1, 2, 4, 8]
    counter = _fit(_trainable(rows_without_metric), tmp_path, scheduler=scheduler)
    _assert_stopped_at_milestones(counter, scheduler)
    if rows_without_metric:  # Ray's training_iteration ran ahead of the metric count
        for trial_id, count in counter.counts.items():  # 3 results per loss value
            stopped = scheduler.stopped_at_rung(trial_id) is not None
            assert counter.results[trial_id] == 3 * count - (1 if stopped else 0)


@pytest.mark.integration
def test_ray_target_ends_the_sweep(ray_session: None, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """x=0 logs 1/(i+1): it reaches the target 0.5 at its 2nd value and the sweep ends there."""
    monkeypatch.setenv("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    counter = _fit(_trainable(False), tmp_path, stopper=TargetStopper("loss", "min", 0.5))
    [best] = [t for t, x in counter.x.items() if x == 0]
    assert counter.counts[best] == 2
    assert sum(counter.counts.values()) < 8 * ITERATIONS and len(counter.counts) < 8


# ----------------------------------- replay: W&B's controller and the scheduler on the same timelines

# W&B's controller on each timeline: after every logged value, `hyperband_stop_runs` over every run
# so far; a run it names is stopped there (its later values never come), a run whose values are all
# logged finishes.  Prints, per timeline, {run: number of values it had logged when stopped}.
REF_REPLAY = """
import json, sys
from sweeps import RunState, SweepRun
from sweeps.hyperband_stopping import hyperband_stop_runs
out = []
for case in json.load(sys.stdin):
    config = {"method": "random", "parameters": {"x": {"value": 1}},
              "metric": {"name": "loss", "goal": case["goal"]},
              "early_terminate": {"type": "hyperband", **case["hyperband"]}}
    histories, state, stopped = {}, {}, {}
    left = {name: length for name, length in case["lengths"].items()}
    for name, value in case["events"]:
        if name in stopped:
            continue
        histories.setdefault(name, []).append(value)
        state[name] = RunState.running
        runs = [SweepRun(name=k, state=state[k], history=[{"loss": v} for v in h]) for k, h in histories.items()]
        for run in hyperband_stop_runs(runs, config):
            stopped[run.name] = len(histories[run.name])
            state[run.name] = RunState.killed
        left[name] -= 1
        if left[name] == 0 and name not in stopped:
            state[name] = RunState.finished
    out.append(stopped)
print(json.dumps(out))
"""

REPLAY_SETTINGS = [
    {"min_iter": 1, "eta": 2}, {"min_iter": 2, "eta": 3}, {"min_iter": 1, "eta": 1.5}, {"min_iter": 3, "eta": 2.5},
    {"max_iter": 27, "s": 3, "eta": 3}, {"max_iter": 16, "s": 2, "eta": 2}, {"max_iter": 20, "s": 4, "eta": 2.5},
]


def _timelines(per_setting: int, seed: int) -> list[dict[str, Any]]:
    """Runs of different lengths starting at different times, their values interleaved at random."""
    rng = np.random.default_rng(seed)
    cases = []
    for fields in REPLAY_SETTINGS:
        for strict in (True, False):
            for goal in ("minimize", "maximize"):
                for _ in range(per_setting):
                    n = int(rng.integers(3, 10))
                    lengths = {f"r{i}": int(rng.integers(1, 25)) for i in range(n)}
                    timed = []  # (time, run, value): each run starts when it starts, at its own pace
                    for name, length in lengths.items():
                        at, pace = rng.uniform(0, 20), rng.uniform(0.3, 3)
                        for _ in range(length):
                            at += rng.exponential(pace)
                            timed.append((at, name, float(rng.integers(0, 8))))
                    events = [[name, value] for _, name, value in sorted(timed)]
                    cases.append({"goal": goal, "hyperband": {**fields, "strict": strict},
                                  "lengths": lengths, "events": events})
    return cases


class _Controller:
    """Stands in for Ray's TuneController in a replay: `stop_trial` as Ray does it for a running trial."""

    def __init__(self, scheduler: WandbHyperbandScheduler, counts: dict[str, int], stopped: dict[str, int]) -> None:
        self.scheduler, self.counts, self.stopped = scheduler, counts, stopped

    def stop_trial(self, trial: Trial) -> None:
        self.stopped[trial.trial_id] = self.counts[trial.trial_id]
        self.scheduler.on_trial_complete(self, trial, {})

    def get_trials(self) -> list[Trial]:
        return []  # none waits to be started: `choose_trial_to_run` chooses none


def _replay_schedulers(case: dict[str, Any], shared: list[Any]) -> list[WandbHyperbandScheduler]:
    """A scheduler of the case's settings per item of `shared` (None: a driver alone)."""
    config = case["hyperband"]
    h = hyperband(**{k: v for k, v in config.items() if k != "strict"})
    return [_scheduler(hyperband_milestones(h), h.eta, config["strict"],
                       "max" if case["goal"] == "maximize" else "min", shared=one) for one in shared]


def _play(case: dict[str, Any], schedulers: list[WandbHyperbandScheduler]) -> dict[str, int]:
    """The timeline, in the same event order as REF_REPLAY, each run's values fed to one scheduler
    (runs dealt to them in turn, as to drivers); after each value, each other scheduler's controller
    takes a step, as Ray's does many times a second."""
    counts: dict[str, int] = {}
    stopped: dict[str, int] = {}
    controllers = [_Controller(scheduler, counts, stopped) for scheduler in schedulers]
    owner = {name: controllers[i % len(controllers)] for i, name in enumerate(case["lengths"])}
    trials: dict[str, Trial] = {}
    for name, value in case["events"]:
        if name in stopped:
            continue
        controller = owner[name]
        scheduler = controller.scheduler
        if name not in trials:
            trials[name] = Trial("train", trial_id=name, stub=True)
            scheduler.on_trial_add(controller, trials[name])
        counts[name] = counts.get(name, 0) + 1
        result = {"loss": value, "training_iteration": counts[name]}
        if scheduler.on_trial_result(controller, trials[name], result) == TrialScheduler.STOP:
            stopped[name] = counts[name]
            scheduler.on_trial_complete(controller, trials[name], result)
        elif counts[name] == case["lengths"][name]:
            scheduler.on_trial_complete(controller, trials[name], result)
        for other in controllers:
            if other is not controller:
                other.scheduler.choose_trial_to_run(other)
    return stopped


def _replay(case: dict[str, Any]) -> dict[str, int]:
    """One scheduler fed the whole timeline."""
    return _play(case, _replay_schedulers(case, [None]))


def test_replay_stops_the_runs_wandb_stops_at_the_same_iteration() -> None:
    """>= 200 timelines over 7 band settings, strict and not, both goals: the same runs stopped,
    each after the same number of values, as W&B's controller polling after every value."""
    cases = _timelines(per_setting=8, seed=11)
    assert len(cases) >= 200
    reference = run_reference(REF_REPLAY, stdin=json.dumps(cases))
    ours = [_replay(case) for case in cases]
    late = sum(1 for case, stops in zip(cases, reference, strict=True) for name, at in stops.items()
               if at not in hyperband_milestones(hyperband(**{k: v for k, v in case["hyperband"].items()
                                                              if k != "strict"})))
    assert sum(map(len, reference)) > 300 and late > 20  # runs stopped, many of them between rungs
    assert ours == reference


@pytest.mark.integration
def test_ray_stops_a_running_trial_when_the_cut_of_its_rung_moves(ray_session: None, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """x=5 passes the only rung (8) alone and trains on slowly; two better trials reach the rung
    later, the cut drops below 5, and Ray stops x=5 between rungs, as W&B's controller would."""
    monkeypatch.setenv("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    scheduler = make_scheduler(load_spec({**SWEEP, "metric": {"name": "loss", "goal": "minimize"},
                                          "early_terminate": {"type": "hyperband", "max_iter": 16, "s": 1,
                                                              "eta": 2}}))
    assert scheduler is not None and scheduler.milestones == [8]

    def train(config: dict[str, Any]) -> None:
        import time as clock

        for i in range(40 if config["x"] == 5 else 9):
            tune.report({"loss": float(config["x"])})
            if config["x"] == 5 and i >= 8:
                clock.sleep(0.25)

    counter = _MetricCounter()
    tuner = tune.Tuner(
        train, param_space={"x": tune.grid_search([5, 1, 1])},
        tune_config=tune.TuneConfig(metric="loss", mode="min", scheduler=scheduler, max_concurrent_trials=2),
        run_config=tune.RunConfig(name="rejudge", storage_path=str(tmp_path.resolve()), verbose=0,
                                  callbacks=[counter]))
    assert tuner.fit().num_errors == 0
    [slow] = [t for t, x in counter.x.items() if x == 5]
    assert scheduler.stopped_at_rung(slow) == 8 and 8 < counter.counts[slow] < 40
    assert all(scheduler.stopped_at_rung(t) is None and counter.counts[t] == 9 for t in counter.x if t != slow)


# ------------------------------ two drivers, one sweep: the rungs shared through the run log's file

def _replay_two_drivers(case: dict[str, Any], path: Path) -> dict[str, int]:
    """The timeline split between two drivers of one sweep, each with its own scheduler and `Ledger`
    on the run log at `path`: a driver learns the other's values only through rungs.jsonl."""
    path.mkdir()
    ledgers = [Ledger.join(path, "swpshare") for _ in range(2)]
    try:
        return _play(case, _replay_schedulers(case, ledgers))
    finally:
        for ledger in ledgers:
            ledger.leave()


def _with_non_finite(cases: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """The cases with about one value in eight NaN, inf or -inf."""
    rng = np.random.default_rng(seed)
    bad = [math.nan, math.inf, -math.inf]
    return [{**case, "events": [[name, bad[int(rng.integers(3))] if rng.random() < 0.125 else value]
                                for name, value in case["events"]]} for case in cases]


def _apart(case: dict[str, Any]) -> dict[str, int]:
    """Where runs stop when each of the two drivers has only its own runs' values (nothing shared)."""
    stopped: dict[str, int] = {}
    for keep in (0, 1):
        names = [name for i, name in enumerate(case["lengths"]) if i % 2 == keep]
        stopped.update(_replay({**case, "lengths": {name: case["lengths"][name] for name in names},
                                "events": [event for event in case["events"] if event[0] in names]}))
    return stopped


def test_two_drivers_sharing_rungs_stop_what_one_driver_stops(tmp_path: Path) -> None:
    """224 timelines (7 band settings, strict and not, both goals), then the same with NaN/inf values:
    two schedulers, each fed its own runs' values and the other's only through rungs.jsonl, stop the
    same runs after the same number of values as one scheduler fed them all (which stops what W&B's
    controller stops: `test_replay_stops_the_runs_wandb_stops_at_the_same_iteration`)."""
    finite = _timelines(per_setting=8, seed=11)
    for label, cases in (("finite", finite), ("non-finite", _with_non_finite(finite, seed=5))):
        one = [_replay(case) for case in cases]
        two = [_replay_two_drivers(case, tmp_path / f"{label}-{i}") for i, case in enumerate(cases)]
        assert two == one, label
        # what sharing decides: drivers on their own would stop other runs, or the same ones elsewhere
        assert sum(map(len, one)) > 300 and sum(a != b for a, b in zip(one, map(_apart, cases))) > 100


def _feed(scheduler: WandbHyperbandScheduler, trial: Trial, values: list[float]) -> str:
    """Each value as the trial's next result; the decision on the last."""
    decision = TrialScheduler.CONTINUE
    for value in values:
        decision = scheduler.on_trial_result(None, trial, {"loss": value})
    return decision


@pytest.mark.parametrize(("adopted", "history", "prober", "decision"), [
    (False, False, "c", TrialScheduler.STOP), (True, False, "b", TrialScheduler.CONTINUE),
    (True, False, "c", TrialScheduler.CONTINUE), (True, True, "c", TrialScheduler.STOP),
], ids=["cut-off-run-counts", "adopter-forgets-its-first-attempt", "others-forget-it-too",
        "adopter-given-its-history-goes-on"])
def test_a_run_restarted_by_another_driver_counts_once_with_its_new_values(
        tmp_path: Path, adopted: bool, history: bool, prober: str, decision: str) -> None:
    """Driver a's runs `good` (1, 1) and `bad` (0.1, 0.1) reach rungs 1 and 2; a dies.  Until `bad` is
    restarted its values count (a probe logging 1, 2 is below rung 2's cut {1, 0.1, 2} -> 1); once
    driver b adopts it (its new attempt logs 5 at rung 1), rung 2 holds {1, 2} (cut 2), in b and in c.
    Given `bad`'s history (as `--resume` and an adopting agent are, `remember_runs`), b goes on
    counting it: its values at the rungs are published again, its 5 is its third value."""
    ledgers = {name: Ledger.join(tmp_path, "swprestart") for name in "abc"}
    schedulers = {name: _scheduler([1, 2], eta=2, shared=ledger) for name, ledger in ledgers.items()}
    try:
        good, bad = _add(schedulers["a"], "good"), _add(schedulers["a"], "bad")
        for _ in range(2):
            assert _feed(schedulers["a"], good, [1.0]) == _feed(schedulers["a"], bad, [0.1]) == "CONTINUE"
        ledgers["a"].leave()  # a is gone; b and c have not looked at the rungs since
        if history:
            schedulers["b"].resume("bad", [{"loss": 0.1, "_step": 0}, {"epoch": 0}, {"loss": 0.1, "_step": 1}])
        if adopted:
            assert _feed(schedulers["b"], _add(schedulers["b"], "bad"), [5.0]) == TrialScheduler.CONTINUE
        assert _feed(schedulers[prober], _add(schedulers[prober], "probe"), [1.0, 2.0]) == decision
        assert schedulers[prober].stopped_at_rung("probe") == (2 if decision == TrialScheduler.STOP else None)
    finally:
        for ledger in ledgers.values():
            ledger.leave()


def test_a_result_is_judged_after_the_other_drivers_values_are_taken_in(tmp_path: Path) -> None:
    """Driver a's run logs 3 at the only rung (alone there: it goes on); driver b's runs log 1 and 2
    there (cut 2).  a's next result, before a's controller took a step, is answered STOP at rung 1."""
    ledgers = [Ledger.join(tmp_path, "swpnext") for _ in range(2)]
    try:
        a, b = (_scheduler([1], eta=2, shared=ledger) for ledger in ledgers)
        slow = _add(a, "slow")
        assert a.on_trial_result(None, slow, {"loss": 3.0}) == TrialScheduler.CONTINUE
        for name, value in (("b1", 1.0), ("b2", 2.0)):
            assert b.on_trial_result(None, _add(b, name), {"loss": value}) == TrialScheduler.CONTINUE
        controller = _Controller(a, {"slow": 1}, {})
        assert a.on_trial_result(controller, slow, {"loss": 0.5}) == TrialScheduler.STOP
        assert a.stopped_at_rung("slow") == 1 and controller.stopped == {}  # Ray stops it on that answer
    finally:
        for ledger in ledgers:
            ledger.leave()
