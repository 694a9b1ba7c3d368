"""Overhead: the same sweep through raysweep and through hand-written plain Ray Tune scripts.

Variants (each one repetition = one fresh ``python bench/overhead.py --child
VARIANT`` process, so import, Ray start-up and shut-down cost every variant the
same; repetitions interleave the variants, rotating their order):

- function mode, ``--runs`` runs of ``--steps`` steps of a trivial function:
  ``raysweep`` (`raysweep.run` + `raysweep.log`), ``ray_default`` (a Tuner with
  Ray's defaults: a new actor per trial) and ``ray_fast`` (``reuse_actors=True``).
- program mode, ``--program-runs`` runs of a trivial W&B-style script:
  ``raysweep_program`` (the sweep's ``program``, wandb captured), and
  ``ray_program_default`` / ``ray_program_fast``: a trainable that starts the
  same script (printing JSON lines instead of calling wandb) and reports each line.

All plain variants use ``verbose=0`` and a local storage path, as raysweep does.
Then the per-run cost of program mode is measured piece by piece, without Ray.

``--display`` measures instead what the live progress display costs:
``raysweep`` (no display) against ``raysweep_live`` (the same sweep with
rich's live display drawing, its output told it is a terminal), function mode.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
import _profile  # noqa: E402

FUNCTION = ("raysweep", "ray_default", "ray_fast")
PROGRAM = ("raysweep_program", "ray_program_default", "ray_program_fast")
DISPLAY = ("raysweep", "raysweep_live")
#: What makes rich draw its live display into the child's stdout (a pipe) as into an 100-column terminal.
LIVE_ENV = {"TTY_COMPATIBLE": "1", "COLUMNS": "100"}
WANDB_SCRIPT = '''\
import argparse, time
import wandb
parser = argparse.ArgumentParser()
parser.add_argument("--x", type=float, default=0.5)
parser.add_argument("--steps", type=int, default=10)
args = parser.parse_args()
t_init = time.time()
run = wandb.init(config=vars(args))
for i in range(wandb.config.steps):
    wandb.log({"loss": (wandb.config.x - 0.3) ** 2 + 1.0 / (i + 1), **({"t_init": t_init} if i == 0 else {})})
run.finish()
'''
FEWER = (", fewer to keep the whole benchmark near 15 minutes: with a new actor per trial its cost per run "
         "does not depend on the number of runs")
PLAIN_SCRIPT = '''\
import argparse, json, time
parser = argparse.ArgumentParser()
parser.add_argument("--x", type=float, default=0.5)
parser.add_argument("--steps", type=int, default=10)
args = parser.parse_args()
for i in range(args.steps):
    print(json.dumps({"loss": (args.x - 0.3) ** 2 + 1.0 / (i + 1)}), flush=True)
'''


def sweep(steps: int, program: str | None = None) -> dict[str, Any]:
    """The sweep every variant runs: random search over one parameter, `steps` steps a run."""
    config = {"method": "random", "metric": {"name": "loss", "goal": "minimize"},
              "parameters": {"x": {"min": 0.0, "max": 1.0}, "steps": {"value": steps}}}
    return {**config, "program": program} if program else config


def train(config: Any) -> None:
    """raysweep's function-mode trial."""
    import raysweep

    for i in range(config.steps):
        raysweep.log({"loss": (config.x - 0.3) ** 2 + 1.0 / (i + 1)})


def plain_train(config: dict[str, Any]) -> None:
    """The hand-written Ray Tune trial doing the same work."""
    from ray import tune

    for i in range(config["steps"]):
        tune.report({"loss": (config["x"] - 0.3) ** 2 + 1.0 / (i + 1)})


def plain_program(config: dict[str, Any]) -> None:
    """The hand-written Ray Tune way to run a script per trial: start it, report each line it prints."""
    from ray import tune

    run_plain_script(config, tune.report)


def run_plain_script(config: dict[str, Any], report: Any) -> None:
    command = [sys.executable, config["program"], f"--x={config['x']}", f"--steps={config['steps']}"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as proc:
        for line in proc.stdout or ():
            report(json.loads(line))


def child(plan: list[tuple[str, int]], steps: int, out: Path) -> list[dict[str, Any]]:
    """Variants in this (fresh) process: import, Ray start-up, the sweep; seconds of each.

    A full run gives each variant a process of its own; ``--quick`` runs all of
    them in one process (one Ray start-up) to stay a smoke test.
    """
    import ray

    answers = []
    for variant, runs in plan:
        marks = [time.perf_counter()]
        if variant.startswith("raysweep"):
            from raysweep.driver import cluster, runner  # noqa: F401
            marks.append(time.perf_counter())
            cluster.connect()
        else:
            from ray import tune  # noqa: F401
            marks.append(time.perf_counter())
            if not ray.is_initialized():
                ray.init(include_dashboard=False, log_to_driver=False)
        marks.append(time.perf_counter())
        answer: dict[str, Any] = {"variant": variant, "runs": runs}
        cpu = time.process_time()
        with _profile.profiled(answer):
            answer["rows"] = _raysweep_sweep(variant, runs, steps, out) if variant.startswith("raysweep") else \
                _plain_sweep(variant, runs, steps, out)
        marks.append(time.perf_counter())
        answer["driver_cpu_s"] = time.process_time() - cpu  # every thread of the driver, Ray's workers not
        import_s, init_s, fit_s = (b - a for a, b in zip(marks, marks[1:]))
        answers.append({**answer, "import_s": import_s, "init_s": init_s, "fit_s": fit_s, "load": _common.load()})
    return answers


def _raysweep_sweep(variant: str, runs: int, steps: int, out: Path) -> int:
    from raysweep.driver import runner

    program = str(out / "wandb_script.py") if variant == "raysweep_program" else None
    result = runner.run(sweep(steps, program), None if program else train, count=runs, out=out / "logs",
                        seed=0, progress=variant == "raysweep_live")
    if len(result.runs) != runs or set(result.runs["state"]) != {"finished"}:
        raise RuntimeError(f"{variant}: expected {runs} finished runs, got {result.runs['state'].tolist()}")
    return int((result.runs["summary._step"] + 1).sum())


def _plain_sweep(variant: str, runs: int, steps: int, out: Path) -> int:
    from ray import tune

    program = variant.startswith("ray_program")
    space = {"x": tune.uniform(0.0, 1.0), "steps": steps}
    tuner = tune.Tuner(
        plain_program if program else plain_train,
        param_space={**space, "program": str(out / "plain_script.py")} if program else space,
        tune_config=tune.TuneConfig(metric="loss", mode="min", num_samples=runs,
                                    reuse_actors=variant.endswith("fast")),
        run_config=tune.RunConfig(storage_path=str(out / "ray"), name=variant, verbose=0))
    grid = tuner.fit()
    grid.get_dataframe()  # what a script reads its results from (raysweep.run returns its DataFrame)
    if len(grid) != runs or grid.num_errors:
        raise RuntimeError(f"{variant}: {len(grid)} trials, {grid.num_errors} errors")
    return sum(int(result.metrics["training_iteration"]) for result in grid)


def interleaved(variants: list[str], reps: int, sizes: dict[str, int], steps: int, out: Path,
                shared: bool) -> list[dict[str, Any]]:
    """Every variant `reps` times in fresh processes (or all in one when `shared`), order rotated."""
    results = []
    for rep in range(reps):
        order = variants[rep % len(variants):] + variants[:rep % len(variants)]
        for group in [order] if shared else [[v] for v in order]:
            scratch = out / f"{'-'.join(group) if len(group) == 1 else 'shared'}-{rep}"
            scratch.mkdir(parents=True, exist_ok=True)
            (scratch / "wandb_script.py").write_text(WANDB_SCRIPT)
            (scratch / "plain_script.py").write_text(PLAIN_SCRIPT)
            answers, wall = _common.run_json(
                [sys.executable, __file__, "--child", ",".join(f"{v}={sizes[v]}" for v in group),
                 "--steps", str(steps), "--out", str(scratch)],
                env=LIVE_ENV if "raysweep_live" in group else None)
            for answer in answers:
                results.append({**answer, "rep": rep, "total_s": wall})
                print(f"rep {rep} {answer['variant']}: fit {answer['fit_s']:.1f} s, process {wall:.1f} s, "
                      f"load {answer['load']}", flush=True)
    return results


def median_walls(commands: dict[str, tuple[list[str], dict[str, str] | None]],
                 samples: int) -> dict[str, float]:
    """Median wall time of each command, the commands interleaved sample by sample."""
    walls: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(samples):
        for name, (argv, env) in commands.items():
            started = time.perf_counter()
            subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
            walls[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in walls.items()}


def breakdown(out: Path, samples: int, steps: int) -> dict[str, float]:
    """Program mode's per-run cost, piece by piece, measured directly (no Ray)."""
    import warnings

    from raysweep.driver.settings import Settings
    from raysweep.trial import program

    from raysweep.runlog import log as runlog
    from raysweep.spec.load import load_spec

    sweep_id = runlog.new_sweep_id()
    script, plain = out / "wandb_script.py", out / "plain_script.py"
    script.write_text(WANDB_SCRIPT)
    plain.write_text(PLAIN_SCRIPT)
    shim_env = program.agent_env(os.environ, sweep_id=sweep_id, run_id="bench000", wandb_dir=str(out))
    py = sys.executable
    walls = median_walls({
        "process start: `python -c pass`": ([py, "-c", "pass"], None),
        "reaper start: `python -I -c 'import os, signal, subprocess, sys, threading'`":
            ([py, "-I", "-c", "import os, signal, subprocess, sys, threading"], None),
        "interpreter + the script's imports (wandb = raysweep's shim)":
            ([py, "-c", "import argparse, time, wandb"], shim_env),
        "interpreter + the plain script's imports": ([py, "-c", "import argparse, json, time"], None),
    }, samples)
    latency: list[float] = []

    def record(row: dict[str, Any] | None, *, summary: dict[str, Any] | None = None) -> None:
        if row and "t_init" in row:
            latency.append(time.time() - row["t_init"])

    trial = program.program_trainable(load_spec(sweep(steps, str(script))), sweep_id, cwd=out,
                                      kill_grace=Settings.kill_grace, report=record)
    config = {"x": 0.5, "steps": steps}
    whole: dict[str, list[float]] = {"raysweep": [], "plain": []}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Ray: get_trial_id() outside a trial
        for _ in range(samples):
            whole["raysweep"].append(_common.timed(trial, config)[1])
            whole["plain"].append(_common.timed(run_plain_script, {**config, "program": str(plain)},
                                                lambda row: None)[1])
    return {**walls, "wandb capture: wandb.init() to first row received by the trial":
            statistics.median(latency),
            "one whole run through raysweep's trial code, no Ray (reaper + script + capture)":
            statistics.median(whole["raysweep"]),
            "one whole run of the plain script, no Ray (Popen + read lines)":
            statistics.median(whole["plain"])}



def _med(results: list[dict[str, Any]], variant: str, key: str) -> float:
    return statistics.median(r[key] for r in results if r["variant"] == variant)


def paired(results: list[dict[str, Any]], a: str, b: str, key: str) -> list[float]:
    """a/b of `key` per run, repetition by repetition (variants of one repetition ran side by side)."""
    pairs: dict[int, dict[str, float]] = {}
    for r in results:
        pairs.setdefault(r["rep"], {})[r["variant"]] = r[key] / r["runs"]
    return sorted(p[a] / p[b] for p in pairs.values() if a in p and b in p)


def _ratio(ratios: list[float]) -> str:
    return f"**{statistics.median(ratios):.3f}** (range {ratios[0]:.3f}–{ratios[-1]:.3f}, n={len(ratios)})"


def variant_table(results: list[dict[str, Any]], variants: tuple[str, ...]) -> str:
    """Medians over repetitions of each variant's phases."""
    rows = []
    for v in [v for v in variants if any(r["variant"] == v for r in results)]:
        runs = next(r["runs"] for r in results if r["variant"] == v)
        fit, total = _med(results, v, "fit_s"), _med(results, v, "total_s")
        loads = [r["load"][0] for r in results if r["variant"] == v]
        rows.append([f"`{v}`", runs, _med(results, v, "import_s"), _med(results, v, "init_s"), fit, total,
                     runs / fit, runs / total, f"{min(loads):.1f}–{max(loads):.1f}"])
    return _common.table(["variant", "runs", "import s", "ray.init s", "fit s", "total s (process)",
                          "runs/s (fit)", "runs/s (total)", "1-min load"], rows)


def comparison(results: list[dict[str, Any]], mine: str, fast: str, default: str,
               targets: bool) -> list[str]:
    """raysweep against the plain scripts, per run (so unequal run counts still compare)."""
    fit, total = paired(results, mine, fast, "fit_s"), paired(results, mine, fast, "total_s")
    speedup = paired(results, default, mine, "fit_s")
    met = {True: "met", False: "missed"}
    return [
        f"- `{mine}` / `{fast}`, time per run — fit: {_ratio(fit)}; total: {_ratio(total)}"
        + (f"; target ≤ 1.05 (fit): **{met[statistics.median(fit) <= 1.05]}**" if targets else ""),
        f"- `{mine}` runs/s ÷ `{default}` runs/s (fit): {_ratio(speedup)}"
        + (f"; target ≥ 10: **{met[statistics.median(speedup) >= 10]}**" if targets else "")]


def profiles(variants: list[str], runs: int, steps: int, out: Path) -> list[dict[str, Any]]:
    """One more run of each variant in a fresh process, its driver under cProfile."""
    found = []
    for variant in variants:
        env = {_profile.PROFILE_ENV: "1"}
        answers, _ = _common.run_json([sys.executable, __file__, "--child", f"{variant}={runs}", "--steps",
                                       str(steps), "--out", str(out / f"profile-{variant}")], env=env)
        found += answers
    return found


def present(results: list[dict[str, Any]], variant: str) -> bool:
    return any(r["variant"] == variant for r in results)


def function_section(results: list[dict[str, Any]]) -> str:
    lines = comparison(results, "raysweep", "ray_fast", "ray_default", targets=True)
    return "\n".join([variant_table(results, FUNCTION), *lines, ""])


def program_section(results: list[dict[str, Any]], pieces: dict[str, float]) -> str:
    slots = os.cpu_count() or 1
    per_run = {v: _med(results, v, "fit_s") * slots / next(r["runs"] for r in results if r["variant"] == v)
               for v in PROGRAM if present(results, v)}
    alone = pieces["one whole run through raysweep's trial code, no Ray (reaper + script + capture)"]
    rows = [[name, f"{seconds * 1000:.1f}"] for name, seconds in pieces.items()]
    rows += [[f"per run in `{v}` (fit time × {slots} slots ÷ runs)", f"{s * 1000:.1f}"] for v, s in per_run.items()]
    rows += [[f"of which Ray + run log in `{v}` (per run − one whole run without Ray)",
              f"{(per_run[v] - alone) * 1000:.1f}"] for v in per_run if v.startswith("raysweep")]
    lines = comparison(results, "raysweep_program", "ray_program_fast", "ray_program_default", targets=False)
    return "\n".join([variant_table(results, PROGRAM), *lines, "",
                      "Per-run cost of program mode, measured directly (medians; the pieces run "
                      "interleaved, without Ray):", "",
                      _common.table(["piece", "ms"], rows)])


def display_main(args: argparse.Namespace) -> None:
    """raysweep with and without its live display, interleaved in fresh processes; the section `overhead-display`."""
    from raysweep.driver.progress import REFRESH_PER_S

    _common.isolate_ray()
    out, results_path = _common.prepare(args, "overhead-display")
    runs, steps, reps = args.runs or (4 if args.quick else 100), args.steps or (3 if args.quick else 10), \
        args.reps or (1 if args.quick else 5)
    results = interleaved(list(DISPLAY), reps, dict.fromkeys(DISPLAY, runs), steps, out, shared=False)
    (out / "overhead-display.json").write_text(json.dumps(results, indent=1))
    fit, cpu = (paired(results, "raysweep_live", "raysweep", key) for key in ("fit_s", "driver_cpu_s"))
    cpu_s = {v: _med(results, v, "driver_cpu_s") for v in DISPLAY}
    _common.write_section(results_path, "overhead-display", "\n".join([
        _common.header("Overhead of the live display" + (" (quick smoke run — not a result)" if args.quick else "")),
        f"Function mode, {runs} runs × {steps} steps of a trivial function, each variant in a fresh process, "
        f"{reps} repetitions interleaved (order rotated): `raysweep` without a display, `raysweep_live` with "
        f"rich's live display redrawing {REFRESH_PER_S} times a second (its output told it is a 100-column "
        "terminal by `TTY_COMPATIBLE=1`).", "",
        variant_table(results, DISPLAY),
        f"- `raysweep_live` / `raysweep`, per run — fit time: {_ratio(fit)}; CPU time of the driver process "
        f"during fit (all its threads, the display's included; {cpu_s['raysweep']:.1f} s and "
        f"{cpu_s['raysweep_live']:.1f} s, medians): {_ratio(cpu)}", ""]))


def main() -> None:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--child", help=argparse.SUPPRESS)  # VARIANT=RUNS,...
    p.add_argument("--reps", type=int, help="repetitions (default 3; --quick 1)")
    p.add_argument("--runs", type=int, help="function-mode runs (default 200; --quick 4)")
    p.add_argument("--default-runs", type=int, help="runs of `ray_default` (default: --runs)")
    p.add_argument("--program-runs", type=int, help="program-mode runs (default 50; --quick 3)")
    p.add_argument("--steps", type=int, help="steps per run (default 10; --quick 3)")
    p.add_argument("--samples", type=int, help="samples of each breakdown piece (default 20; --quick 2)")
    p.add_argument("--display", action="store_true", help="the live display's cost: raysweep with it and without")
    args = p.parse_args()
    if args.child:
        plan = [(v, int(n)) for v, n in (item.split("=") for item in args.child.split(","))]
        answers = child(plan, args.steps, args.out)
        print(flush=True)  # a live display leaves its last line open (it shows the cursor again)
        _common.emit(answers)
        return
    if args.display:
        display_main(args)
        return
    quick = args.quick
    _common.isolate_ray()
    out, results_path = _common.prepare(args, "overhead")
    runs, steps = args.runs or (4 if quick else 200), args.steps or (3 if quick else 10)
    program_runs = args.program_runs or (3 if quick else 50)
    sizes = {**dict.fromkeys(FUNCTION, runs), **dict.fromkeys(PROGRAM, program_runs),
             "ray_default": args.default_runs or runs}
    results = interleaved(list(FUNCTION + PROGRAM), args.reps or (1 if quick else 3), sizes, steps, out,
                          shared=quick)
    pieces = breakdown(out, args.samples or (2 if quick else 20), steps)
    found = [] if quick else profiles(["raysweep"], runs, steps, out)
    (out / "overhead.json").write_text(json.dumps({"results": results, "breakdown": pieces, "profiles": found},
                                                  indent=1))
    title = "Overhead" + (" (quick smoke run — not a result)" if quick else "")
    _common.write_section(results_path, "overhead", "\n".join([
        _common.header(title),
        ("All variants share one process (smoke run). " if quick else "Each variant runs in a fresh process. ")
        + f"Repetitions interleave the variants (order rotated). "
        f"Function mode: {runs} runs × {steps} steps of a trivial function (`ray_default`: "
        f"{sizes['ray_default']} runs{FEWER if sizes['ray_default'] < runs else ''}). Program mode: {program_runs} runs × {steps} steps of a trivial "
        f"script. *fit* = the sweep call (`raysweep.run` / `Tuner` + `fit` + results DataFrame); *total* = "
        "the whole process (interpreter, imports, `ray.init`, fit, Ray shut-down). Ratios are per run, "
        "paired by repetition; medians over repetitions.", "",
        "### Function mode", "", function_section(results),
        "### Program mode", "", program_section(results, pieces), *([_profile.section(found)] if found else [])]))


if __name__ == "__main__":
    main()
