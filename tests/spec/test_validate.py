"""The checks of each top-level key: W&B's defaults filled in, each violation at its key with a fix."""

from __future__ import annotations

import pytest

from raysweep.spec.distributions import Categorical, Constant, IntUniform, QUniform, Uniform
from raysweep.spec.sections import Hyperband, Metric, defaults
from raysweep.spec.validate import (check_command, check_early_terminate, check_method, check_metric,
                                    check_run_cap, check_search)
from raysweep.spec.violations import Report


def messages(report: Report) -> list[tuple[str, str]]:
    return [(v.path, v.message) for v in report.violations]


def test_metric_gets_the_defaults_of_the_metric_section() -> None:
    report = Report()
    assert check_metric(report, {"name": "loss", "target": "0.5"}) == {
        "name": "loss", "goal": "minimize", "target": 0.5, "impute": "worst", "impute_while_running": "false"}
    assert defaults(Metric) == {"goal": "minimize", "target": None, "impute": "worst",
                                "impute_while_running": "false"}
    assert report.numeric_fixes == ["metric.target: '0.5' is a string to YAML; write `target: 0.5`"]


@pytest.mark.parametrize(("metric", "path", "words"), [
    ({"goal": "minimize"}, "metric.name", "missing; name the logged value"),
    ({"name": "x", "goal": "min"}, "metric.goal", "'min'"),
    ({"name": "x", "target": "high"}, "metric.target", "must be a number"),
    ({"name": "x", "impute_while_running": False}, "metric.impute_while_running", "quote it"),
    ("loss", "metric", "must be a mapping"),
])
def test_metric_violations(metric: object, path: str, words: str) -> None:
    report = Report()
    assert check_metric(report, metric) is None
    assert any(p == path and words in m for p, m in messages(report)), messages(report)


def test_early_terminate_gets_hyperbands_defaults_and_refuses_no_bands() -> None:
    report = Report()
    assert check_early_terminate(report, {"type": "hyperband", "min_iter": 3}) == {
        **defaults(Hyperband), "min_iter": 3}
    assert defaults(Hyperband) == {"min_iter": None, "max_iter": None, "s": None, "eta": 3, "strict": True}
    assert report.violations == []
    for stop, path in [({"type": "hyperband", "min_iter": 3, "eta": 1}, "early_terminate.eta"),
                       ({"type": "hyperband", "max_iter": 2, "s": 1}, "early_terminate"),
                       ({"type": "hyperband", "min_iter": 3, "strict": "yes"}, "early_terminate.strict")]:
        report = Report()
        assert check_early_terminate(report, stop) is None
        assert [p for p, _ in messages(report)] == [path]


def test_method_run_cap_and_command() -> None:
    report = Report()
    assert check_method(report, "random") == "random" and check_run_cap(report, 3.0) == 3
    assert check_command(report, ["${env}", "python", "${program}"], has_program=True) == [
        "${env}", "python", "${program}"]
    assert report.violations == []
    assert check_method(report, "custom") is None and check_run_cap(report, 0) is None
    check_command(report, ["python", "${program}", "${project}"], has_program=False)
    assert [p for p, _ in messages(report)] == ["method", "run_cap", "command[1]", "command[2]"]


def test_grid_enumerates_only_what_wandbs_grid_does_and_bayes_needs_a_metric_and_a_varying_parameter() -> None:
    flat = {("a",): Categorical((1, 2)), ("b",): IntUniform(1, 3), ("c",): QUniform(0, 1, 0.5),
            ("d",): Constant(1), ("opt", "lr"): Uniform(0, 1)}
    report = Report()
    check_search(report, "grid", flat, has_metric=False)
    assert [p for p, _ in messages(report)] == ["parameters.opt.parameters.lr"]
    report = Report()
    check_search(report, "bayes", {("d",): Constant(1)}, has_metric=False)
    assert [p for p, _ in messages(report)] == ["metric", "parameters"]
