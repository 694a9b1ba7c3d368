"""Early stopping: the same sweep with and without ``early_terminate: hyperband``, same seeds.

Two benchmarks, each a random sweep run with and without W&B's hyperband
(seeded alike, so both variants are given the same configs in the same order):

- ``synthetic``: learning curves ``l(t) = final + (start - final)·exp(-t/τ) + noise``
  whose final score and speed ``τ`` are known functions of the config, so the
  true quality of the run a sweep picks is known too (slow learners exist:
  small learning rates converge late, so a rung can cut a run that would have
  ended well: the best configs are among the slow ones, a hard case for any
  rung-based stopping, kept to show what it costs);
- ``digits`` (skipped by ``--quick``): the torch example `examples/digits_mlp.py`
  with `configs/digits_mlp.yaml`'s space, as a random sweep.

Per variant: total trained epochs (history rows), wall time of `raysweep.run`,
best final metric (the best run's last logged value).  The variants of one seed
run back to back in one Ray instance, their order alternating between seeds.
"""

from __future__ import annotations

import json
import math
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

NOISE = 0.02
START = 2.5
WIDTH_PENALTY = {16: 0.15, 64: 0.05, 256: 0.0}
BEST_FINAL = 0.1  # final_score at lr = 1e-2, width 256, dropout 0.2
SYNTHETIC = {
    "name": "curves", "method": "random", "metric": {"name": "loss", "goal": "minimize"},
    "early_terminate": {"type": "hyperband", "min_iter": 3, "eta": 3},
    "parameters": {"lr": {"distribution": "log_uniform_values", "min": 1.0e-4, "max": 1.0},
                   "width": {"values": [16, 64, 256]},
                   "dropout": {"min": 0.0, "max": 0.5}}}


def final_score(config: Any) -> float:
    """The loss a run of `config` converges to (minimum `BEST_FINAL`)."""
    return (BEST_FINAL + 0.15 * (math.log10(config["lr"]) + 2) ** 2 + WIDTH_PENALTY[config["width"]]
            + (config["dropout"] - 0.2) ** 2)


def time_constant(config: Any) -> float:
    """Epochs to converge by 1/e: small learning rates learn slowly (1e-4: 20 epochs, 1e-2: 8)."""
    return 2.0 + 6.0 * max(0.0, -math.log10(config["lr"]) - 1.0)


def curves(config: Any) -> None:
    """A synthetic trial: one noisy point of its learning curve per epoch, `epoch_s` seconds each."""
    import raysweep

    rng = random.Random(f"{config['lr']!r}/{config['width']}/{config['dropout']!r}")
    final, tau = final_score(config), time_constant(config)
    for epoch in range(1, config["epochs"] + 1):
        time.sleep(config["epoch_s"])
        loss = final + (START - final) * math.exp(-epoch / tau) + rng.gauss(0.0, NOISE)
        raysweep.log({"loss": loss, "epoch": epoch})


def digits_sweep() -> dict[str, Any]:
    """`configs/digits_mlp.yaml` as a random sweep (so both variants get the same configs)."""
    import yaml

    config = yaml.safe_load((_common.REPO / "configs" / "digits_mlp.yaml").read_text())
    config.pop("run_cap", None)
    return {**config, "method": "random"}


def one_sweep(sweep: dict[str, Any], train: Callable[[Any], None], seed: int, count: int,
              out: Path, stop: bool) -> dict[str, Any]:
    """One variant: epochs trained, wall time, best final metric (and, synthetic, its true score)."""
    from raysweep.driver import runner
    from raysweep.results.table import sort_best_first

    if not stop:
        sweep = {k: v for k, v in sweep.items() if k != "early_terminate"}
    started = time.perf_counter()
    result = runner.run(sweep, train, count=count, out=out, seed=seed, progress=False)
    wall = time.perf_counter() - started
    metric = f"summary.{sweep['metric']['name']}"
    best = sort_best_first(result.runs, result.spec).iloc[0]
    config = {key[len("config."):]: value for key, value in best.items() if key.startswith("config.")}
    return {"seed": seed, "stop": stop, "runs": len(result.runs), "wall_s": wall,
            "epochs": int((result.runs["summary._step"] + 1).sum()),
            "stopped": int(result.runs["early_stopped"].fillna(False).astype(bool).sum()),
            "best": float(best[metric]),
            "best_true": final_score(config) if "width" in config else None, "load": _common.load()}


def compare(sweep: dict[str, Any], train: Callable[[Any], None], seeds: int, count: int,
            out: Path) -> list[dict[str, Any]]:
    """Both variants for each seed, back to back, the order alternating."""
    results = []
    for seed in range(seeds):
        for stop in (seed % 2 == 0, seed % 2 == 1):
            results.append(one_sweep(sweep, train, seed, count, out / f"{seed}-{stop}", stop))
            print(json.dumps(results[-1]), flush=True)
    return results


def summary_row(name: str, results: list[dict[str, Any]], noise: float) -> list[Any]:
    """Medians over seeds of each variant, per-seed ratios, and whether the target holds."""
    full = {r["seed"]: r for r in results if not r["stop"]}
    cut = {r["seed"]: r for r in results if r["stop"]}
    med = statistics.median
    epochs = med(full[s]["epochs"] / cut[s]["epochs"] for s in full)
    delta = med(cut[s]["best"] - full[s]["best"] for s in full)
    met = epochs >= 3 and delta <= noise
    true = [f"{med(v[s]['best_true'] - BEST_FINAL for s in v):.3f}" if v[0]["best_true"] is not None else "-"
            for v in (full, cut)]
    return [name, len(full), full[0]["runs"], med(r["epochs"] for r in full.values()),
            med(r["epochs"] for r in cut.values()), f"**{epochs:.2f}×**",
            med(r["wall_s"] for r in full.values()), med(r["wall_s"] for r in cut.values()),
            f"{med(full[s]['wall_s'] / cut[s]['wall_s'] for s in full):.2f}×",
            med(r["best"] for r in full.values()), med(r["best"] for r in cut.values()),
            f"{delta:+.4f}", f"{noise:.4f}", " / ".join(true), "**met**" if met else "**missed**"]


def section(quick: bool, benchmarks: dict[str, tuple[list[dict[str, Any]], float, str]]) -> str:
    rows = [summary_row(name, results, noise) for name, (results, noise, _) in benchmarks.items()]
    per_seed = [[name, r["seed"], "hyperband" if r["stop"] else "full budget", r["runs"], r["stopped"],
                 r["epochs"], r["wall_s"], r["best"], "-" if r["best_true"] is None else r["best_true"],
                 r["load"][0]]
                for name, (results, _, _) in benchmarks.items() for r in results]
    notes = [f"- `{name}`: {text}" for name, (_, _, text) in benchmarks.items()]
    return "\n".join([
        _common.header("Early stopping" + (" (quick smoke run — not a result)" if quick else ""),
                       packages=("raysweep", "ray", "torch")),
        "Medians over seeds; ratios are full budget ÷ hyperband, per seed. *best* = the best run's last "
        "logged metric (W&B's summary). Target: ≥ 3× fewer epochs with Δbest (hyperband − full) within "
        "noise.", "",
        _common.table(["benchmark", "seeds", "runs/sweep", "epochs, full", "epochs, hyperband", "epoch ratio",
                       "wall s, full", "wall s, hyperband", "wall ratio", "best, full", "best, hyperband",
                       "Δbest", "noise", "true regret of pick (full / hyperband)", "target"], rows),
        *notes, "", "Per sweep:", "",
        _common.table(["benchmark", "seed", "variant", "runs", "stopped early", "epochs", "wall s", "best",
                       "true score of pick", "1-min load"], per_seed)])


def main() -> None:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, help="seeds per benchmark (default 3; --quick 1)")
    p.add_argument("--runs", type=int, help="runs per synthetic sweep (default 100; --quick 9)")
    p.add_argument("--digits-runs", type=int, default=60, help="runs per digits sweep (default 60)")
    args = p.parse_args()
    _common.isolate_ray()
    out, results_path = _common.prepare(args, "early_stopping")
    from raysweep.driver import cluster

    cluster.connect()
    seeds = args.seeds or (1 if args.quick else 3)
    epochs, epoch_s = (9, 0.0) if args.quick else (81, 0.01)
    synthetic = {**SYNTHETIC, "parameters": {**SYNTHETIC["parameters"], "epochs": {"value": epochs},
                                             "epoch_s": {"value": epoch_s}}}
    benchmarks = {"synthetic": (compare(synthetic, curves, seeds, args.runs or (9 if args.quick else 100),
                                        out / "synthetic"), 2 * math.sqrt(2) * NOISE,
                                f"{epochs} epochs of {epoch_s * 1000:g} ms; hyperband min_iter 3, eta 3; "
                                f"noise σ = {NOISE} per point, so Δbest within noise means ≤ 2√2·σ; "
                                f"true regret = the picked config's known final score − {BEST_FINAL}; "
                                "the best configs learn slowest here, so any rung-based cut drops them: "
                                "the hard case, kept to show its cost")}
    if not args.quick:
        sys.path.insert(0, str(_common.REPO))
        from examples.digits_mlp import train

        results = compare(digits_sweep(), train, seeds, args.digits_runs, out / "digits")
        spread = statistics.stdev(r["best"] for r in results if not r["stop"]) if seeds > 1 else 0.0
        benchmarks["digits"] = (results, 2 * spread,
                                "`configs/digits_mlp.yaml` as a random sweep (27 epochs; hyperband "
                                "min_iter 1, eta 3); noise = 2 × the seed-to-seed standard deviation "
                                "of the full-budget best val_loss")
    (out / "early_stopping.json").write_text(json.dumps({k: v[0] for k, v in benchmarks.items()}))
    _common.write_section(results_path, "early_stopping", section(args.quick, benchmarks))


if __name__ == "__main__":
    main()
