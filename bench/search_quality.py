"""Search quality: raysweep's random and bayes against W&B's own engine on known functions.

Branin (2-d), Hartmann-6 (6-d) and a mixed categorical/continuous function
with a known minimum, each searched ``--seeds`` times for ``--runs`` runs by:

- ``raysweep random`` / ``raysweep bayes``: `raysweep.search.searchers.make_searcher`
  driven in process (suggest → evaluate → on_trial_complete), no Ray runtime;
- ``wandb random`` / ``wandb bayes``: ``sweeps==0.3.0`` (W&B's engine) driven
  in its own venv (``RAYSWEEP_REF_PYTHON``) by this same file run with
  ``--reference-worker``: ``sweeps.next_run`` given ``SweepRun`` objects that
  hold every finished run's result, as W&B's server gives them.

Reported: the median (over seeds) best-so-far regret after each run count,
as a table and a plot.  This file's top level is stdlib only, so the
reference venv can import its objectives.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

METHODS = ("raysweep random", "raysweep bayes", "wandb random", "wandb bayes")
HARTMANN_A = [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
              [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
HARTMANN_P = [[0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
              [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
              [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
              [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381]]
HARTMANN_ALPHA = [1.0, 1.2, 3.0, 3.2]
MIXED_LR = {"sgd": -1.0, "adam": -3.0, "rmsprop": -2.5}  # log10 of each optimizer's best lr
MIXED_OFFSET = {"sgd": 0.2, "adam": 0.0, "rmsprop": 0.1}


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


def _uniforms(names: list[str], low: float, high: float) -> dict[str, Any]:
    return {name: {"distribution": "uniform", "min": low, "max": high} for name in names}


#: name -> (objective, known minimum, sweep parameters)
PROBLEMS: dict[str, tuple[Callable[[dict[str, Any]], float], float, dict[str, Any]]] = {
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
}


def sweep_config(problem: str, method: str) -> dict[str, Any]:
    return {"method": method, "metric": {"name": "loss", "goal": "minimize"},
            "parameters": PROBLEMS[problem][2]}


def raysweep_trace(problem: str, method: str, seed: int, runs: int) -> list[float]:
    """The objective value of each run, in order, of raysweep's searcher driven without Ray."""
    from raysweep.search.searchers import make_searcher
    from raysweep.spec.load import load_spec

    objective = PROBLEMS[problem][0]
    searcher = make_searcher(load_spec(sweep_config(problem, method)), seed=seed, max_runs=runs)
    values = []
    for i in range(runs):
        config = searcher.suggest(f"trial_{i}")
        values.append(objective(config))
        searcher.on_trial_complete(f"trial_{i}", result={"loss": values[-1]})
    return values


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


def reference_traces(seeds: int, runs: int) -> dict[tuple[str, str], list[list[float]]]:
    """W&B's traces for every problem, method and seed, from one reference-venv process."""
    keys = [(problem, method) for problem in PROBLEMS for method in METHODS if method.startswith("wandb")]
    jobs = [{"problem": problem, "method": method.split()[1], "seed": seed, "runs": runs}
            for problem, method in keys for seed in range(seeds)]
    traces, _ = _common.run_json([_common.reference_python(), __file__, "--reference-worker", json.dumps(jobs)],
                                 env={"PYTHONWARNINGS": "ignore", "WANDB_MODE": "disabled"})
    return {key: traces[i * seeds:(i + 1) * seeds] for i, key in enumerate(keys)}


def all_traces(seeds: int, runs: int) -> dict[str, dict[str, list[list[float]]]]:
    """Traces of every method on every problem.

    raysweep's searches run in two worker processes (one per core), W&B's in
    one reference-venv process beside them: the GP searches take minutes.
    The workers are spawned, not forked: a fork while the reference process
    is being started would inherit its pipe and keep its output from ending.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

    traces: dict[str, dict[str, list[list[float]]]] = {problem: {} for problem in PROBLEMS}
    spawn = multiprocessing.get_context("spawn")
    with ThreadPoolExecutor(max_workers=1) as thread, ProcessPoolExecutor(2, mp_context=spawn) as pool:
        reference = thread.submit(reference_traces, seeds, runs)
        mine = {(problem, method): [pool.submit(raysweep_trace, problem, method.split()[1], seed, runs)
                                    for seed in range(seeds)]
                for problem in PROBLEMS for method in METHODS[:2]}
        for (problem, method), futures in mine.items():
            traces[problem][method] = [future.result() for future in futures]
            print(f"{problem} {method}: done, load {_common.load()}", flush=True)
        for (problem, method), seed_traces in reference.result().items():
            traces[problem][method] = seed_traces
    return traces


def regret_curves(traces: dict[str, dict[str, list[list[float]]]]) -> dict[str, dict[str, list[list[float]]]]:
    """Best-so-far regret after each run, per problem, method and seed."""
    curves: dict[str, dict[str, list[list[float]]]] = {}
    for problem, by_method in traces.items():
        optimum = PROBLEMS[problem][1]
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


def verdicts(curves: dict[str, dict[str, list[list[float]]]]) -> list[str]:
    """raysweep bayes against W&B bayes after the last run: medians and a Mann-Whitney test."""
    from scipy.stats import mannwhitneyu

    lines = []
    for problem, by_method in curves.items():
        mine = [seed[-1] for seed in by_method["raysweep bayes"]]
        theirs = [seed[-1] for seed in by_method["wandb bayes"]]
        m, t = _quantile(mine, 0.5), _quantile(theirs, 0.5)
        p = mannwhitneyu(mine, theirs, alternative="two-sided").pvalue
        lines.append(f"- {problem}: raysweep bayes median regret {m:.4g} vs W&B bayes {t:.4g} "
                     f"(Mann-Whitney two-sided p = {p:.2g}) — target (≤ W&B): **{'met' if m <= t else 'missed'}**")
    return lines


def plot(curves: dict[str, dict[str, list[list[float]]]], path: Path) -> None:
    """One panel per function: median best-so-far regret (log scale) with the interquartile band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 4), constrained_layout=True)
    for ax, (problem, by_method) in zip(axes, curves.items()):
        for method, seeds in by_method.items():
            data = np.maximum(np.array(seeds), 1e-6)
            runs = np.arange(1, data.shape[1] + 1)
            style = "-" if method.startswith("raysweep") else "--"
            line, = ax.plot(runs, np.median(data, axis=0), style, label=method)
            ax.fill_between(runs, *np.quantile(data, [0.25, 0.75], axis=0), color=line.get_color(), alpha=0.12)
        ax.set(title=f"{problem} ({len(seeds)} seeds)", xlabel="runs", ylabel="best-so-far regret", yscale="log")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    axes[0].legend()
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
    p.add_argument("--plot", type=Path, help="PNG path (default docs/search_quality.png; --quick: <out>)")
    args = p.parse_args()
    if args.reference_worker:
        reference_worker(json.loads(args.reference_worker))
        return
    out, results_path = _common.prepare(args, "search_quality")
    seeds, runs = args.seeds or (2 if args.quick else 20), args.runs or (5 if args.quick else 50)
    curves = regret_curves(all_traces(seeds, runs))
    (out / "search_quality.json").write_text(json.dumps(curves))
    png = args.plot or (out / "search_quality.png" if args.quick else _common.REPO / "docs" / "search_quality.png")
    plot(curves, png)
    reference, _ = _common.run_json([_common.reference_python(), "-c", "import importlib.metadata as m, json; "
                                     "print(json.dumps({k: m.version(k) for k in ('sweeps', 'numpy')}))"])
    knobs = {k: v for k, v in os.environ.items() if k in ("NU", "RESTARTS", "XI", "ACQR", "ACQS")}
    _common.write_section(results_path, "search_quality", "\n".join([
        _common.header("Search quality" + (" (quick smoke run — not a result)" if args.quick else ""),
                       {f"reference {k}": v for k, v in reference.items()},
                       packages=("raysweep", "numpy", "scikit-learn", "bayesian-optimization", "hyperopt")),
        f"Median best-so-far regret (value − known minimum) over {seeds} seeds, {runs} runs each; one run "
        "at a time (no pending runs). raysweep: `make_searcher` driven in process (bayes = GP on Branin and "
        "Hartmann-6, TPE on the mixed space); W&B: `sweeps.next_run` in the reference venv. Plot: "
        f"`{_shown(png)}`." + (f" Environment knobs set: {knobs}." if knobs else ""), "",
        regret_table(curves, runs), *verdicts(curves)]))


if __name__ == "__main__":
    main()
