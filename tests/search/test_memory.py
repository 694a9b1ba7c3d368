"""The sweep remembers: searchers learn runs they did not propose, Hyperband's rungs are refilled.

A driver started on an existing sweep (a resume, another agent) gives its
searcher every ended run (`SweepSearcher.add_evaluated`) and its Hyperband
scheduler every ended run's history (`WandbHyperbandScheduler.remember`) and
the history of each run it cut off, which goes on counting when it starts again
(`WandbHyperbandScheduler.resume`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler

from raysweep.driver.runner import remember_runs
from raysweep.names import run_id_for
from raysweep.runlog.lease import Ledger
from raysweep.runlog.log import RunLog
from raysweep.search.gp import from_unit, from_wandb, to_wandb
from raysweep.search.searchers import Params, make_searcher
from raysweep.search.stopping import make_scheduler
from raysweep.spec.load import load_spec

KINDS = {
    "uniform": {"distribution": "uniform", "min": -2, "max": 3},
    "int": {"distribution": "int_uniform", "min": 1, "max": 9},
    "logv": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-1},
    "invlogv": {"distribution": "inv_log_uniform_values", "min": 1e-3, "max": 10},
    "q": {"distribution": "q_uniform", "min": 0, "max": 10, "q": 0.5},
    "normal": {"distribution": "normal", "mu": 1, "sigma": 2},
    "lognormal": {"distribution": "log_normal", "mu": 0, "sigma": 1},
    "qlogv": {"distribution": "q_log_uniform_values", "min": 1, "max": 1000, "q": 4},
    "beta": {"distribution": "beta", "a": 2, "b": 5},
    "qnormal": {"distribution": "q_normal", "mu": 0, "sigma": 3, "q": 1},
    "cat": {"values": ["a", {"deep": 1}, 3]},
}


def test_quantile_is_the_inverse_of_ppf_for_every_kind() -> None:
    params = Params.of(load_spec({"method": "bayes", "metric": {"name": "loss"}, "parameters": KINDS}))
    rng = np.random.default_rng(0)
    for label, dist in params.searched().items():
        for u in rng.uniform(0.01, 0.99, 20):
            value = from_unit(dist, u)
            back = to_wandb(dist, from_wandb(dist, value))
            assert back == value if label == "cat" else back == pytest.approx(value, rel=1e-9), label
    assert from_wandb(params.searched()["cat"], "zzz") is None


def _quadratic_sweep(extra: dict[str, Any] | None = None) -> Any:
    return load_spec({"method": "bayes", "metric": {"name": "loss", "goal": "minimize"},
                      "parameters": {"x": {"min": 0.0, "max": 1.0}, **(extra or {})}})


def test_a_gp_fed_runs_proposes_from_them() -> None:
    """Fed 30 runs of (x - 0.3)^2 (some without a finite value), the GP proposes near 0.3."""
    spec = _quadratic_sweep()
    rng = np.random.default_rng(1)
    fed = make_searcher(spec, seed=2, max_runs=10)
    blind = make_searcher(spec, seed=2, max_runs=10)
    for x in rng.uniform(0, 1, 30):
        fed.add_evaluated({"x": float(x)}, (x - 0.3) ** 2 if x < 0.9 else math.nan)
    assert fed.learns and blind.learns
    near = [abs(fed.suggest(f"f{i}")["x"] - 0.3) for i in range(5)]  # type: ignore[index]
    far = [abs(blind.suggest(f"b{i}")["x"] - 0.3) for i in range(5)]  # type: ignore[index]
    assert near[0] < 0.05  # the next ones are made with the earlier ones in flight, so they spread out
    assert np.median(near) < 0.1 < np.median(far)


def _objective(config: dict[str, Any]) -> float:
    return (config["x"] - 0.3) ** 2 + (0.5 if config["opt"] == "sgd" else 0.0)


def test_a_fed_searcher_knows_what_one_that_ran_the_runs_knows() -> None:
    """12 runs proposed and completed by one searcher, fed to another: the same Optuna trials."""
    spec = _quadratic_sweep({"opt": {"values": ["sgd", "adam"]}})
    ran, fed = make_searcher(spec, seed=3, max_runs=12), make_searcher(spec, seed=4, max_runs=12)
    for i in range(12):
        config = ran.suggest(f"t{i}")
        assert isinstance(config, dict)
        value = math.nan if i == 5 else _objective(config)
        ran.on_trial_result(f"t{i}", {"loss": value})
        ran.on_trial_complete(f"t{i}", {"loss": value})
        fed.add_evaluated(config, value)
    had = sorted((t.value, t.params["opt"], t.params["x"]) for t in ran.searcher.study.trials if t.value is not None)
    got = sorted((t.value, t.params["opt"], t.params["x"]) for t in fed.searcher.study.trials if t.value is not None)
    assert [(v, o) for v, o, _ in got] == [(v, o) for v, o, _ in had] and len(got) == 12
    # quantiles 0 and 1 are proposed as UNIT_EPS inside them: the same W&B value
    assert np.allclose([x for *_, x in got], [x for *_, x in had], atol=1e-5)


def test_grid_and_random_searchers_ignore_what_they_cannot_learn() -> None:
    spec = load_spec({"method": "random", "parameters": {"x": {"min": 0.0, "max": 1.0}}})
    searcher = make_searcher(spec, seed=0, max_runs=None)
    before = searcher.get_state()
    searcher.add_evaluated({"x": 0.5}, 1.0)
    assert not searcher.learns and searcher.get_state() == before


def test_agents_on_one_run_log_see_each_others_runs_in_flight_and_results(tmp_path: Path) -> None:
    """Two bayes agents sharing a run log (`Ledger`): each proposal knows the other's run in flight.

    Fed the same runs with the same seed, the second agent would propose the
    first one's point again; told of it through the run log's claims, it does
    not, and once that run ended its result reaches it as any other.
    """
    spec = _quadratic_sweep()
    log = RunLog.create(tmp_path, spec, "swp00002")
    agents = []
    for _ in range(2):
        agent = make_searcher(spec, seed=9, max_runs=5)
        agent.learn([({"x": float(x)}, (x - 0.3) ** 2) for x in np.linspace(0.0, 1.0, 11)])
        agent.shared = Ledger.join(log.path, log.sweep_id, metric="loss", mode="min")
        agents.append(agent)
    try:
        first = agents[0].suggest("a0")
        second = agents[1].suggest("b0")
        assert isinstance(first, dict) and isinstance(second, dict)
        assert abs(first["x"] - second["x"]) > 1e-4
        running = [t for t in agents[1].searcher.study.trials if t.state.name == "RUNNING"]
        assert len(running) == 2  # its own run and the first agent's
        run_id = run_id_for(log.sweep_id, "a0")
        log.start_run(run_id, "a0", first, {"ray_trial_id": "a0"})
        log.append_history(run_id, {"loss": (first["x"] - 0.3) ** 2})
        log.end_run(run_id, "finished")
        agents[1].suggest("b1")
        values = [t.value for t in agents[1].searcher.study.trials if t.state.name == "COMPLETE"]
        assert len(values) == 12 and pytest.approx((first["x"] - 0.3) ** 2) in values
    finally:
        for agent in agents:
            agent.shared.leave()  # type: ignore[union-attr]


# --- Hyperband after a resume ----------------------------------------------------------

HYPERBAND = {"method": "random", "metric": {"name": "loss", "goal": "minimize"},
             "parameters": {"x": {"value": 1}},
             "early_terminate": {"type": "hyperband", "min_iter": 1, "eta": 3}}
RUNS, EPOCHS = 16, 9


def _curves() -> list[list[float]]:
    """A fixed synthetic sweep: 16 runs of 9 epochs, a few with NaN values."""
    rng = np.random.default_rng(7)
    curves = []
    for i in range(RUNS):
        start, rate = rng.uniform(1, 5), rng.uniform(0.1, 0.6)
        curve = [start * math.exp(-rate * epoch) + rng.normal(0, 0.05) for epoch in range(EPOCHS)]
        if i % 7 == 3:
            curve[2] = math.nan
        curves.append(curve)
    return curves


def _play(scheduler: Any, curves: list[list[float]], names: list[str],
          log: RunLog | None = None) -> dict[str, int | None]:
    """Run each curve through the scheduler, one run after another; where each was stopped.

    With `log`, each run is also recorded in the run log as a driver records it.
    """
    stopped: dict[str, int | None] = {}
    for name, curve in zip(names, curves, strict=True):
        trial = Trial("train", trial_id=name, stub=True)
        scheduler.on_trial_add(None, trial)
        if log is not None:
            log.start_run(run_id_for(log.sweep_id, name), name, {"x": 1}, {"ray_trial_id": name})
        stopped[name] = None
        for epoch, loss in enumerate(curve, start=1):
            result = {"loss": loss, "training_iteration": epoch}
            if log is not None:
                log.append_history(run_id_for(log.sweep_id, name), {"loss": loss})
            if scheduler.on_trial_result(None, trial, result) == TrialScheduler.STOP:
                stopped[name] = scheduler.stopped_at_rung(name)
                break
        scheduler.on_trial_complete(None, trial, result)
        if log is not None:
            log.end_run(run_id_for(log.sweep_id, name), "killed" if stopped[name] else "finished",
                        stopped_at_rung=stopped[name])
    return stopped


def _scheduler() -> Any:
    scheduler = make_scheduler(load_spec(HYPERBAND))
    return scheduler


def test_hyperband_after_a_resume_stops_the_runs_an_unbroken_sweep_stops(tmp_path: Path) -> None:
    curves, names = _curves(), [f"t{i:02d}" for i in range(RUNS)]
    unbroken = _scheduler()
    unbroken.set_search_properties("loss", "min")
    expected = _play(unbroken, curves, names)

    log = RunLog.create(tmp_path, load_spec(HYPERBAND), "swp00002")
    first = _scheduler()
    first.set_search_properties("loss", "min")
    half = RUNS // 2
    assert _play(first, curves[:half], names[:half], log) == {n: expected[n] for n in names[:half]}
    resumed = _scheduler()
    remember_runs(resumed, RunLog.open(log.path))  # before Tune gives it metric and mode, as in a driver
    resumed.set_search_properties("loss", "min")
    later = _play(resumed, curves[half:], names[half:])
    assert later == {n: expected[n] for n in names[half:]}

    forgetful = _scheduler()
    forgetful.set_search_properties("loss", "min")
    assert _play(forgetful, curves[half:], names[half:]) != later  # without memory it stops others
    assert sum(rung is not None for rung in later.values()) >= 2


def test_hyperband_counts_a_cut_off_runs_values_across_the_resume(tmp_path: Path) -> None:
    """A driver killed while a run is between rungs; the resumed driver judges it as an unbroken sweep."""
    curves, names = _curves(), [f"t{i:02d}" for i in range(RUNS)]
    unbroken = _scheduler()
    unbroken.set_search_properties("loss", "min")
    expected = _play(unbroken, curves, names)
    half = RUNS // 2
    cut = next(i for i in range(half, RUNS) if expected[names[i]] is not None and expected[names[i]] > 1)
    log = RunLog.create(tmp_path, load_spec(HYPERBAND), "swp00003")
    first = _scheduler()
    first.set_search_properties("loss", "min")
    _play(first, curves[:cut], names[:cut], log)
    epochs = first.milestones[0] + 1  # past the first rung, short of where it is stopped
    run_id = run_id_for(log.sweep_id, names[cut])
    log.start_run(run_id, names[cut], {"x": 1}, {"ray_trial_id": names[cut]})
    for loss in curves[cut][:epochs]:
        log.append_history(run_id, {"loss": loss})  # then the driver is killed: the run never ends

    def resumed_verdict(memory: bool) -> int | None:
        scheduler = _scheduler()
        if memory:
            remember_runs(scheduler, RunLog.open(log.path))
        scheduler.set_search_properties("loss", "min")
        trial = Trial("train", trial_id=names[cut], stub=True)
        scheduler.on_trial_add(None, trial)
        for epoch, loss in enumerate(curves[cut][epochs:], start=1):  # Ray's iterations start again
            if scheduler.on_trial_result(None, trial, {"loss": loss, "training_iteration": epoch}) \
                    == TrialScheduler.STOP:
                return scheduler.stopped_at_rung(names[cut])
        return None

    assert resumed_verdict(memory=True) == expected[names[cut]]
    assert resumed_verdict(memory=False) != expected[names[cut]]  # counting from zero, it stops elsewhere
