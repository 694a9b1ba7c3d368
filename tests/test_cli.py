"""The `raysweep` command on bad and hostile input: exit code 2, one clear paragraph, nothing started.

Every broken file of ``tests/data/bad/`` goes through the command's own code
path in this process (fast); a sample of them, and the other refusals, through
a real ``python -m raysweep.cli`` process whose temporary directories are its
own, so a Ray instance it started would leave its session directory there.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import yaml

from raysweep import cli

REPO = Path(__file__).resolve().parents[1]
BAD = REPO / "tests" / "data" / "bad"
EXPECTED: dict[str, dict[str, str]] = yaml.safe_load((BAD / "expected.yml").read_text())
BAD_FILES = sorted(EXPECTED)
#: Files also run through a real process: YAML syntax and tags, a value, files, macros.
SAMPLE = ["syntax_unclosed_list.yaml", "custom_tag.yaml", "min_greater_than_max.yaml",
          "program_missing.yaml", "command_unknown_macro.yaml"]
#: What Ray prints when it starts or joins a cluster, and what raysweep prints then.
RAY_SIGNS = ("Started a local Ray instance", "Connecting to existing Ray cluster", "Ray at ")


def assert_one_paragraph(stderr: str, *pieces: str) -> None:
    """A message without a traceback or blank line that names every piece (file, key path, fix)."""
    text = stderr.strip()
    assert text.startswith("raysweep run: error: "), text
    assert "Traceback" not in text and "\n\n" not in text, text
    for piece in pieces:
        assert piece in text, f"{piece!r} not in {text!r}"


def cli_process(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`python -m raysweep.cli ARGS` from the repository, with temporary directories of its own."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch), "RAY_TMPDIR": str(scratch)}
    env.pop("RAY_ADDRESS", None)
    return subprocess.run([sys.executable, "-m", "raysweep.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def assert_nothing_started(done: subprocess.CompletedProcess[str], tmp_path: Path) -> None:
    """No Ray (no session directory, no banner) and no run log."""
    assert list((tmp_path / "scratch").iterdir()) == []
    assert not (tmp_path / "out").exists()
    assert not any(sign in done.stdout + done.stderr for sign in RAY_SIGNS)


@pytest.mark.parametrize("name", BAD_FILES, ids=BAD_FILES)
def test_bad_input_exits_2_naming_file_key_and_fix(name: str, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # `program:` paths are relative to where raysweep runs
    path = BAD / name
    status = cli.main(["run", str(path), "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert status == cli.EXIT_USAGE
    expected = EXPECTED[name]
    assert_one_paragraph(captured.err, str(path), expected["path"], expected["hint"])
    assert captured.out == ""
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", SAMPLE, ids=SAMPLE)
def test_bad_input_process_exits_2_and_starts_nothing(name: str, tmp_path: Path) -> None:
    path = BAD / name
    done = cli_process(["run", str(path), "--out", str(tmp_path / "out")], tmp_path)
    assert done.returncode == 2, done.stderr
    assert_one_paragraph(done.stderr, str(path), EXPECTED[name]["path"], EXPECTED[name]["hint"])
    assert_nothing_started(done, tmp_path)


def test_python_tags_run_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    sweep = tmp_path / "tagged.yaml"
    sweep.write_text("method: random\n"
                     f"name: !!python/object/apply:os.system ['touch {marker}']\n"
                     f"description: !!python/object/new:pathlib.Path ['{marker}']\n"
                     "parameters:\n  lr: {min: 0.001, max: 0.1}\n")
    done = cli_process(["run", str(sweep), "--out", str(tmp_path / "out")], tmp_path)
    assert done.returncode == 2
    assert_one_paragraph(done.stderr, str(sweep), "line 2", "plain YAML only")
    assert not marker.exists()
    assert_nothing_started(done, tmp_path)


def test_parameter_names_that_are_paths_are_refused(tmp_path: Path) -> None:
    sweep = tmp_path / "escape.yaml"
    sweep.write_text("method: grid\nparameters:\n  a/../../b: {values: [1, 2]}\n")
    done = cli_process(["run", str(sweep), "--out", str(tmp_path / "out")], tmp_path)
    assert done.returncode == 2
    assert_one_paragraph(done.stderr, str(sweep), "parameters.a/../../b", "rename it")
    assert_nothing_started(done, tmp_path)


def test_resume_of_a_directory_that_is_not_a_run_log_starts_no_ray(tmp_path: Path) -> None:
    done = cli_process(["run", "--resume", str(tmp_path)], tmp_path)
    assert done.returncode == 2
    assert_one_paragraph(done.stderr, str(tmp_path), "not a raysweep run log")
    assert_nothing_started(done, tmp_path)


VALID = "method: random\nparameters:\n  lr: {min: 0.001, max: 0.1}\n"


@pytest.mark.parametrize("args, pieces", [
    ([], ["give a sweep file, or --resume DIR"]),
    (["no/such/sweep.yaml"], ["no/such/sweep.yaml", "no such sweep file"]),
    (["{sweep}", "--function", "train"], ["--function train", "write it as module:function"]),
    (["{sweep}", "--function", "no_such_module_x:train"], ["cannot import no_such_module_x"]),
    (["{sweep}", "--function", "json:no_such_fn"], ["json has no function no_such_fn"]),
], ids=["nothing-to-run", "missing-file", "function-without-colon", "function-not-importable",
        "function-missing"])
def test_usage_errors_exit_2_before_anything_starts(args: list[str], pieces: list[str],
                                                    tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                    ) -> None:
    sweep = tmp_path / "valid.yaml"
    sweep.write_text(VALID)
    argv = ["run", *(a.format(sweep=sweep) for a in args), "--out", str(tmp_path / "out")]
    assert cli.main(argv) == cli.EXIT_USAGE
    assert_one_paragraph(capsys.readouterr().err, *pieces)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("verb", [["validate"], ["show"], ["sample", "-n", "2"]], ids=["validate", "show", "sample"])
def test_missing_program_is_a_warning_for_commands_that_do_not_run_it(
        verb: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """W&B's `wandb sweep` accepts a program that is not there; only running needs it (`run` above: exit 2)."""
    monkeypatch.chdir(REPO)
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # cli.main installs its own printer
    assert cli.main([*verb, str(BAD / "program_missing.yaml")]) == 0
    captured = capsys.readouterr()
    assert "warning: program: file 'no_such_dir/train_does_not_exist.py' not found" in captured.err
    assert captured.out.strip() and "error" not in captured.err
