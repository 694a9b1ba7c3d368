"""Search quality: raysweep's random and bayes against W&B's engine and Optuna's samplers.

Five problems: Branin (2-d), Hartmann-6 (6-d), a mixed categorical/int/
log-scale function with a known minimum, an SVM on scikit-learn's digits
(kernel, degree, log C, log gamma; 3-fold cross-validated error) and a nested
space whose momentum only matters for one optimizer. Each is searched
``--seeds`` times for ``--runs`` runs by:

- ``raysweep random`` / ``raysweep bayes``: `raysweep.search.searchers.make_searcher`
  driven in process (suggest → evaluate → on_trial_complete), no Ray runtime;
  ``raysweep bayes ×4`` keeps 4 runs in flight (the oldest ends first);
- ``optuna TPE`` / ``optuna GP``: Optuna's `TPESampler` / `GPSampler` with their
  defaults, through ask/tell, on the same space in Optuna's own terms;
- ``wandb random`` / ``wandb bayes``: ``sweeps==0.3.0`` (W&B's engine) driven
  in its own venv (``RAYSWEEP_REF_PYTHON``) by this same file run with
  ``--reference-worker``: ``sweeps.next_run`` given ``SweepRun`` objects that
  hold every finished run's result, as W&B's server gives them.

Reported: the median (over seeds) best-so-far regret after each run count,
as a table and a plot, Mann-Whitney tests of raysweep bayes against the best
Optuna sampler, against random and against itself with 4 runs in flight, and
the time raysweep bayes takes per proposal as the sweep grows.  This file's
top level is stdlib only, so the reference venv can import its objectives.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

METHODS = ("raysweep random", "raysweep bayes", "raysweep bayes ×4", "optuna TPE", "optuna GP",
           "wandb random", "wandb bayes")
IN_FLIGHT = 4
CHUNK = 5  # seeds per job of a worker process
HARTMANN_A = [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
              [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
HARTMANN_P = [[0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
              [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
              [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
              [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381]]
HARTMANN_ALPHA = [1.0, 1.2, 3.0, 3.2]
MIXED_LR = {"sgd": -1.0, "adam": -3.0, "rmsprop": -2.5}  # log10 of each optimizer's best lr
MIXED_OFFSET = {"sgd": 0.2, "adam": 0.0, "rmsprop": 0.1}
NESTED_ACTIVATION = {"relu": 0.02, "gelu": 0.0, "tanh": 0.1}
DIGITS_ROWS = 600  # the digits the SVM is cross-validated on: ~0.05 s per run


def branin(c: dict[str, Any]) -> float:
    x1, x2 = float(c["x1"]), float(c["x2"])
    b, cc, t = 5.1 / (4 * math.pi ** 2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1 ** 2 + cc * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


def hartmann6(c: dict[str, Any]) -> float:
    x = [float(c[f"x{i}"]) for i in range(1, 7)]
    return -sum(alpha * math.exp(-sum(a * (xj - p) ** 2 for a, xj, p in zip(row, x, prow)))
                for alpha, row, prow in zip(HARTMANN_ALPHA, HARTMANN_A, HARTMANN_P))


def mixed(c: dict[str, Any]) -> float:
    """An optimizer choice whose best learning rate depends on it, plus int and discrete knobs; minimum 0."""
    opt = c["optimizer"]
    return (MIXED_OFFSET[opt] + 0.5 * (math.log10(float(c["lr"])) - MIXED_LR[opt]) ** 2
            + 0.1 * (int(c["layers"]) - 3) ** 2 + 2 * (float(c["dropout"]) - 0.1) ** 2
            + 0.05 * (math.log2(int(c["batch_size"])) - 5) ** 2)


def nested(c: dict[str, Any]) -> float:
    """Nested `optimizer`/`model` parameters; momentum only counts for sgd, as in real code. Minimum 0."""
    opt, model = c["optimizer"], c["model"]
    lr = math.log10(float(opt["lr"]))
    if opt["name"] == "sgd":
        loss = 0.5 * (lr + 1.5) ** 2 + 2 * (float(opt["momentum"]) - 0.9) ** 2
    else:
        loss = 0.05 + 0.5 * (lr + 3.3) ** 2
    return (loss + 0.05 * (math.log2(int(model["width"])) - 7) ** 2 + NESTED_ACTIVATION[model["activation"]]
            + 2 * (float(model["dropout"]) - 0.1) ** 2)


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[Any, Any, Any]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import StratifiedKFold

    x, y = load_digits(return_X_y=True)
    return x[:DIGITS_ROWS] / 16.0, y[:DIGITS_ROWS], StratifiedKFold(3, shuffle=True, random_state=0)


def svm_digits(c: dict[str, Any]) -> float:
    """3-fold cross-validated error of an SVM on 600 digits: a small real sweep."""
    from sklearn.model_selection import cross_val_score
    from sklearn.svm import SVC

    x, y, folds = _digits()
    model = SVC(kernel=c["kernel"], C=float(c["C"]), gamma=float(c["gamma"]), degree=int(c["degree"]))
    return 1.0 - float(cross_val_score(model, x, y, cv=folds).mean())


def _uniforms(names: list[str], low: float, high: float) -> dict[str, Any]:
    return {name: {"distribution": "uniform", "min": low, "max": high} for name in names}


#: name -> (objective, known minimum (None: the best any search found), sweep parameters)
PROBLEMS: dict[str, tuple[Callable[[dict[str, Any]], float], float | None, dict[str, Any]]] = {
    "branin": (branin, 0.397887357729739,
               {"x1": {"distribution": "uniform", "min": -5.0, "max": 10.0},
                "x2": {"distribution": "uniform", "min": 0.0, "max": 15.0}}),
    "hartmann6": (hartmann6, -3.32236801141551, _uniforms([f"x{i}" for i in range(1, 7)], 0.0, 1.0)),
    "mixed": (mixed, 0.0,
              {"optimizer": {"values": ["sgd", "adam", "rmsprop"]},
               "lr": {"distribution": "log_uniform_values", "min": 1.0e-5, "max": 1.0},
               "layers": {"distribution": "int_uniform", "min": 1, "max": 5},
               "dropout": {"distribution": "uniform", "min": 0.0, "max": 0.5},
               "batch_size": {"values": [8, 16, 32, 64, 128, 256]}}),
    "svm_digits": (svm_digits, None,
                   {"kernel": {"values": ["rbf", "poly", "sigmoid"]},
                    "degree": {"distribution": "int_uniform", "min": 2, "max": 5},
                    "C": {"distribution": "log_uniform_values", "min": 1.0e-2, "max": 1.0e3},
                    "gamma": {"distribution": "log_uniform_values", "min": 1.0e-5, "max": 1.0}}),
    "nested": (nested, 0.0,
               {"optimizer": {"parameters": {
                   "name": {"values": ["sgd", "adam"]},
                   "lr": {"distribution": "log_uniform_values", "min": 1.0e-5, "max": 1.0},
                   "momentum": {"distribution": "uniform", "min": 0.0, "max": 0.99}}},
                "model": {"parameters": {
                    "width": {"distribution": "int_uniform", "min": 16, "max": 512},
                    "activation": {"values": ["relu", "gelu", "tanh"]},
                    "dropout": {"distribution": "q_uniform", "min": 0.0, "max": 0.5, "q": 0.05}}}}),
}


def sweep_config(problem: str, method: str) -> dict[str, Any]:
    return {"method": method, "metric": {"name": "loss", "goal": "minimize"},
            "parameters": PROBLEMS[problem][2]}


def raysweep_trace(problem: str, method: str, seed: int, runs: int, in_flight: int = 1) -> list[float]:
    """The objective value of each run in the order runs end, raysweep's searcher driven without Ray.

    With `in_flight` > 1 that many runs are proposed before the oldest ends.
    """
    from collections import deque

    from raysweep.search.searchers import make_searcher
    from raysweep.spec.load import load_spec

    objective = PROBLEMS[problem][0]
    searcher = make_searcher(load_spec(sweep_config(problem, method)), seed=seed, max_runs=runs)
    running: deque[tuple[str, dict[str, Any]]] = deque()
    values: list[float] = []
    while len(values) < runs:
        while len(running) < in_flight and len(values) + len(running) < runs:
            trial_id = f"trial_{len(values) + len(running)}"
            running.append((trial_id, searcher.suggest(trial_id)))
        trial_id, config = running.popleft()
        values.append(objective(config))
        searcher.on_trial_complete(trial_id, result={"loss": values[-1]})
    return values


def _optuna_distribution(spec: dict[str, Any]) -> Any:
    """The bench spaces' kinds in Optuna's own terms, as an Optuna user would write them."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    kind = spec.get("distribution")
    if "values" in spec:
        return CategoricalDistribution(spec["values"])
    if kind == "int_uniform":
        return IntDistribution(spec["min"], spec["max"])
    if kind == "q_uniform":
        return FloatDistribution(spec["min"], spec["max"], step=spec["q"])
    return FloatDistribution(spec["min"], spec["max"], log=kind == "log_uniform_values")


def _flat_space(parameters: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    space: dict[str, Any] = {}
    for name, spec in parameters.items():
        if "parameters" in spec:
            space.update(_flat_space(spec["parameters"], f"{prefix}{name}/"))
        else:
            space[prefix + name] = _optuna_distribution(spec)
    return space


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for label, value in flat.items():
        *parents, leaf = label.split("/")
        node = config
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return config


def optuna_trace(problem: str, sampler_name: str, seed: int, runs: int) -> list[float]:
    """Optuna's sampler with its defaults, through ask/tell."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = (optuna.samplers.GPSampler if sampler_name == "GP" else optuna.samplers.TPESampler)(seed=seed)
    study = optuna.create_study(sampler=sampler)
    space = _flat_space(PROBLEMS[problem][2])
    values = []
    for _ in range(runs):
        trial = study.ask(space)
        values.append(PROBLEMS[problem][0](_nest(trial.params)))
        study.tell(trial, values[-1])
    return values


def trace(problem: str, method: str, seed: int, runs: int) -> list[float]:
    """One search of `problem` by a method of `METHODS` other than W&B's."""
    engine, kind = method.split()[:2]
    if engine == "optuna":
        return optuna_trace(problem, kind, seed, runs)
    return raysweep_trace(problem, kind, seed, runs, IN_FLIGHT if method.endswith(f"×{IN_FLIGHT}") else 1)


def wandb_trace(problem: str, method: str, seed: int, runs: int) -> list[float]:
    """The same with W&B's engine (in the reference venv): every finished run goes back to it."""
    import random

    import numpy as np
    from sweeps import RunState, SweepRun, next_run

    random.seed(seed)
    np.random.seed(seed)
    objective, config = PROBLEMS[problem][0], sweep_config(problem, method)
    history: list[SweepRun] = []
    for i in range(runs):
        suggestion = next_run(config, history)
        value = objective({k: v["value"] for k, v in suggestion.config.items()})
        history.append(SweepRun(name=f"run_{i}", state=RunState.finished, config=suggestion.config,
                                history=[{"loss": value}], summary_metrics={"loss": value}))
    return [float(run.summary_metrics["loss"]) for run in history]


def reference_worker(jobs: list[dict[str, Any]]) -> None:
    """``--reference-worker JOBS``: run the jobs with W&B's engine, print their traces as JSON."""
    import warnings

    warnings.simplefilter("ignore")
    _common.emit([wandb_trace(job["problem"], job["method"], job["seed"], job["runs"]) for job in jobs])


def reference_traces(problem: str, method: str, seeds: list[int], runs: int) -> list[list[float]]:
    """W&B's traces of one problem and method for `seeds`, from one reference-venv process."""
    jobs = [{"problem": problem, "method": method.split()[1], "seed": seed, "runs": runs} for seed in seeds]
    traces, _ = _common.run_json([_common.reference_python(), __file__, "--reference-worker", json.dumps(jobs)],
                                 env={"PYTHONWARNINGS": "ignore", "WANDB_MODE": "disabled"})
    return traces


def _seed_traces(problem: str, method: str, seeds: list[int], runs: int) -> list[list[float]]:
    if method.startswith("wandb"):
        return reference_traces(problem, method, seeds, runs)
    return [trace(problem, method, seed, runs) for seed in seeds]


Traces = dict[str, dict[str, dict[str, list[float]]]]  # problem -> method -> seed (str) -> trace


def all_traces(seeds: int, runs: int, problems: list[str], saved: Path) -> Traces:
    """Traces of every method on every problem, from two worker processes (one per core).

    A worker either searches itself or waits on one reference-venv process,
    so no more than two searches run at once. Jobs of `CHUNK` seeds go out
    seed-major (every problem and method for seeds 0-4, then 5-9, ...) and
    each one's traces are added to `saved` as it ends: a run cut short leaves
    whole seeds of every problem, and a later run with the same `saved` file
    searches only what is missing. The workers are spawned, not forked: a fork
    while a reference process is being started would inherit its pipe and keep
    its output from ending.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    traces: Traces = json.loads(saved.read_text()) if saved.exists() else {}
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {}
        for start in range(0, seeds, CHUNK):
            for problem in problems:
                for method in METHODS:
                    done = traces.get(problem, {}).get(method, {})
                    chunk = [seed for seed in range(start, min(start + CHUNK, seeds)) if str(seed) not in done]
                    if chunk:
                        futures[pool.submit(_seed_traces, problem, method, chunk, runs)] = (problem, method, chunk)
        for future in as_completed(futures):
            problem, method, chunk = futures[future]
            traces.setdefault(problem, {}).setdefault(method, {}).update(zip(map(str, chunk), future.result(), strict=True))
            saved.write_text(json.dumps(traces))
            print(f"{problem} {method} seeds {chunk[0]}-{chunk[-1]}: done at "
                  f"{time.monotonic() - _common.STARTED:.0f} s, load {_common.load()}", flush=True)
    return traces


def complete_seeds(traces: Traces, problems: list[str], runs: int) -> dict[str, dict[str, list[list[float]]]]:
    """The traces of the seeds every problem and method has, in seed order."""
    have = [set(traces.get(problem, {}).get(method, {})) for problem in problems for method in METHODS]
    seeds = sorted(set.intersection(*have), key=int)
    return {problem: {method: [traces[problem][method][seed][:runs] for seed in seeds] for method in METHODS}
            for problem in problems}


def regret_curves(traces: dict[str, dict[str, list[list[float]]]]) -> dict[str, dict[str, list[list[float]]]]:
    """Best-so-far regret after each run, per problem, method and seed.

    Where the minimum is unknown (the SVM) regret counts from the best value
    any method found on any seed in this run.
    """
    curves: dict[str, dict[str, list[list[float]]]] = {}
    for problem, by_method in traces.items():
        optimum = PROBLEMS[problem][1]
        if optimum is None:
            optimum = min(min(trace) for seed_traces in by_method.values() for trace in seed_traces)
        curves[problem] = {method: [[min(trace[:n + 1]) - optimum for n in range(len(trace))]
                                    for trace in seed_traces] for method, seed_traces in by_method.items()}
    return curves


def _quantile(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.quantile(values, q))


def regret_table(curves: dict[str, dict[str, list[list[float]]]], runs: int) -> str:
    checkpoints = [n for n in (5, 10, 20, 30, 50, runs) if n <= runs]
    checkpoints = sorted(set(checkpoints))
    rows = []
    for problem, by_method in curves.items():
        for method, seeds in by_method.items():
            at = [[seed[n - 1] for seed in seeds] for n in checkpoints]
            rows.append([problem, method, *(f"{_quantile(v, 0.5):.4g}" for v in at),
                         f"{_quantile(at[-1], 0.25):.3g}–{_quantile(at[-1], 0.75):.3g}"])
    return _common.table(["function", "method", *(f"after {n}" for n in checkpoints),
                          f"IQR after {runs}"], rows)


def _compare(mine: list[float], theirs: list[float]) -> tuple[float, float, float]:
    """Medians of both and the two-sided Mann-Whitney p (1.0 when every value ties)."""
    from scipy.stats import mannwhitneyu

    if len(set(mine) | set(theirs)) == 1:
        return _quantile(mine, 0.5), _quantile(theirs, 0.5), 1.0
    return _quantile(mine, 0.5), _quantile(theirs, 0.5), float(mannwhitneyu(mine, theirs).pvalue)


def verdicts(curves: dict[str, dict[str, list[list[float]]]]) -> list[str]:
    """raysweep bayes after the last run against the best Optuna sampler, random and ×4; p two-sided."""
    lines = []
    for problem, by_method in curves.items():
        final = {method: [seed[-1] for seed in seeds] for method, seeds in by_method.items()}
        best_optuna = min(("optuna TPE", "optuna GP"), key=lambda method: _quantile(final[method], 0.5))
        mine, optuna_, p = _compare(final["raysweep bayes"], final[best_optuna])
        _, wandb_, p_wandb = _compare(final["raysweep bayes"], final["wandb bayes"])
        _, random_, _ = _compare(final["raysweep bayes"], final["raysweep random"])
        _, parallel, p_parallel = _compare(final["raysweep bayes"], final[f"raysweep bayes ×{IN_FLIGHT}"])
        met = mine <= optuna_ or p > 0.05
        lines.append(
            f"- {problem}: raysweep bayes {mine:.3g} vs {best_optuna} {optuna_:.3g} (p = {p:.2g}) — target "
            f"(≤ best Optuna or p > 0.05): **{'met' if met else 'missed'}**; vs W&B bayes {wandb_:.3g} "
            f"(p = {p_wandb:.2g}); vs random {random_:.3g} (ratio {mine / random_ if random_ else 0:.2g}); "
            f"{IN_FLIGHT} in flight {parallel:.3g} (p = {p_parallel:.2g})")
    return lines


def timing(sizes: list[int]) -> str:
    """Seconds per raysweep bayes proposal with `sizes` ended runs fed first, on the mixed space.

    Each size starts a new searcher, feeds it that many random runs with
    `add_evaluated` (the first proposal then fits its GP from scratch, the
    slowest case), then times 5 proposals, 1 to 4 runs in flight for the last
    four, as a sweep on a cluster makes them. CPU seconds of this one-threaded process are given
    beside wall seconds: on a shared machine they are what one free core
    would take.
    """
    import numpy as np

    from raysweep.search.searchers import make_searcher
    from raysweep.spec.load import load_spec

    spec = load_spec(sweep_config("mixed", "bayes"))
    rows = []
    for size in sizes:
        searcher = make_searcher(spec, seed=0, max_runs=None)
        random = make_searcher(load_spec(sweep_config("mixed", "random")), seed=1, max_runs=None)
        for i in range(size):
            config = random.suggest(f"r{i}")
            searcher.searcher.add_evaluated(config, mixed(config))
        engine = searcher.searcher.engine()
        cpu, wall = [], []
        for i in range(5):  # each with the ones before it still in flight, so the ended runs stay `size`
            start, start_cpu = time.perf_counter(), time.process_time()
            searcher.suggest(f"t{i}")
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        rows.append([size, engine, f"{cpu[0]:.2f}", f"{np.median(cpu[1:]):.2f}", f"{max(cpu):.2f}",
                     f"{np.median(wall[1:]):.2f}", f"{_common.load()[0]:.1f}"])
        print(f"timing {size}: {rows[-1]}", flush=True)
    return _common.table(["ended runs", "engine", "first proposal, CPU s (GP fit from scratch)",
                          "median CPU s, 1-4 runs in flight", "max CPU s", "median wall s", "load"], rows)


def plot(curves: dict[str, dict[str, list[list[float]]]], path: Path) -> None:
    """One panel per function: median best-so-far regret (log scale) with the interquartile band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 4.2), constrained_layout=True)
    for ax, (problem, by_method) in zip(axes, curves.items()):
        for method, seeds in by_method.items():
            data = np.maximum(np.array(seeds), 1e-6)
            runs = np.arange(1, data.shape[1] + 1)
            style = "-" if method.startswith("raysweep") else ":" if method.startswith("optuna") else "--"
            line, = ax.plot(runs, np.median(data, axis=0), style, label=method)
            ax.fill_between(runs, *np.quantile(data, [0.25, 0.75], axis=0), color=line.get_color(), alpha=0.12)
        ax.set(title=f"{problem} ({len(seeds)} seeds)", xlabel="runs", ylabel="best-so-far regret", yscale="log")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=len(METHODS))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _shown(path: Path) -> str:
    """`path` relative to the repository when inside it."""
    return str(path.relative_to(_common.REPO)) if path.is_relative_to(_common.REPO) else str(path)


def main() -> None:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--reference-worker", metavar="JOBS", help=argparse.SUPPRESS)
    p.add_argument("--seeds", type=int, help="seeds per function and method (default 20; --quick 2)")
    p.add_argument("--runs", type=int, help="runs per search (default 50; --quick 5)")
    p.add_argument("--problems", help=f"comma-separated subset of {','.join(PROBLEMS)} (default: all)")
    p.add_argument("--timing-sizes", help="ended runs at which to time proposals (default 50,200,500,1000; "
                                          "--quick 20; '' for none)")
    p.add_argument("--traces", type=Path, help="raw traces kept between runs: what it holds is not searched "
                                               "again (default <out>/traces.json)")
    p.add_argument("--timing-only", action="store_true", help="only time proposals, into <out>/timing.md")
    p.add_argument("--render-only", action="store_true", help="search nothing: tables and plot from --traces, "
                                                             "over the seeds every problem and method has")
    p.add_argument("--plot", type=Path, help="PNG path (default docs/search_quality.png; --quick: <out>)")
    args = p.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # one thread per worker: two workers share two cores
    if args.reference_worker:
        reference_worker(json.loads(args.reference_worker))
        return
    out, results_path = _common.prepare(args, "search_quality")
    seeds, runs = args.seeds or (2 if args.quick else 20), args.runs or (5 if args.quick else 50)
    problems = args.problems.split(",") if args.problems else list(PROBLEMS)
    saved = args.traces or out / "traces.json"
    default_sizes = "20" if args.quick else "50,200,500,1000"
    sizes = [int(n) for n in (default_sizes if args.timing_sizes is None else args.timing_sizes).split(",") if n]
    timing_path = out / "timing.md"
    if sizes and not timing_path.exists():
        timing_path.write_text(timing(sizes))
    if args.timing_only:
        return
    if not args.render_only:
        all_traces(seeds, runs, problems, saved)
    traces = complete_seeds(json.loads(saved.read_text()), problems, runs)
    seeds = len(traces[problems[0]]["raysweep bayes"])
    curves = regret_curves(traces)
    (out / "search_quality.json").write_text(json.dumps(curves))
    png = args.plot or (out / "search_quality.png" if args.quick else _common.REPO / "docs" / "search_quality.png")
    plot(curves, png)
    reference, _ = _common.run_json([_common.reference_python(), "-c", "import importlib.metadata as m, json; "
                                     "print(json.dumps({k: m.version(k) for k in ('sweeps', 'numpy')}))"])
    _common.write_section(results_path, "search_quality", "\n".join([
        _common.header("Search quality" + (" (quick smoke run — not a result)" if args.quick else ""),
                       {f"reference {k}": v for k, v in reference.items()},
                       packages=("raysweep", "numpy", "scikit-learn", "optuna", "torch")),
        f"Median best-so-far regret (value − known minimum; for `svm_digits`, − the lowest error any search "
        f"found) over {seeds} seeds, {runs} runs each, by the number of ended runs. raysweep: `make_searcher` "
        f"driven in process, one run at a time or (`×{IN_FLIGHT}`) {IN_FLIGHT} in flight; Optuna: "
        "`TPESampler` / `GPSampler` defaults through ask/tell on the same space in Optuna's terms "
        "(log floats, ints, categoricals, a stepped float); W&B: `sweeps.next_run` in the reference venv. "
        f"p: two-sided Mann-Whitney over the seeds' regret after {runs} runs. Plot: `{_shown(png)}`.", "",
        regret_table(curves, runs), "", *verdicts(curves), "",
        *(["Seconds per raysweep bayes proposal as the sweep grows (mixed space; one process, "
           f"`OMP_NUM_THREADS=1`; kept in `{_shown(timing_path)}`, measured once per `--out`):", "",
           timing_path.read_text()] if timing_path.exists() else [])]))


if __name__ == "__main__":
    main()
