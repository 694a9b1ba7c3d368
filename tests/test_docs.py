"""The README and the CLI agree, and every example config works with every inspection verb."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from raysweep.cli import COMMANDS, build_parser, main
from raysweep.search.searchers import grid_points
from raysweep.spec.load import load_spec
from tests.space_check import assert_config_in_space

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
CONFIGS = sorted((REPO / "configs").glob("*.yaml"))


def _subparsers() -> dict[str, object]:
    action = next(a for a in build_parser()._actions if a.dest == "verb")
    return dict(action.choices)


@pytest.mark.parametrize("verb", sorted(COMMANDS))
def test_every_command_has_help_and_is_in_the_readme(verb):
    parser = _subparsers()[verb]
    assert parser.format_help().strip()
    assert f"raysweep {verb}" in README


def test_the_readme_gives_the_two_commands_and_ci_runs_the_test_one():
    assert "bash scripts/demo" in README and "bash scripts/test" in README
    assert "bash scripts/test" in (REPO / ".ci" / "run").read_text()


@pytest.mark.parametrize("config", CONFIGS, ids=[c.name for c in CONFIGS])
def test_every_config_validates_shows_and_samples(config, capsys, monkeypatch):
    monkeypatch.chdir(REPO)  # program paths in the configs are relative to the repository
    assert main(["validate", str(config)]) == 0
    assert capsys.readouterr().out.startswith("valid: ")
    assert main(["show", str(config)]) == 0
    shown = capsys.readouterr().out
    assert "searcher:" in shown and "scheduler:" in shown
    spec = load_spec(config)
    assert main(["sample", str(config), "-n", "3", "--seed", "0"]) == 0
    drawn = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    grid = spec.method == "grid"
    assert len(drawn) == (min(3, len(grid_points(spec))) if grid else 3)
    for sampled in drawn:
        assert_config_in_space(sampled, spec)
    assert main(["sample", str(config), "-n", "3", "--seed", "0"]) == 0
    assert [json.loads(line) for line in capsys.readouterr().out.splitlines()] == drawn  # same seed
    if not grid:
        assert main(["sample", str(config), "-n", "3", "--seed", "1"]) == 0
        assert [json.loads(line) for line in capsys.readouterr().out.splitlines()] != drawn
