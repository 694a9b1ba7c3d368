"""The benchmarks keep working: each `bench/` script's ``--quick`` smoke run, in a subprocess.

Full benchmarks never run here (they take many minutes); a quick run checks
that a script runs end to end, writes its RESULTS.md section and raw data, and
that what it measured is consistent (every run counted, regrets never negative).
The Ray-starting scripts start their own local Ray (private ``RAY_TMPDIR``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_quick(script: str, tmp_path: Path, *extra: str) -> str:
    """Run ``bench/<script> --quick`` into `tmp_path`; return the section it wrote."""
    results = tmp_path / "RESULTS.md"
    proc = subprocess.Popen([sys.executable, str(REPO / "bench" / script), "--quick", "--out",
                             str(tmp_path), "--results", str(results), *extra],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        _, stderr = proc.communicate(timeout=400)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the script's worker processes too
        proc.communicate()
        raise
    assert proc.returncode == 0, stderr[-3000:]
    text = results.read_text()
    name = script.removesuffix(".py")
    assert text.count(f"<!-- {name} -->") == 1 and f"<!-- /{name} -->" in text
    assert "quick smoke run" in text and "- command: `" in text and "load average" in text
    return text


def read(tmp_path: Path, name: str) -> Any:
    return json.loads((tmp_path / name).read_text())


@pytest.mark.integration
def test_overhead_quick(tmp_path: Path) -> None:
    text = run_quick("overhead.py", tmp_path)
    data = read(tmp_path, "overhead.json")
    variants = {r["variant"]: r for r in data["results"]}
    assert sorted(variants) == sorted(["raysweep", "ray_default", "ray_fast", "raysweep_program",
                                       "ray_program_default", "ray_program_fast"])
    for result in variants.values():  # every variant did all the work: runs x steps rows
        assert result["rows"] == result["runs"] * 3 and result["fit_s"] > 0
    assert all(seconds > 0 for seconds in data["breakdown"].values())
    assert "### Program mode" in text and "wandb capture" in text


@pytest.mark.integration
def test_scale_quick(tmp_path: Path) -> None:
    text = run_quick("scale.py", tmp_path, "--runs", "100")  # --quick alone is 300: too long for CI
    data = read(tmp_path, "scale.json")
    assert [s["label"] for s in data["sweeps"]] == ["raysweep", "plain Ray Tune, `reuse_actors=True`"]
    for sweep in data["sweeps"]:
        assert sweep["runs"] == sweep["finished"] == 100 and sweep["peak_rss_mib"] > 50
    assert data["reads"]["rows"] == 100
    assert len(data["times"]["end_run"]) == 100 and len(data["times"]["append_history"]) == 300
    assert "`end_run`" in text and "`raysweep results DIR`" in text


@pytest.mark.integration
def test_early_stopping_quick(tmp_path: Path) -> None:
    text = run_quick("early_stopping.py", tmp_path)
    results = read(tmp_path, "early_stopping.json")["synthetic"]
    full = next(r for r in results if not r["stop"])
    cut = next(r for r in results if r["stop"])
    assert full["epochs"] == full["runs"] * 9 and full["stopped"] == 0
    assert cut["runs"] == full["runs"] and cut["stopped"] > 0
    assert cut["epochs"] <= full["epochs"] - cut["stopped"]  # each stopped run trained fewer epochs
    assert "| synthetic |" in text


def test_search_quality_quick(tmp_path: Path) -> None:
    text = run_quick("search_quality.py", tmp_path)
    curves = read(tmp_path, "search_quality.json")
    assert sorted(curves) == ["branin", "hartmann6", "mixed", "nested", "svm_digits"]
    for by_method in curves.values():
        assert sorted(by_method) == ["optuna GP", "optuna TPE", "raysweep bayes", "raysweep bayes ×4",
                                     "raysweep random", "wandb bayes", "wandb random"]
        for seeds in by_method.values():
            assert len(seeds) == 2
            for curve in seeds:  # best-so-far regret: never negative, never rising
                assert len(curve) == 5 and curve[-1] >= -1e-9
                assert all(b <= a for a, b in zip(curve, curve[1:]))
    assert (tmp_path / "search_quality.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert text.count("target (≤ best Optuna or p > 0.05)") == 5
    assert "| 20 | GP |" in text  # seconds per proposal after 20 ended runs


@pytest.mark.integration
def test_overhead_display_quick(tmp_path: Path) -> None:
    """`overhead.py --display --quick`: raysweep with and without its live display, both counted."""
    results = tmp_path / "RESULTS.md"
    subprocess.run([sys.executable, str(REPO / "bench" / "overhead.py"), "--display", "--quick", "--out",
                    str(tmp_path), "--results", str(results)], cwd=REPO, capture_output=True, text=True,
                   timeout=400, check=True)
    text = results.read_text()
    assert text.count("<!-- overhead-display -->") == 1 and "quick smoke run" in text
    variants = {r["variant"]: r for r in read(tmp_path, "overhead-display.json")}
    assert sorted(variants) == ["raysweep", "raysweep_live"]
    for result in variants.values():
        assert result["rows"] == result["runs"] * 3 and result["driver_cpu_s"] > 0
    assert "`raysweep_live` / `raysweep`, per run" in text


@pytest.mark.integration
def test_drain_quick(tmp_path: Path) -> None:
    run_quick("drain.py", tmp_path)
    results = read(tmp_path, "drain.json")
    assert sorted(r["variant"] for r in results) == ["linger", "prompt"]
    assert all(r["exit"] == 128 + signal.SIGTERM and r["alive_after_5s"] == 0 for r in results)
    linger = next(r for r in results if r["variant"] == "linger")
    assert linger["drain_s"] >= 2  # the lingering programs were given their --kill-grace


def test_many_agents_quick(tmp_path: Path) -> None:
    text = run_quick("many_agents.py", tmp_path)
    curves = read(tmp_path, "many_agents.json")
    assert sorted(curves) == ["branin", "hartmann6"]
    for by_variant in curves.values():
        assert sorted(by_variant) == ["one driver", "two agents, apart", "two agents, shared"]
        for seeds in by_variant.values():
            assert len(seeds) == 2
            for curve in seeds:  # the sweep's runs, both agents' together
                assert len(curve) == 6 and curve[-1] >= -1e-9
                assert all(b <= a for a, b in zip(curve, curve[1:]))
    assert text.count("target (within noise of one driver)") == 2
