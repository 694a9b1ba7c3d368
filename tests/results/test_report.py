"""The HTML report: its numbers on hand-computable sweeps, its size at 10,000 runs, and
what a real browser (headless Chromium) draws from the log of a real sweep.

Chromium is Debian's package, installed by ``scripts/setup-chromium``; the browser
tests fail, not skip, without it, so a missing browser is never a silent pass.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from raysweep.results.page import report
from raysweep.names import run_name
from raysweep.results.data import (NO_SKLEARN, axes, best_runs, importance, learning_curves,
                                  metric_vs_time, run_kind)
from raysweep.runlog.log import RunLog, load
from raysweep.spec.load import load_spec
from raysweep.search.stopping import hyperband_milestones

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
PLOTS = {"parallel", "importance", "timeline", "curves", "best"}


# --- writing run logs ---------------------------------------------------------------

def write_log(out: Path, spec: dict[str, Any], runs: list[tuple[dict[str, Any], list[float], str]],
              *, finish: bool = True) -> Path:
    """A run log written through `RunLog`: (config, metric history, end state) per run.

    End state ``running`` leaves the run unended (a sweep still running).
    """
    log = RunLog.create(out, load_spec(spec), "sweep123")
    metric = spec["metric"]["name"]
    for index, (config, history, state) in enumerate(runs):
        run_id = f"run{index:05d}"
        log.start_run(run_id, run_name(index + 1, seed="s"), config, {})
        for value in history:
            log.append_history(run_id, {metric: value})
        if state == "stopped":
            log.end_run(run_id, "killed", stopped_at_rung=len(history), early_stopped=True)
        elif state != "running":
            log.end_run(run_id, state)
    if finish:
        log.finish("finished")
    return log.path


@pytest.fixture(scope="module")
def hand_logs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The run logs of `hand_case`, by decisive parameter (written once: RunLog fsyncs)."""
    return {decisive: write_log(tmp_path_factory.mktemp(decisive), *hand_case(decisive))
            for decisive in ("x", "opt")}


def hand_case(decisive: str) -> tuple[dict[str, Any], list[tuple[dict[str, Any], list[float], str]]]:
    """40 runs where one parameter decides the metric and the other is noise.

    The noise follows +1, -1, -1, +1 along x = 1..40, so its correlation with x,
    and so with a metric linear in x, is exactly 0 (each block of four sums to
    a - (a+1) - (a+2) + (a+3) = 0).  ``decisive`` is ``x`` (metric 3x + 2) or
    ``opt`` (metric 1 for sgd, 0 for adam, alternating with the noise's pattern).
    """
    spec = {"method": "random", "metric": {"name": "loss"},
            "parameters": {"x": {"min": 0.0, "max": 50.0}, "noise": {"min": -1.0, "max": 1.0},
                           "opt": {"values": ["adam", "sgd"]}}}
    runs = []
    for x in range(1, 41):
        noise = [1.0, -1.0, -1.0, 1.0][(x - 1) % 4]
        opt = ["adam", "sgd"][x % 2]
        loss = 3.0 * x + 2.0 if decisive == "x" else float(opt == "sgd")
        runs.append(({"x": float(x), "noise": noise, "opt": opt}, [loss + 5, loss], "finished"))
    return spec, runs


def write_synthetic(out: Path, count: int, seed: int = 0, running: int = 3) -> Path:
    """A realistic simulated sweep of `count` ended runs and `running` unended ones.

    Hyperband (min_iter 3, eta 3) stops about two thirds of the runs at each rung,
    2% crash, the rest train 100 epochs.  RunLog rewrites and fsyncs the summary on
    every row (about 60 ms per run here: 10 minutes for 10,000), so the ended runs'
    runs.jsonl lines and history files are written in RunLog's formats directly;
    sweep.yaml, sweep.json and the running runs go through RunLog itself.
    """
    rng = np.random.default_rng(seed)
    log = RunLog.create(out, load_spec(SYNTHETIC), "synth10k")
    start = datetime.now(timezone.utc) - timedelta(seconds=2.5 * count)  # running runs start now
    rungs = hyperband_milestones(load_spec(SYNTHETIC).early_terminate)
    lines = []
    for index in range(count + running):
        config, curve = simulate(rng)
        state, stop = simulated_end(rng, rungs)
        history = curve[:stop]
        run_id, name = f"r{index:07d}", run_name(index + 1, seed="synth10k")
        if index >= count:
            log.start_run(run_id, name, config, {})
            for value in history[:5]:
                log.append_history(run_id, {"val_loss": value})
            continue
        created = start + timedelta(seconds=2.5 * index)
        rows = [{"val_loss": v, "epoch": step, "_step": step, "_runtime": 0.5 * (step + 1),
                 "_timestamp": created.timestamp() + 0.5 * (step + 1)} for step, v in enumerate(history)]
        (log.path / "runs" / run_id).mkdir()
        (log.path / "runs" / run_id / "wandb-history.jsonl").write_text(
            "".join(json.dumps(row) + "\n" for row in rows))
        lines.append(json.dumps({
            "id": run_id, "name": name, "state": state, "early_stopped": state == "killed",
            "stopped_at_rung": stop if state == "killed" else None,
            "created_at": created.isoformat().replace("+00:00", "Z"), "runtime": rows[-1]["_runtime"],
            "exit_code": None, "error": "RuntimeError: loss diverged" if state == "crashed" else None,
            "attempts": 1, "host": "node-1", "node_ip": "10.0.0.1", "config": config,
            "summary": rows[-1]}) + "\n")
    (log.path / "runs.jsonl").write_text("".join(lines))
    return log.path


SYNTHETIC = {
    "name": "synthetic-10k", "method": "random", "metric": {"name": "val_loss", "goal": "minimize"},
    "early_terminate": {"type": "hyperband", "min_iter": 3, "eta": 3},
    "parameters": {
        "optimizer": {"parameters": {
            "name": {"values": ["adam", "sgd", "rmsprop"]},
            "lr": {"distribution": "log_uniform_values", "min": 1.0e-4, "max": 0.3}}},
        "hidden": {"values": [32, 64, 128, 256]},
        "layers": {"distribution": "int_uniform", "min": 1, "max": 4},
        "dropout": {"distribution": "q_uniform", "min": 0.0, "max": 0.5, "q": 0.05},
        "epochs": {"value": 100}},
}


def simulate(rng: np.random.Generator) -> tuple[dict[str, Any], list[float]]:
    """A config and its 100-epoch loss curve: falls to a floor set mostly by lr and optimizer."""
    lr = float(10 ** rng.uniform(-4, math.log10(0.3)))
    name = str(rng.choice(["adam", "sgd", "rmsprop"]))
    hidden, layers = int(rng.choice([32, 64, 128, 256])), int(rng.integers(1, 5))
    dropout = round(round(rng.uniform(0, 0.5) / 0.05) * 0.05, 2)
    floor = (0.1 + 0.15 * (math.log10(lr) + 2.3) ** 2 + {"adam": 0, "sgd": 0.15, "rmsprop": 0.05}[name]
             + 0.1 * dropout + 0.02 * layers)
    epochs = np.arange(100)
    curve = floor + 2.0 * np.exp(-epochs * (0.04 + 0.1 * hidden / 256)) + rng.normal(0, 0.01, 100)
    config = {"optimizer": {"name": name, "lr": lr}, "hidden": hidden, "layers": layers,
              "dropout": dropout, "epochs": 100}
    return config, [round(float(v), 5) for v in curve]


def simulated_end(rng: np.random.Generator, rungs: list[int]) -> tuple[str, int]:
    """How a run ends: crashed (2%), stopped at a rung (2/3 at each), or finished."""
    if rng.uniform() < 0.02:
        return "crashed", int(rng.integers(1, 40))
    for rung in rungs:
        if rung < 100 and rng.uniform() < 2 / 3:
            return "killed", rung
    return "finished", 100


def embedded(page: str) -> dict[str, Any]:
    """The JSON the report page draws from."""
    start = page.index('<script type="application/json" id="report-data">') + 49
    return json.loads(page[start:page.index("</script>", start)])


# --- numbers of the views -----------------------------------------------------------

@pytest.mark.parametrize("decisive", ["x", "opt"], ids=["numeric-decides", "categorical-decides"])
def test_importance_and_correlation_on_a_hand_computable_sweep(hand_logs, decisive):
    table = importance(hand_logs[decisive]).set_index("feature")
    assert set(table.index) == {"x", "noise", "opt = adam", "opt = sgd"}
    assert table["importance"].sum() == pytest.approx(1.0)
    assert table.loc["noise", "correlation"] == pytest.approx(0.0, abs=1e-12)
    assert table.loc["noise", "importance"] < 0.05
    if decisive == "x":
        assert table.loc["x", "importance"] > 0.8
        assert table.loc["x", "correlation"] == pytest.approx(1.0)
        assert table.index[0] == "x"
    else:
        assert table.loc[["opt = adam", "opt = sgd"], "importance"].sum() > 0.8
        assert table.loc["opt = sgd", "correlation"] == pytest.approx(1.0)
        assert table.loc["opt = adam", "correlation"] == pytest.approx(-1.0)
        assert abs(table.loc["x", "correlation"]) < 0.1  # x alternates with opt: 0.0487


def test_without_scikit_learn_the_table_has_correlation_only(hand_logs, tmp_path, monkeypatch):
    path = hand_logs["x"]
    monkeypatch.setitem(sys.modules, "sklearn.ensemble", None)  # `import` raises ImportError
    table = importance(path)
    assert table["importance"].isna().all()
    assert list(table["feature"])[0] == "x"  # sorted by |correlation|
    assert table.attrs["note"] == NO_SKLEARN
    page = report(path, tmp_path / "report.html")
    assert embedded(page.read_text())["importance"]["note"] == NO_SKLEARN


def test_axes_follow_the_distributions(tmp_path):
    spec = {"method": "random", "metric": {"name": "loss"}, "parameters": {
        "lr": {"distribution": "log_uniform_values", "min": 1.0e-4, "max": 1.0},
        "steps": {"distribution": "q_log_uniform_values", "min": 1, "max": 100, "q": 10},
        "width": {"distribution": "int_uniform", "min": 1, "max": 9},
        "act": {"values": ["tanh", "relu", "gelu"]}, "seed": {"value": 0}}}
    runs = [({"lr": 0.01, "steps": 0, "width": 3, "act": "relu", "seed": 0}, [1.0], "finished"),
            ({"lr": 0.1, "steps": 20, "width": 5, "act": "tanh", "seed": 0}, [2.0], "finished")]
    found = {axis.label: (axis.kind, axis.categories) for axis in axes(write_log(tmp_path, spec, runs))}
    assert found == {"act": ("category", ("tanh", "relu", "gelu")), "lr": ("log", ()),
                     "steps": ("linear", ()),  # a q_log value rounded to 0 has no log
                     "width": ("linear", ())}


def test_time_view_keeps_the_best_so_far_and_marks_how_runs_ended(tmp_path):
    spec = {"method": "random", "metric": {"name": "acc", "goal": "maximize"},
            "parameters": {"x": {"min": 0.0, "max": 1.0}}}
    runs = [({"x": 0.1}, [0.5], "finished"), ({"x": 0.2}, [0.3], "stopped"),
            ({"x": 0.3}, [0.8], "finished"), ({"x": 0.4}, [], "crashed"),
            ({"x": 0.5}, [0.6, 0.7], "running")]
    frame = metric_vs_time(write_log(tmp_path, spec, runs, finish=False))
    assert list(frame["kind"]) == ["finished", "stopped", "finished", "crashed", "running"]
    assert list(frame["best_so_far"]) == [0.5, 0.5, 0.8, 0.8, 0.8]
    assert frame["elapsed"].is_monotonic_increasing and frame["elapsed"].iloc[0] == 0


def test_learning_curves_count_iterations_and_thin_long_runs(tmp_path):
    spec = {"method": "random", "metric": {"name": "loss"},
            "early_terminate": {"type": "hyperband", "min_iter": 3, "eta": 3},
            "parameters": {"x": {"min": 0.0, "max": 1.0}}}
    curve = [1.0 / (i + 1) for i in range(250)]
    path = write_log(tmp_path, spec, [({"x": 0.5}, curve, "finished")])
    full = learning_curves(path)
    assert list(full["iteration"]) == list(range(1, 251)) and list(full["value"]) == curve
    thin = learning_curves(path, points_per_run=20)
    kept = list(thin["iteration"])
    assert kept[0] == 1 and kept[-1] == 250
    assert {3, 9, 27, 81, 243} <= set(kept)  # the rungs stay where runs are judged
    assert len(kept) <= 20 + 5


def test_best_runs_are_ordered_by_the_goal(hand_logs):
    best = best_runs(hand_logs["x"], top=3)
    assert list(best["summary.loss"]) == [5.0, 8.0, 11.0]
    assert list(best["config.x"]) == [1.0, 2.0, 3.0]


def test_ten_thousand_runs_render_small_and_fast(tmp_path):
    path = write_synthetic(tmp_path, 10_000)
    started = time.process_time()  # CPU time: other work on a shared machine does not count
    page = report(path)
    seconds = time.process_time() - started
    size = page.stat().st_size
    data = embedded(page.read_text(encoding="utf-8"))
    assert size < 10_000_000, f"report of 10,000 runs is {size / 1e6:.1f} MB"
    assert seconds < 30, f"report of 10,000 runs took {seconds:.1f} s of CPU"  # ~5 s here
    assert len(data["runs"]["name"]) == 10_003 and data["runs"]["kind"].count("running") == 3
    curves = {runs[0]: runs for runs in data["curves"]["runs"]}
    finished = data["runs"]["kind"].index("finished")  # trained all 100 epochs
    iterations = curves[finished][1]
    assert len(iterations) <= data["curves"]["budget"] + 4 < 100
    assert iterations[0] == 1 and iterations[-1] == 100 and {3, 9, 27, 81} <= set(iterations)


# --- in a browser -------------------------------------------------------------------

class _PageStatus(HTMLParser):
    """The data attributes the page's script leaves on <html> and <body>."""

    def __init__(self) -> None:
        super().__init__()
        self.attrs: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("html", "body"):
            self.attrs.update({k: v or "" for k, v in attrs if k.startswith("data-")})


def require_chromium() -> None:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: the report tests need Debian's chromium; "
                    "install it with scripts/setup-chromium (apt-get install chromium)")


def chromium(page: Path, profile: Path, *args: str) -> str:
    """Run headless Chromium on `page`; its stdout (the DOM with ``--dump-dom``)."""
    require_chromium()
    done = subprocess.run([str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args,
                           page.as_uri()], capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def page_status(page: Path, profile: Path) -> dict[str, str]:
    parser = _PageStatus()
    parser.feed(chromium(page, profile, "--dump-dom"))
    return parser.attrs


def example_sweep_training(config: Any) -> None:
    """A deterministic stand-in for training: the loss falls towards a floor set by the
    learning rate, optimizer and dropout; a learning rate above 0.15 diverges at the
    second epoch, before the first rung (2), so those runs crash whatever ASHA does."""
    from raysweep.trial.session import log

    lr, hidden = config.optimizer.lr, config.hidden
    floor = (0.15 + 0.12 * (math.log10(lr) + 2.2) ** 2 + 0.2 * config.dropout
             + (0.12 if config.optimizer.name == "sgd" else 0.0))
    for epoch in range(config.epochs):
        if lr > 0.15 and epoch == 1:
            raise RuntimeError(f"loss diverged at epoch {epoch} (lr={lr:.3g})")
        log({"val_loss": floor + 1.5 * math.exp(-0.35 * epoch * (hidden / 64) ** 0.5), "epoch": epoch})


EXAMPLE = {
    "name": "example-mlp", "method": "random", "metric": {"name": "val_loss", "goal": "minimize"},
    "early_terminate": {"type": "hyperband", "min_iter": 2, "eta": 2},
    "parameters": {
        "optimizer": {"parameters": {
            "name": {"values": ["adam", "sgd"]},
            "lr": {"distribution": "log_uniform_values", "min": 1.0e-4, "max": 1.0}}},
        "hidden": {"values": [32, 64, 128]},
        "dropout": {"distribution": "q_uniform", "min": 0.0, "max": 0.5, "q": 0.05},
        "epochs": {"value": 15}},
}


@pytest.mark.integration
def test_report_of_a_real_sweep_draws_every_view_in_chromium(ray_session, tmp_path):
    from raysweep.driver.runner import run

    require_chromium()
    result = run(EXAMPLE, example_sweep_training, count=20, out=tmp_path, seed=7, progress=False)
    runs = load(result.path)
    assert {"finished", "stopped", "crashed"} <= set(run_kind(runs)), runs["state"]
    page = report(result.path)
    status = page_status(page, tmp_path / "profile")
    assert "data-errors" not in status, status["data-errors"]
    assert status.get("data-rendered") == "true", status
    assert set(status["data-drawn"].split(",")) == PLOTS, status
    drawn = dict(item.split(":") for item in status["data-runs"].split(","))
    features = len(importance(result.path))  # 7: lr, dropout and one per category value
    assert drawn == {"parallel": "20", "timeline": "20", "curves": "20", "best": "10",
                     "importance": str(features)}, drawn
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    chromium(page, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1400,3000")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
    # scripts/screenshots copies it to docs/report.png; a test run changes no tracked file


@pytest.mark.parametrize("runs", [[], [({"x": 0.5, "opt": "a"}, [2.0, 1.0], "running")]],
                         ids=["no-runs-yet", "one-run-running"])
def test_report_of_a_starting_sweep_has_no_errors_in_chromium(tmp_path, runs):
    spec = {"method": "random", "metric": {"name": "loss"}, "early_terminate": {
        "type": "hyperband", "min_iter": 1}, "parameters": {
        "x": {"min": 0.0, "max": 1.0}, "opt": {"values": ["a", "b"]}}}
    page = report(write_log(tmp_path, spec, runs, finish=False), tmp_path / "out" / "r.html")
    status = page_status(page, tmp_path / "profile")
    assert "data-errors" not in status, status["data-errors"]
    assert status.get("data-rendered") == "true"
    assert ("curves" in status["data-drawn"]) == bool(runs)
