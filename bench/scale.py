"""Scale: a sweep of many short runs (function mode), and what the run log costs as it grows.

1. A real sweep of ``--runs`` short runs through `raysweep.run`, and the same
   sweep as a hand-written Ray Tune `Tuner` (``reuse_actors=True``), each in a
   fresh process: the driver's peak RSS (``getrusage`` peak, and psutil
   samples of its RSS as the sweep goes), and how fast runs end early and late.
2. The run log alone: `RunLog` driven directly, as `RunLogCallback` drives it,
   through ``--runs`` runs (start, ``--steps`` history rows, end), timing each
   call; the cost per call over the first runs is compared with the last runs.
   A run log that rewrote a whole file per result would grow in cost here.
3. `raysweep.load` and ``raysweep results`` on the run log from step 2
   (synthesised with `RunLog` directly instead of by Ray, to keep time down).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

SWEEP = {"name": "scale", "method": "random", "metric": {"name": "loss", "goal": "minimize"},
         "parameters": {"x": {"min": 0.0, "max": 1.0}, "y": {"values": ["a", "b", "c"]}}}
CALLS = ("name_for", "start_run", "append_history", "end_run")


def train(config: Any) -> None:
    import raysweep

    for i in range(config.get("steps", 3)):
        raysweep.log({"loss": (config.x - 0.3) ** 2 + 1.0 / (i + 1), "step": i})


class RssSampler(threading.Thread):
    """Samples this process's RSS every `interval` seconds (psutil), keeping the series."""

    def __init__(self, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        import psutil

        self._process, self._interval = psutil.Process(), interval
        self.samples: list[tuple[float, int]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        started = time.perf_counter()
        while not self.stopped.wait(self._interval):
            self.samples.append((time.perf_counter() - started, self._process.memory_info().rss))


def sweep_child(runs: int, steps: int, out: Path) -> dict[str, Any]:
    """The real sweep through `raysweep.run`, in this fresh process: peak RSS, throughput early and late."""
    from raysweep.driver import cluster, runner

    cluster.connect()
    sampler = RssSampler()
    sampler.start()
    started = time.perf_counter()
    result = runner.run({**SWEEP, "parameters": {**SWEEP["parameters"], "steps": {"value": steps}}},
                        train, count=runs, out=out, seed=0, progress=False)
    ended = sorted(_epoch(c) + r for c, r in zip(result.runs["created_at"].astype(str), result.runs["runtime"]))
    return {**_measured(started, sampler, ended), "runs": len(result.runs),
            "finished": int((result.runs["state"] == "finished").sum()), "path": str(result.path)}


def plain_train(config: dict[str, Any]) -> None:
    from ray import tune

    for i in range(config["steps"]):
        tune.report({"loss": (config["x"] - 0.3) ** 2 + 1.0 / (i + 1), "step": i})


def plain_child(runs: int, steps: int, out: Path) -> dict[str, Any]:
    """The same sweep as a hand-written Tuner (random search, ``reuse_actors=True``), for comparison."""
    import ray
    from ray import tune

    ray.init(include_dashboard=False, log_to_driver=False)
    ended: list[float] = []

    class Ends(tune.Callback):
        def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            ended.append(time.time())

    sampler = RssSampler()
    sampler.start()
    started = time.perf_counter()
    grid = tune.Tuner(
        plain_train, param_space={"x": tune.uniform(0.0, 1.0), "y": tune.choice(["a", "b", "c"]), "steps": steps},
        tune_config=tune.TuneConfig(num_samples=runs, reuse_actors=True, metric="loss", mode="min"),
        run_config=tune.RunConfig(storage_path=str(out), verbose=0, callbacks=[Ends()])).fit()
    return {**_measured(started, sampler, ended), "runs": len(grid),
            "finished": len(grid) - len(grid.errors), "path": str(out)}


def _measured(started: float, sampler: RssSampler, ended: list[float]) -> dict[str, Any]:
    """Wall time since `started`, RSS (peak and sampled), runs/s over the first and last tenth of `ended`."""
    wall = time.perf_counter() - started
    sampler.stopped.set()
    tenth = max(2, len(ended) // 10)
    rss = [mb for _, mb in sampler.samples]
    return {"wall_s": wall, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "rss_mib_at": {f"{q}%": rss[min(len(rss) - 1, len(rss) * q // 100)] / 2**20
                           for q in (10, 50, 100)} if rss else {},
            "runs_per_s_first_tenth": (tenth - 1) / (ended[tenth - 1] - ended[0]),
            "runs_per_s_last_tenth": (tenth - 1) / (ended[-1] - ended[-tenth]), "load": _common.load()}


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def synthesise(out: Path, runs: int, steps: int) -> tuple[Path, dict[str, list[float]], int]:
    """A run log of `runs` runs written by `RunLog` as the callback would; seconds of each call.

    Also counts the `end_run` calls after which runs.jsonl is a new file (a
    whole-file rewrite replaces the inode; an append keeps it).
    """
    from raysweep.runlog.log import RunLog, new_sweep_id, run_id_for
    from raysweep.spec.load import load_spec

    log = RunLog.create(out, load_spec(SWEEP), new_sweep_id())
    times: dict[str, list[float]] = {call: [] for call in CALLS}
    rewrites, inode = 0, None
    for i in range(runs):
        run_id = run_id_for(log.sweep_id, f"trial_{i:05d}")
        name, seconds = _common.timed(log.name_for, run_id)
        times["name_for"].append(seconds)
        times["start_run"].append(_common.timed(log.start_run, run_id, name, {"x": i / runs, "y": "abc"[i % 3]},
                                                {"host": "bench"})[1])
        for step in range(steps):
            times["append_history"].append(
                _common.timed(log.append_history, run_id, {"loss": 1.0 / (step + 1 + i)})[1])
        times["end_run"].append(_common.timed(log.end_run, run_id, "finished")[1])
        now = os.stat(log.path / "runs.jsonl").st_ino
        rewrites += inode is not None and now != inode
        inode = now
    log.finish("finished")
    return log.path, times, rewrites


def read_costs(path: Path, repeats: int) -> dict[str, float]:
    """Median seconds of `raysweep.load` (in process) and ``raysweep results`` (a new process)."""
    import raysweep

    loads, clis = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        frame = raysweep.load(path)
        loads.append(time.perf_counter() - started)
        started = time.perf_counter()
        subprocess.run([str(Path(sys.executable).with_name("raysweep")), "results", str(path)],
                       check=True, stdout=subprocess.DEVNULL)
        clis.append(time.perf_counter() - started)
    return {"rows": len(frame), "load_s": statistics.median(loads), "results_cli_s": statistics.median(clis)}


def cost_rows(times: dict[str, list[float]], window: int) -> list[list[Any]]:
    """Median ms per call over the first and the last `window` calls of each kind."""
    rows = []
    for call, values in times.items():
        per_run = len(values) // len(times["end_run"])
        first = statistics.median(values[:window * per_run]) * 1000
        last = statistics.median(values[-window * per_run:]) * 1000
        rows.append([f"`{call}`", len(values), f"{first:.3f}", f"{last:.3f}", f"{last / first:.2f}"])
    return rows


def sweep_rows(sweeps: list[dict[str, Any]]) -> list[list[Any]]:
    return [[s["label"], f"{s['finished']}/{s['runs']}", s["wall_s"], s["runs"] / s["wall_s"],
             s["runs_per_s_first_tenth"], s["runs_per_s_last_tenth"], f"{s['peak_rss_mib']:.0f} MiB",
             ", ".join(f"{k}: {v:.0f} MiB" for k, v in s["rss_mib_at"].items()), s["load"][0]] for s in sweeps]


def section(quick: bool, steps: int, sweeps: list[dict[str, Any]], times: dict[str, list[float]],
            rewrites: int, reads: dict[str, float], window: int) -> str:
    runs = len(times["end_run"])
    growth = max(float(row[-1]) for row in cost_rows(times, window))
    return "\n".join([
        _common.header("Scale" + (" (quick smoke run — not a result)" if quick else ""),
                       packages=("raysweep", "ray", "pandas", "psutil")),
        f"### A real sweep of short runs ({steps} steps each; function mode), through `raysweep.run` and "
        "through a hand-written `Tuner`, each in a fresh process",
        "", "Driver peak RSS from `getrusage` (exact peak of the driver process); RSS through the sweep from "
        "psutil samples every 0.5 s, at 10/50/100% of the samples. Runs/s early and late: over the first and "
        "the last tenth of the runs to end.", "",
        _common.table(["sweep", "runs finished", "wall s", "runs/s", "runs/s, first tenth",
                       "runs/s, last tenth", "driver peak RSS", "driver RSS through the sweep",
                       "1-min load at end"], sweep_rows(sweeps)),
        f"### Run-log write cost as the log grows to {runs} runs (`RunLog` driven directly)", "",
        f"Each run: `name_for` + `start_run`, {steps} × `append_history`, `end_run` — the calls "
        f"`RunLogCallback` makes. Median ms per call over the first and the last {window} runs; "
        f"load at the end {_common.load()}.", "",
        _common.table(["call", "calls", "first runs ms", "last runs ms", "last / first"],
                      cost_rows(times, window)),
        f"- `end_run` calls after which `runs.jsonl` was a new file (rewritten whole): {rewrites} of {runs}",
        f"- largest last/first growth: {growth:.2f}× — "
        + ("constant (≤ 1.5×)" if growth <= 1.5 else "**grows with the log: not constant**"), "",
        f"### Reading that {runs}-run log (synthesised by `RunLog` directly, not by Ray, to keep time down)", "",
        _common.table(["rows", "`raysweep.load` s (in process)", "`raysweep results DIR` s (new process)"],
                      [[reads["rows"], reads["load_s"], reads["results_cli_s"]]])])


def main() -> None:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--child", choices=["raysweep", "plain"], help=argparse.SUPPRESS)
    p.add_argument("--runs", type=int, help="runs (default 10000; --quick 300)")
    p.add_argument("--steps", type=int, default=3, help="history rows per run (default 3)")
    args = p.parse_args()
    if args.child:
        _common.emit((sweep_child if args.child == "raysweep" else plain_child)(args.runs, args.steps, args.out))
        return
    _common.isolate_ray()
    out, results_path = _common.prepare(args, "scale")
    runs = args.runs or (300 if args.quick else 10_000)
    sweeps = []
    for label in ("raysweep", "plain"):  # side by side: the same sweep as a hand-written Tuner
        answer, _ = _common.run_json([sys.executable, __file__, "--child", label, "--runs", str(runs), "--steps",
                                      str(args.steps), "--out", str(out / f"sweep-{label}")])
        sweeps.append({**answer, "label": label if label == "raysweep" else "plain Ray Tune, `reuse_actors=True`"})
        print(f"sweep: {sweeps[-1]}", flush=True)
    path, times, rewrites = synthesise(out / "synthetic", runs, args.steps)
    print(f"synthesised {runs} runs at {path}", flush=True)
    reads = read_costs(path, 1 if args.quick else 3)
    (out / "scale.json").write_text(json.dumps({"sweeps": sweeps, "times": times, "reads": reads}))
    _common.write_section(results_path, "scale", section(args.quick, args.steps, sweeps, times, rewrites, reads,
                                                         max(10, runs // 20)))


if __name__ == "__main__":
    main()
