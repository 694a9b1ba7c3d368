"""`raysweep validate`, `show` and `sample`: their texts, and what they do not import.

`validate` runs in editors and pre-commit hooks: it must not pay for Ray,
hyperopt, scikit-learn or scipy.  `show` loads them only for a line that needs
one of their objects.  Checked in a fresh interpreter's ``sys.modules``, not by
timing (the timing is in bench/RESULTS.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from raysweep.search.show import describe_sweep, sample_configs, summary_line
from raysweep.spec.load import load_spec

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("ray", "optuna", "sklearn", "scipy", "pandas", "torch")
CONSTANTS = {"method": "random", "parameters": {"lr": {"value": 0.1}, "opt": {"parameters": {"name": {"value": "adam"}}}}}


def heavy_imports(args: list[str]) -> list[str]:
    """The heavy top-level packages in ``sys.modules`` after ``raysweep`` `args` in a fresh process."""
    code = ("import json, sys\nfrom raysweep import cli\ncode = cli.main(sys.argv[1:])\n"
            f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({list(HEAVY)!r}))))\n"
            "sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=REPO,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("sweep", ["digits_mlp.yaml", "random_all_distributions.yaml", "grid_cnn.yaml"])
def test_validate_imports_no_ray_and_no_numeric_library(sweep: str) -> None:
    assert heavy_imports(["validate", f"configs/{sweep}"]) == []


def test_show_of_a_sweep_that_needs_no_ray_object_imports_no_ray(tmp_path: Path) -> None:
    path = tmp_path / "constants.yaml"
    path.write_text(json.dumps(CONSTANTS))
    assert heavy_imports(["show", str(path)]) == []
    assert "ray" in heavy_imports(["show", "configs/digits_mlp.yaml"])  # Ray domains, GP, ASHA rungs


def test_summary_line_names_method_size_goal_stopping_and_cap() -> None:
    spec = load_spec({"method": "bayes", "name": "demo", "metric": {"name": "acc", "goal": "maximize"},
                      "run_cap": 7, "early_terminate": {"type": "hyperband", "min_iter": 2},
                      "parameters": {"x": {"min": 0.0, "max": 1.0}, "y": {"values": [1, 2]}}})
    assert summary_line(spec) == ("bayes sweep 'demo' over 2 parameters, maximize acc, "
                                  "hyperband early stopping, run_cap 7")
    assert summary_line(load_spec(CONSTANTS)) == "random sweep over 2 parameters"


def test_show_describes_constants_without_a_domain_and_the_default_command() -> None:
    text = describe_sweep(load_spec({**CONSTANTS, "program": "train.py"}))
    assert "  lr: constant 0.1\n  opt:\n    name: constant 'adam'" in text
    assert "searcher:  random\nscheduler: none (no early_terminate)" in text
    assert "runs:      ${env} ${interpreter} ${program} ${args}  (program: train.py)" in text


def test_show_gives_rungs_cut_and_target() -> None:
    spec = load_spec({"method": "random", "metric": {"name": "loss", "target": 0.05},
                      "early_terminate": {"type": "hyperband", "max_iter": 27, "s": 2, "eta": 3, "strict": False},
                      "parameters": {"x": {"min": 0.0, "max": 1.0}}})
    text = describe_sweep(spec)
    assert ("scheduler: ASHA with W&B hyperband rungs at 3, 9 logged values of loss; "
            "keeps the best 1/3 at each rung (best-so-far)") in text
    assert "target:    the sweep ends once a run reaches loss <= 0.05" in text
    assert "  x: uniform: uniform on [0.0, 1.0] -> Ray Float[Uniform] (0.0, 1.0)" in text


def test_sample_stops_where_the_grid_ends_and_fills_constants() -> None:
    spec = load_spec({"method": "grid", "parameters": {"a": {"values": [1, 2, 3]}, "b": {"value": "k"}}})
    assert sample_configs(spec, 5) == [{"a": 1, "b": "k"}, {"a": 2, "b": "k"}, {"a": 3, "b": "k"}]
    assert sample_configs(spec, 2) == [{"a": 1, "b": "k"}, {"a": 2, "b": "k"}]
