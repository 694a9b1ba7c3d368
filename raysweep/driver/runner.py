"""Run a sweep on Ray Tune: spec → searcher + scheduler + trainable → Tuner, with a run log.

This is the module that wires the pieces together into one `Tuner`: the searcher
and scheduler (`raysweep.search`), the trainable (a function, or the sweep's
program from `raysweep.trial`), the run-log recorder and the progress display;
`raysweep.driver.cluster` connects to Ray and `storage` says where Ray keeps its
state.  Each of those is tested on its own.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from ray import cloudpickle, tune
from ray.tune.error import TuneError

from raysweep.driver import cluster, echo

from raysweep.search import searchers as search, stopping
from raysweep.spec.tree import AttrDict
from raysweep.errors import RunLogError
from raysweep.driver.interrupt import Drain, catch_interrupt, watchdog
from raysweep.names import new_sweep_id, run_id_for
from raysweep.driver import progress
from raysweep.runlog.recorder import RunLogCallback
from raysweep.results.table import sort_best_first
from raysweep.runlog.lease import Ledger
from raysweep.runlog.log import RunLog, load
from raysweep.trial.session import RetryOnlyLostRuns, errors_are_final, report_row, start_attempt
from raysweep.spec.load import SweepSpec, load_spec
from raysweep.driver.settings import DEFAULT_OUT, Resources, Settings, function_record, launched_function
from raysweep.driver.storage import experiment_location

TrainFn = Callable[..., Any]


@dataclass
class SweepResult:
    """What a finished (or interrupted) sweep leaves: its run log, as a DataFrame."""

    path: Path
    spec: SweepSpec
    state: str
    runs: pd.DataFrame = field(repr=False)
    exit_code: int = 0  # 128 + the signal that stopped the sweep (130 for Ctrl-C), else 0

    @property
    def best_run(self) -> dict[str, Any] | None:
        """The run with the best `summary.<metric>` per the sweep's goal, as a dict."""
        best = sort_best_first(self.runs, self.spec).head(1)
        return None if best.empty else best.iloc[0].to_dict()


def run_budget(spec: SweepSpec, count: int | None, already_done: int = 0) -> int | None:
    """How many runs to start: `--count` and `run_cap` cap it; a grid runs each point once.

    ``None`` means no limit (W&B's random and bayes sweeps run until stopped).
    """
    limits = [n for n in (count, None if spec.run_cap is None else spec.run_cap - already_done)
              if n is not None]
    if spec.method == "grid":
        limits.append(len(search.grid_points(spec)) - already_done)
    return max(0, min(limits)) if limits else None


def ship_by_value(fn: Callable[..., Any]) -> None:
    """Make Ray send `fn`'s module to workers by value unless it is an installed package.

    A user's training code (a script, a test module, a notebook cell) usually
    cannot be imported by name on a Ray worker, least of all on another node;
    installed packages can, and are better sent by reference.
    """
    module = sys.modules.get(getattr(fn, "__module__", "") or "")
    if module is None or module.__name__ == "__main__":
        return  # cloudpickle already sends __main__'s functions by value
    origin = Path(getattr(module, "__file__", None) or "")
    installed = any(part in ("site-packages", "dist-packages") for part in origin.parts)
    if not installed and module.__name__.split(".")[0] != "raysweep":
        cloudpickle.register_pickle_by_value(module)


def function_trainable(train_fn: TrainFn, runs_dir: str | None = None,
                       sweep_id: str = "") -> Callable[[dict[str, Any]], None]:
    """Wrap a user's `train(config)` as a Ray function trainable.

    The function gets an `AttrDict` (``config.lr`` and ``config["lr"]``) and
    reports with `raysweep.log` (or `ray.tune.report`); a dict it returns is
    reported as its last row, as Ray does for plain functions.  With the run
    log's `runs_dir`, a later attempt of a run goes on after its last step.
    """

    ship_by_value(train_fn)

    def trainable(config: dict[str, Any]) -> None:
        start_attempt(runs_dir, sweep_id)
        returned = train_fn(AttrDict(config))
        if isinstance(returned, Mapping):
            report_row(dict(returned))

    trainable.__name__ = getattr(train_fn, "__name__", "train")
    return trainable


def _make_trainable(spec: SweepSpec, log: RunLog, train_fn: TrainFn | None,
                    settings: Settings, echo_to: Any = None,
                    mark: str | None = None) -> Callable[[dict[str, Any]], None]:
    """The function each trial runs: the user's `train` or the sweep's program (`echo_to`: --verbose)."""
    if train_fn is not None:
        return function_trainable(train_fn, str(log.path / "runs"), log.sweep_id)
    from raysweep.trial import carry, program

    carried = None if settings.storage is None else carry.recorded_checkpoints(
        log.run_dir(run_id_for(log.sweep_id, trial_id)) for trial_id in log.cut_off_runs())
    return program.program_trainable(
        spec, log.sweep_id, cwd=Path.cwd(), runs_dir=log.path / "runs",
        kill_grace=settings.kill_grace, run_timeout=settings.run_timeout,
        echo_to=echo_to, mark=mark, carried=carried)


def _tuner(spec: SweepSpec, log: RunLog, trainable: Callable[[dict[str, Any]], None],
           settings: Settings, budget: int | None, searcher: search.SweepSearcher,
           experiment: tuple[str, str], stopper: stopping.TargetStopper | None,
           shown: progress.Display | None, programs: bool = False) -> tune.Tuner:
    """A new Tuner for the sweep, recording into `log`.

    The scheduler object is shared with the callbacks: Ray hands schedulers a
    copy of each result, so the rung a run was stopped at is asked of it.
    Its rungs start with the values of the sweep's ended runs, and are
    those of every driver of the sweep from then on (`log.shared`).
    """
    metric = spec.metric
    resources = settings.resources
    scheduler = stopping.make_scheduler(spec, log.shared)
    if scheduler is not None:
        remember_runs(scheduler, log)
    rung_of = scheduler.stopped_at_rung if scheduler is not None else None
    callbacks: list[tune.Callback] = [RetryOnlyLostRuns(), RunLogCallback(log, rung_of, programs=programs)]
    if shown is not None:
        callbacks.append(progress.ProgressCallback(shown, log, scheduler))
    tune_config = tune.TuneConfig(
        metric=metric.name if metric else None, mode=metric.mode if metric else None,
        search_alg=search.SweepTrialGenerator(searcher, resources.max_concurrent), scheduler=scheduler,
        num_samples=-1,  # the searcher ends the sweep: this driver's budget, the sweep's shared one
        reuse_actors=settings.reuse_actors is not False,
        trial_dirname_creator=lambda trial: trial.trial_id)
    storage, name = experiment
    run_config = tune.RunConfig(
        name=name, storage_path=storage, verbose=0,
        stop=stopper, callbacks=callbacks,
        failure_config=tune.FailureConfig(max_failures=settings.max_failures),
        # A program's carried folder is persisted again and again: storage keeps a run's last one.
        checkpoint_config=tune.CheckpointConfig(num_to_keep=1) if programs else None)
    log.update_sweep(ray_experiment_path=f"{storage}/{name}")
    return tune.Tuner(tune.with_resources(trainable, resources.as_ray()),
                      tune_config=tune_config, run_config=run_config)


def remember_runs(scheduler: stopping.WandbHyperbandScheduler, log: RunLog) -> None:
    """Fill the scheduler's rungs with the values of every run of the sweep that has ended, and
    give it those of the runs an earlier driver cut off, which go on counting when they start again."""
    for record in log.finished_runs():
        scheduler.remember(record["id"], log.history(record["id"]), record.get("stopped_at_rung"))
    for trial_id in log.cut_off_runs():
        scheduler.resume(trial_id, log.history(run_id_for(log.sweep_id, trial_id)))


def _fit(tuner: tune.Tuner, log: RunLog, stopper: stopping.TargetStopper | None, drain: Drain) -> str:
    """Run the Tuner; the sweep's final state is `cancelled` when runs were left unfinished.

    After a signal the driver waits for the stopped programs on this machine
    to exit (a second signal kills them), so nothing of the sweep outlives it.
    """
    try:
        with catch_interrupt(drain):
            grid = tuner.fit()
            if drain.is_set():
                drain.wait_for_programs()
    except KeyboardInterrupt:
        log.finish("cancelled", **_stopped_by(drain))
        raise
    except TuneError as exc:
        if isinstance(exc.__context__, RunLogError):  # the run log could not be written
            with contextlib.suppress(RunLogError):  # say so in sweep.json, where it still can be
                log.finish("cancelled")
            raise exc.__context__ from None
        raise
    unfinished = grid.num_terminated + grid.num_errors < len(grid)
    state = "cancelled" if drain.is_set() or unfinished else "finished"
    log.finish(state, target_reached=stopper is not None and stopper.reached, **_stopped_by(drain))
    return state


def _stopped_by(drain: Drain) -> dict[str, Any]:
    """sweep.json's ``stopped_by``: the signal that stopped the sweep, if one did."""
    import signal

    return {"stopped_by": signal.Signals(drain.signum).name} if drain.signum else {}


def _in_flight(log: RunLog) -> Callable[[], str]:
    """Says which runs a drain waits for, e.g. ``2 runs in flight (a-1, b-2)``."""

    def describe() -> str:
        names = [record["name"] for record in log.running_runs()]
        return f"{len(names)} run(s) in flight ({', '.join(names)})" if names else "no run in flight"

    return describe


@cluster.restored_environment()  # Ray's settings for this sweep, not for the caller's next Tuner
def run(
    sweep: str | os.PathLike[str] | Mapping[str, Any] | SweepSpec | None,
    train_fn: TrainFn | None = None,
    *,
    count: int | None = None,
    address: str | None = None,
    out: str | os.PathLike[str] | None = None,
    resources: Resources | None = None,
    seed: int | None = None,
    resume: str | os.PathLike[str] | None = None,
    attach: str | os.PathLike[str] | None = None,
    trainable: Callable[[dict[str, Any]], None] | None = None,
    **options: Any,
) -> SweepResult:
    """Run a W&B sweep config on Ray Tune and return its results.

    Args:
        sweep: a sweep YAML path, YAML text, a dict, or a loaded `SweepSpec`.
        train_fn: ``train(config)`` reporting with `raysweep.log`; without it the
            sweep's own ``program``/``command`` runs, as ``wandb agent`` would.
        count: at most this many runs, like ``wandb agent --count``.
        address: a Ray cluster to join (``auto``, ``ray://host:10001``); default local.
        out: where run logs go (default ``./raysweep-runs``).
        resources: CPUs/GPUs per trial and a concurrency cap.
        seed: makes the searcher's suggestions reproducible.
        resume: the run-log directory of an interrupted sweep to complete.
        attach: the run-log directory of an existing sweep to add runs to (agents).
        trainable: a ready Ray trainable, instead of `train_fn` or the program.
        **options: the other `Settings` fields (verbose, progress, max_failures,
            run_timeout, kill_grace, storage: where Ray keeps its experiment state,
            a path or ``s3://``/``gs://`` URI, default the run log; function: a
            `FunctionTarget` to run when `train_fn` is not given, whose name
            sweep.json keeps for ``resume=``).

    Returns:
        A `SweepResult` with the run log path and one DataFrame row per run.

    >>> result = raysweep.run("configs/quadratic.yaml", train, count=20)  # doctest: +SKIP
    """
    settings = Settings(count=count, resources=resources or Resources(), seed=seed, **options)
    log: RunLog | None = None
    if resume is not None:  # the stopped driver's count, seed and resources, before they are checked
        log = RunLog.open(Path(resume))
        settings = as_launched(settings, log.sweep_info(), len(log.finished_runs()),
                               resources_given=resources is not None,
                               function_given=train_fn is not None or trainable is not None)
    if train_fn is None and trainable is None and settings.function is not None:
        train_fn = settings.function.load()
    info = cluster.connect(address)
    if settings.progress:
        progress.announce(f"{info.describe()}; {settings.resources.describe(info)}")
    cluster.check_fits(info, settings.resources.cpus_per_trial, settings.resources.gpus_per_trial)
    cluster.allow_pending(settings.resources.slots(info))
    if settings.reuse_actors is None:
        # Ray may hand a new trial to a cached actor whose node just died and then not retry it.
        settings = replace(settings, reuse_actors=info.nodes == 1 and not info.node_types)
    if log is not None:
        spec = load_spec(log.path / "sweep.yaml")
        log.update_sweep(state="running", finished_at=None)
    elif attach is not None:
        log = RunLog.open(Path(attach))
        spec = load_spec(log.path / "sweep.yaml")
    else:
        if sweep is None:
            raise TypeError("raysweep.run needs a sweep (a YAML path, a dict or a SweepSpec), or resume=/attach=")
        spec = sweep if isinstance(sweep, SweepSpec) else load_spec(sweep)
        log = RunLog.create(Path(out or DEFAULT_OUT).resolve(), spec, new_sweep_id())
    programs = trainable is None and train_fn is None
    with echo.streamed_output(log) if settings.verbose and programs else contextlib.nullcontext() as sink, \
            watchdog(settings.kill_grace) if programs else contextlib.nullcontext() as mark:
        trainable = errors_are_final(trainable or _make_trainable(spec, log, train_fn, settings, sink, mark))
        drain = Drain(mark, settings.kill_grace, _in_flight(log))
        return _sweep(spec, log, trainable, settings, programs, drain)


def _sweep(spec: SweepSpec, log: RunLog, trainable: Callable[[dict[str, Any]], None],
           settings: Settings, programs: bool = False, drain: Drain | None = None) -> SweepResult:
    """Run the sweep's next runs: those a dead driver left, then new ones, up to the budget.

    The run log is the record every driver of the sweep (a resume, agents
    one after another or at the same time) starts from and shares
    (`raysweep.runlog.lease`): ended runs are never run again (a grid skips
    their points) and teach the searcher and Hyperband's rungs; runs of a
    driver whose heartbeat stopped start again under their own ids, once;
    ``sweep.json`` keeps what `--resume` needs to complete this driver's share.
    """
    metric = spec.metric
    ledger = Ledger.join(log.path, log.sweep_id, run_cap=spec.run_cap,
                         metric=metric.name if metric else None, mode=metric.mode if metric else None,
                         existing=log.started_ids())
    log.shared = ledger
    try:
        return _shared_sweep(spec, log, ledger, trainable, settings, programs,
                             drain or Drain(None, settings.kill_grace))
    finally:
        log.shared = None
        ledger.leave()


def _shared_sweep(spec: SweepSpec, log: RunLog, ledger: Ledger, trainable: Callable[[dict[str, Any]], None],
                  settings: Settings, programs: bool, drain: Drain) -> SweepResult:
    """`_sweep` once this driver is a member of the sweep: plan under the lock, then run."""
    with ledger.locked():
        ended = log.finished_runs()
        orphans = ledger.orphans(log.cut_off_runs())
        existing = ledger.run_count()
        budget = run_budget(spec, settings.count, already_done=existing - len(orphans))
        resumed = dict(itertools.islice(orphans.items(), budget))
        for trial_id, config in resumed.items():
            ledger.adopt(trial_id, config)
        searcher = search.make_searcher(
            spec, seed=searcher_seed(settings.seed, existing, ledger.ordinal),
            max_runs=None if budget is None else budget - len(resumed),
            exclude=[r["config"] for r in ended] + list(orphans.values()) + ledger.configs,
            resumed=resumed)
        searcher.shared = ledger
    log.update_sweep(planned_runs=None if budget is None else len(ended) + budget, seed=settings.seed,
                     resources=asdict(settings.resources), function=function_record(settings.function, programs))
    if budget == 0:
        log.finish("finished")
        return SweepResult(log.path, spec, "finished", load(log.path))
    log.reserve_space()  # so that a full disk still lets sweep.json say how the sweep ended
    experiment = experiment_location(log.path, settings.storage)
    stopper = stopping.make_stopper(spec)  # asked after the sweep whether it ended the sweep
    with progress.display(spec, log, budget) if settings.progress else contextlib.nullcontext() as shown:
        tuner = _tuner(spec, log, trainable, settings, budget, searcher, experiment, stopper, shown, programs)
        state = _fit(tuner, log, stopper, drain)
    return SweepResult(log.path, spec, state, load(log.path), drain.exit_code if drain.is_set() else 0)


def as_launched(settings: Settings, launched: Mapping[str, Any], ended: int, *,
                resources_given: bool, function_given: bool = False) -> Settings:
    """`settings` for completing a sweep: its planned run count, seed, resources and function, unless given.

    A resumed driver runs what the stopped one had left: its planned total
    less the runs that have ended (the cut-off runs it restarts count in it),
    with the function it ran, by the name sweep.json recorded
    (`raysweep.driver.settings.launched_function`).
    """
    planned = launched.get("planned_runs")
    count = settings.count if settings.count is not None or planned is None else max(0, planned - ended)
    seed = settings.seed if settings.seed is not None else launched.get("seed")
    resources = settings.resources
    if not resources_given and launched.get("resources"):
        resources = Resources(**launched["resources"])
    function = settings.function
    if function is None and not function_given:
        function = launched_function(launched)
    return replace(settings, count=count, seed=seed, resources=resources, function=function)


def searcher_seed(seed: int | None, runs_so_far: int, ordinal: int = 0) -> int | None:
    """The seed of a driver's searcher: `seed` for a new sweep, derived from it for a later driver.

    A resumed sweep or a second agent with the same seed would otherwise
    propose the very configs its runs already have; `ordinal` (the drivers
    already live when this one joined) tells apart agents started at once.
    """
    if seed is None or runs_so_far == ordinal == 0:
        return seed
    entropy = [seed, runs_so_far] + ([ordinal] if ordinal else [])
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])
