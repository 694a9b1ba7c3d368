"""Many agents, one memory: bayes as 2 agents x 25 runs vs 1 driver x 50 vs 2 x 25 that do not share.

On Branin and Hartmann-6 (`search_quality.py`'s objectives, GP search), each
of ``--seeds`` seeds runs three ways, all in process (no Ray, no processes):

- *one driver* (1 x 50): one driver's searcher, one run at a time (`make_searcher`,
  suggest -> evaluate -> on_trial_complete);
- *two agents, shared* (2 x 25): two agents started at once, each with its own searcher
  (seeded as `raysweep.driver.runner.searcher_seed` seeds agents started
  together), each with one run in flight: before each proposal an agent
  learns (`SweepSearcher.learn`) the other's runs that ended since and is
  told the one it has in flight (`SweepSearcher.running_elsewhere`), which is
  what `raysweep.runlog.lease.Ledger` hands a real agent;
- *two agents, apart* (2 x 25): the same two agents, never told of each other's runs
  (raysweep before agents shared a memory).

Reported: median best-so-far regret over the sweep's runs (both agents'
together) after 10, 20, 30 and 50 runs, and Mann-Whitney tests of the final
regrets: shared against one driver (the target: within noise) and against apart.

Also measured: what sharing costs a run's bookkeeping on the driver.  The run
log's calls for one run (start, 10 history rows, end) with and without a
`Ledger` (a claim under the lock, the lock again at the run's end), and with
Hyperband's rungs shared too (per row, the read of rungs.jsonl's new tail a
scheduler makes before each decision; 3 rung values published, as with W&B's
rungs 1, 3, 9), interleaved in one process, on a local disk.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
import search_quality  # noqa: E402

PROBLEMS = ("branin", "hartmann6")
VARIANTS = ("one driver", "two agents, shared", "two agents, apart")


def _searcher(problem: str, seed: int, runs: int, ordinal: int) -> Any:
    from raysweep.driver.runner import searcher_seed
    from raysweep.search.searchers import make_searcher
    from raysweep.spec.load import load_spec

    spec = load_spec(search_quality.sweep_config(problem, "bayes"))
    return make_searcher(spec, seed=searcher_seed(seed, 0, ordinal), max_runs=runs)


def one_driver(problem: str, seed: int, runs: int) -> list[float]:
    """Objective values in the order the runs ended: one searcher, one run at a time."""
    return search_quality.raysweep_trace(problem, "bayes", seed, runs)


def two_agents(problem: str, seed: int, runs: int, shared: bool) -> list[float]:
    """Objective values of two agents' runs in the order they ended; each agent has one run in flight.

    Round by round, agent A proposes, then agent B, then both runs end.  A
    sharing agent B is told A's new run is in flight, as
    `raysweep.runlog.lease.Ledger.running_elsewhere` tells a real agent.
    """
    objective = search_quality.PROBLEMS[problem][0]
    agents = [_searcher(problem, seed, runs // 2, ordinal) for ordinal in (0, 1)]
    ended: list[tuple[int, dict[str, Any], float]] = []  # (agent, config, value)
    seen = [0, 0]
    values = []
    for round_ in range(runs // 2):
        proposed = []
        for index, agent in enumerate(agents):
            if shared:
                agent.learn([(config, value) for who, config, value in ended[seen[index]:] if who != index])
                seen[index] = len(ended)
                agent.running_elsewhere({f"{who}_{round_}": config for who, (config, _) in enumerate(proposed)})
            config = agent.suggest(f"{index}_{round_}")
            proposed.append((config, objective(config)))
        for index, (config, value) in enumerate(proposed):
            agents[index].on_trial_complete(f"{index}_{round_}", result={"loss": value})
            ended.append((index, config, value))
            values.append(value)
    return values


def trace(problem: str, variant: str, seed: int, runs: int) -> list[float]:
    if variant == VARIANTS[0]:
        return one_driver(problem, seed, runs)
    return two_agents(problem, seed, runs, shared=variant == VARIANTS[1])


def all_traces(seeds: int, runs: int, workers: int = 2) -> dict[str, dict[str, list[list[float]]]]:
    """Every variant on every problem and seed, in spawned worker processes (default one per core)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {(problem, variant): [pool.submit(trace, problem, variant, seed, runs) for seed in range(seeds)]
                   for problem in PROBLEMS for variant in VARIANTS}
        traces: dict[str, dict[str, list[list[float]]]] = {problem: {} for problem in PROBLEMS}
        for (problem, variant), jobs in futures.items():
            traces[problem][variant] = [job.result() for job in jobs]
            print(f"{problem} {variant}: done, load {_common.load()}", flush=True)
    return traces


def verdicts(curves: dict[str, dict[str, list[list[float]]]]) -> list[str]:
    from scipy.stats import mannwhitneyu

    lines = []
    for problem, by_variant in curves.items():
        final = {variant: [seed[-1] for seed in seeds] for variant, seeds in by_variant.items()}
        median = {variant: search_quality._quantile(values, 0.5) for variant, values in final.items()}
        p_one = mannwhitneyu(final[VARIANTS[1]], final[VARIANTS[0]], alternative="two-sided").pvalue
        p_apart = mannwhitneyu(final[VARIANTS[1]], final[VARIANTS[2]], alternative="two-sided").pvalue
        within = p_one >= 0.05 or median[VARIANTS[1]] <= median[VARIANTS[0]]
        lines.append(
            f"- {problem}: two agents sharing, median regret {median[VARIANTS[1]]:.4g}, vs one driver "
            f"{median[VARIANTS[0]]:.4g} (Mann-Whitney two-sided p = {p_one:.2g}) — target (within noise of "
            f"one driver): **{'met' if within else 'missed'}**; vs two agents apart {median[VARIANTS[2]]:.4g} "
            f"(p = {p_apart:.2g})")
    return lines


RUNGS = (1, 3, 9)


def _one_run(log: Any, ledger: Any, index: int, rungs: bool = False) -> float:
    """What a driver writes for one run of 10 steps; with `ledger`, the claim and lock of a shared sweep,
    and with `rungs` what sharing Hyperband's rungs adds (`WandbHyperbandScheduler` with the ledger).
    The seconds spent in the rungs' calls."""
    import time

    from raysweep.names import run_id_for

    trial = f"t{index:06d}"
    if ledger is not None:
        with ledger.locked():
            ledger.evaluated_elsewhere(values=False)
            ledger.running_elsewhere()
            ledger.known(trial)
            ledger.claim(trial, {"x": index})
    run_id = run_id_for(log.sweep_id, trial)
    log.start_run(run_id, log.name_for(run_id), {"x": index}, {"ray_trial_id": trial})
    in_rungs = 0.0
    for step in range(10):
        log.append_history(run_id, {"loss": 1.0 / (step + 1)})
        if rungs:
            start = time.perf_counter()
            ledger.rung_news()
            if step + 1 in RUNGS:
                ledger.publish_rung(run_id, step + 1, 1.0 / (step + 1))
            in_rungs += time.perf_counter() - start
    log.end_run(run_id, "finished")
    return in_rungs


def bookkeeping_cost(out: Path, runs: int, reps: int) -> list[list[Any]]:
    """Milliseconds per run of `_one_run`, alone and shared, interleaved; median over `reps` repetitions."""
    import statistics
    import time

    from raysweep.names import new_sweep_id
    from raysweep.runlog.lease import Ledger
    from raysweep.runlog.log import RunLog
    from raysweep.spec.load import load_spec

    spec = load_spec(search_quality.sweep_config("branin", "random"))
    variants = ("alone", "shared", "rungs")
    per_run: dict[str, list[float]] = {variant: [] for variant in (*variants, "in rungs")}
    for rep in range(reps):
        for variant in variants[rep % 3:] + variants[:rep % 3]:
            log = RunLog.create(out / f"{variant}-{rep}", spec, new_sweep_id())
            ledger = Ledger.join(log.path, log.sweep_id) if variant != "alone" else None
            log.shared = ledger
            start = time.perf_counter()
            in_rungs = sum(_one_run(log, ledger, index, rungs=variant == "rungs") for index in range(runs))
            per_run[variant].append((time.perf_counter() - start) / runs * 1000)
            if variant == "rungs":
                per_run["in rungs"].append(in_rungs / runs * 1000)
            if ledger is not None:
                ledger.leave()
    alone, shared, rungs, in_rungs = (statistics.median(per_run[v]) for v in per_run)
    return [["run log alone", runs, f"{alone:.3f}"], ["run log + lease (shared sweep)", runs, f"{shared:.3f}"],
            ["difference", "", f"{shared - alone:+.3f}"],
            ["run log + lease + shared Hyperband rungs", runs, f"{rungs:.3f}"],
            ["of which the rungs' calls (10 tail reads of rungs.jsonl, 3 rung values appended)", runs,
             f"{in_rungs:.3f}"]]


#: The fixed synthetic Hyperband sweeps: runs of `EPOCHS` epochs, one curve per grid point.
CURVES, EPOCHS, HALF = 16, 9, 8


def synthetic_loss(seed: int, curve: int, epoch: int) -> float:
    """Epoch `epoch` of curve `curve` of sweep `seed`: a noisy decaying loss, NaN at one epoch of some."""
    import math
    import random

    rng = random.Random(seed * 1000 + curve)
    start, rate = rng.uniform(1, 5), rng.uniform(0.1, 0.6)
    noise = [rng.gauss(0, 0.05) for _ in range(EPOCHS)]
    return math.nan if (curve % 7 == 3 and epoch == 2) else start * math.exp(-rate * epoch) + noise[epoch]


def train_synthetic(config: dict[str, Any]) -> None:
    import raysweep

    for epoch in range(EPOCHS):
        raysweep.log({"loss": synthetic_loss(config["seed"], config["curve"], epoch)})


def hyperband_sweep(seed: int) -> dict[str, Any]:
    return {"method": "grid", "metric": {"name": "loss", "goal": "minimize"},
            "parameters": {"curve": {"values": list(range(CURVES))}, "seed": {"value": seed}},
            "early_terminate": {"type": "hyperband", "min_iter": 1, "eta": 3}}


def _stops(result: Any) -> dict[int, Any]:
    """Curve -> the rung its run was stopped at (None: ran to the end)."""
    runs = result.runs
    return {int(curve): (None if rung != rung else int(rung))  # NaN: not stopped
            for curve, rung in zip(runs["config.curve"], runs["stopped_at_rung"], strict=True)}


def hyperband_after_resume(out: Path, seeds: int) -> list[list[Any]]:
    """Real sweeps through `raysweep.run`, one run at a time: unbroken, and stopped half-way then resumed.

    The resumed half is run by a second driver on the same run log (an
    agent, `raysweep.run(attach=...)`), which starts with Hyperband's rungs
    filled from the first half's histories.
    """
    import raysweep
    from raysweep.driver.settings import Resources

    one = Resources(max_concurrent=1)
    rows = []
    for seed in range(seeds):
        spec = hyperband_sweep(seed)
        unbroken = _stops(raysweep.run(spec, train_synthetic, out=out / "unbroken", resources=one, progress=False))
        first = raysweep.run(spec, train_synthetic, out=out / "resumed", resources=one, count=HALF, progress=False)
        rest = raysweep.run(None, train_synthetic, attach=first.path, resources=one, progress=False)
        resumed = _stops(rest)
        rows.append([seed, sum(rung is not None for rung in unbroken.values()),
                     sum(rung is not None for rung in resumed.values()),
                     "yes" if resumed == unbroken else "**no**"])
    return rows


def main() -> None:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, help="seeds per function and variant (default 10; --quick 2)")
    p.add_argument("--runs", type=int, help="runs per sweep, both agents together (default 50; --quick 6)")
    p.add_argument("--workers", type=int, default=2, help="worker processes for the searches (default 2)")
    p.add_argument("--log-runs", type=int, help="runs per bookkeeping measurement (default 200; --quick 20)")
    args = p.parse_args()
    out, results_path = _common.prepare(args, "many_agents")
    seeds, runs = args.seeds or (2 if args.quick else 10), args.runs or (6 if args.quick else 50)
    log_runs, log_reps = args.log_runs or (20 if args.quick else 200), 2 if args.quick else 6
    cost = bookkeeping_cost(out, log_runs, log_reps)
    stops = hyperband_after_resume(out / "hyperband", 2 if args.quick else 10)
    curves = search_quality.regret_curves(all_traces(seeds, runs, args.workers))
    (out / "many_agents.json").write_text(json.dumps(curves))
    table = search_quality.regret_table(curves, runs).replace("| method |", "| variant |")
    _common.write_section(results_path, "many_agents", "\n".join([
        _common.header("Many agents, one memory" + (" (quick smoke run — not a result)" if args.quick else ""),
                       packages=("raysweep", "numpy", "scikit-learn", "optuna")),
        f"Median best-so-far regret over {seeds} seeds of a {runs}-run bayes sweep (GP), run by one "
        f"driver or by two agents of {runs // 2} runs each started at once, each with one run in flight; "
        "*shared*: before each proposal an agent's searcher learns the runs the other ended since and "
        "is told the run the other has in flight (what a real agent reads from the run log), *apart*: never. Searchers are driven in process, like "
        "`search_quality.py`, not as agent processes.", "",
        table, *verdicts(curves), "",
        f"Bookkeeping per run on the driver (ms, median of {log_reps} interleaved repetitions; a run of "
        "10 history rows):", "",
        _common.table(["variant", "runs", "ms per run"], cost), "",
        f"Hyperband after a resume ({len(stops)} fixed synthetic sweeps, `hyperband_after_resume`): a "
        f"{CURVES}-point grid of known {EPOCHS}-epoch curves with `hyperband` (`min_iter: 1, eta: 3`), run "
        f"through `raysweep.run` one run at a time, unbroken and as {HALF} runs then a second driver on the same "
        "run log for the rest; *same stops*: every run stopped at the same rung (or not stopped) in both.", "",
        _common.table(["sweep (seed)", "runs stopped, unbroken", "runs stopped, resumed", "same stops"], stops)]))


if __name__ == "__main__":
    main()
