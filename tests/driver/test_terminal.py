"""What a person sees while a sweep runs: in a real terminal (a pty read through `pyte`), in a pipe, with --verbose.

Each test runs the real ``raysweep run`` command on a small program sweep
(``tests/programs/chatty.py``: a stdout and a stderr line per epoch) with its
own temporary directories, so its Ray instance and files are its own.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from terminal import run_in_terminal, screen, screen_lines

REPO = Path(__file__).resolve().parents[2]
PROGRAM = REPO / "tests" / "programs" / "chatty.py"
LRS = [8.0, 4.0, 2.0, 1.0, 0.5]  # best first: later runs are worse and get early-stopped
#: Signs of Ray's own logging: glog lines, its Python log records, worker prefixes, crash banners.
RAY_LOG = re.compile(r"\.cc:\d+|\] [IWE] |\(raylet|\(pid=|\bINFO\b|\bWARNING\b|\*\*\* SIG|PC: @|"
                     r"Started a local Ray|gcs_client|ray\.|Traceback")
pytestmark = pytest.mark.integration


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """A short temporary directory: Ray's socket paths under it must stay within 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="rs-term-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def sweep_dir(tmp_path: Path, *, sleep: float = 0.3, epochs: int = 4) -> Path:
    """A directory with the program and a grid sweep of it, Hyperband on."""
    (tmp_path / "chatty.py").write_text(PROGRAM.read_text())
    (tmp_path / "scratch").mkdir()
    spec = {"program": "chatty.py", "method": "grid", "metric": {"name": "loss", "goal": "minimize"},
            "parameters": {"lr": {"values": LRS}, "epochs": {"value": epochs}, "sleep": {"value": sleep}},
            "early_terminate": {"type": "hyperband", "min_iter": 1, "eta": 2}}
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(spec))
    return tmp_path


def environment(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "TMPDIR": str(tmp_path / "scratch"), "RAY_TMPDIR": str(tmp_path / "scratch"),
           "PYTHONPATH": str(REPO)}
    env.pop("RAY_ADDRESS", None)
    return env


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "raysweep.cli", "run", "sweep.yaml", "--out", "out", *args]


def run_log(tmp_path: Path) -> tuple[dict, list[dict]]:
    """sweep.json and runs.jsonl of the one sweep under ``out``."""
    (path,) = (tmp_path / "out").iterdir()
    runs = [json.loads(line) for line in (path / "runs.jsonl").read_text().splitlines()]
    return json.loads((path / "sweep.json").read_text()), runs


def piped(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command(*args), cwd=tmp_path, env=environment(tmp_path), capture_output=True,
                          text=True, timeout=240, check=False)


def test_live_display_in_an_80_column_terminal(tmp_path: Path) -> None:
    """The bar reaches the number of runs, the best run is named, nothing is wider than 80 columns, no Ray logs."""
    cwd = sweep_dir(tmp_path)
    session = run_in_terminal(command(), cwd=cwd, env=environment(tmp_path), columns=80)
    lines = screen_lines(screen(session.chunks, columns=160))  # wider than the process's terminal
    text = "\n".join(lines)
    assert session.code == 0, text
    sweep, runs = run_log(tmp_path)
    assert len(runs) == len(LRS)
    assert any(re.match(rf"runs .* {len(LRS)}/{len(LRS)} +100%", line) for line in lines), text
    best = sweep["best_run"]["name"]
    assert any(line.startswith(f"best loss={sweep['best_run']['summary']['loss']:.4g} {best}: lr=")
               for line in lines), text
    assert max(len(line) for line in lines) <= 80, text
    assert not [line for line in lines if RAY_LOG.search(line)], text
    assert "stdout line" not in text and "stderr line" not in text  # program output only with --verbose
    for run in runs:  # one line per ended run above the live area
        assert sum(f"] {run['name']} " in line for line in lines) == 1, text
    header = next(i for i, line in enumerate(lines) if re.match(r" *run +state +loss +lr +runtime$", line))
    rows = [line.split() for line in lines[header + 1:] if re.match(r" *\w+-\w+-\d+ ", line)]
    assert [row[0] for row in rows][:1] == [best] and len(rows) == len(LRS)  # rich's table: best first


def test_plain_lines_when_stdout_is_a_pipe(tmp_path: Path) -> None:
    """No escape sequence, each line within 120 columns, one line per ended run."""
    done = piped(sweep_dir(tmp_path, sleep=0.0))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "\x1b" not in done.stdout + done.stderr
    assert max(len(line) for line in lines) <= 120, done.stdout
    _, runs = run_log(tmp_path)
    ended = [line for line in lines if re.match(r"\[\d+/5\] ", line)]
    assert [line.split()[1] for line in ended] == [run["name"] for run in runs], done.stdout
    assert [line.split()[0] for line in ended] == [f"[{i}/5]" for i in range(1, 6)]
    assert done.stderr == ""


def test_verbose_streams_every_line_of_every_program_prefixed_by_run_name(tmp_path: Path) -> None:
    """Every line each program wrote (its output.log, stdout and stderr) reaches the driver's stdout, in order."""
    done = piped(sweep_dir(tmp_path, sleep=0.0, epochs=3), "--verbose")
    assert done.returncode == 0, done.stderr
    (path,) = (tmp_path / "out").iterdir()
    _, runs = run_log(tmp_path)
    for run in runs:
        written = (path / "runs" / run["id"] / "output.log").read_text().splitlines()
        if run["state"] == "finished":  # both streams are there (a stopped run may be cut before)
            assert f"stderr line 1 of lr {run['config']['lr']}" in written
        prefix = f"{run['name']}: "
        shown = [line.removeprefix(prefix) for line in done.stdout.splitlines() if line.startswith(prefix)]
        assert shown == written, done.stdout


def test_sigterm_leaves_no_ray_banner_on_the_terminal(tmp_path: Path) -> None:
    """Ray's native crash banner (``*** SIGTERM received``, ``PC: @ ...``) never reaches the screen.

    The driver drains on SIGTERM (exit 143), so Ray's own handler does not run; whatever Ray's
    native side writes goes to the diverted file, not the terminal.
    """
    cwd = sweep_dir(tmp_path, sleep=1.0, epochs=6)
    session = run_in_terminal(command(), cwd=cwd, env=environment(tmp_path), columns=80,
                              sigterm_when=b"next rung")
    lines = screen_lines(screen(session.chunks, columns=160))
    assert any("next rung" in line for line in lines)  # it was signalled while runs were in flight
    assert not [line for line in lines if RAY_LOG.search(line)], "\n".join(lines)
    assert session.code == 128 + signal.SIGTERM, "\n".join(lines)  # drained, not Ray's abort


def test_quiet_prints_only_the_results_table(tmp_path: Path) -> None:
    done = piped(sweep_dir(tmp_path, sleep=0.0, epochs=2), "--quiet")
    assert done.returncode == 0, done.stderr
    _, runs = run_log(tmp_path)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert lines[0].startswith("sweep finished: 5 runs")
    assert re.match(r" *run +state +loss +lr +runtime$", lines[1])
    assert sorted(line.split()[0] for line in lines[2:]) == sorted(run["name"] for run in runs)


def test_a_token_protected_cluster_refusing_leaves_only_raysweeps_message(tmp_path: Path) -> None:
    """Joining a token-auth head without the token: Ray's gcs_client warnings stay off stderr, raysweep's error shows."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**environment(tmp_path), "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    head = subprocess.Popen(
        [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block", f"--port={port}",
         "--num-cpus=1", "--include-dashboard=false", f"--temp-dir={tmp_path / 'scratch'}",
         "--node-ip-address=127.0.0.1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        cwd = sweep_dir(tmp_path, sleep=0.0)
        time.sleep(5)  # the head's GCS is up
        env = environment(tmp_path)
        env.pop("RAY_AUTH_MODE", None)
        done = subprocess.run(command("--address", f"127.0.0.1:{port}"), cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=240, check=False)
    finally:
        head.terminate()  # --block: the head takes its Ray processes down with it
        head.wait(timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert re.fullmatch(r"raysweep run: error: cannot connect to Ray at '127\.0\.0\.1:\d+': [^\n]*"
                        r"RAY_AUTH_MODE=token[^\n]*\n", done.stderr), done.stderr
    diverted = "".join(p.read_text() for p in (tmp_path / "scratch").glob("raysweep-*-ray.log"))
    assert "gcs_client" in diverted  # Ray did complain, into the file


def test_verbose_streams_output_of_runs_on_other_nodes(tmp_path: Path) -> None:
    """Every run on a worker node of a 3-node cluster: its program's lines reach the driver's stdout, in order."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_TMPDIR")}
    done = subprocess.run([sys.executable, str(REPO / "tests" / "verbose_scenario.py"), str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=240, env=env, cwd=REPO, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    path = Path(json.loads(done.stdout.splitlines()[-1])["log"])
    records = [json.loads(line) for line in (path / "runs.jsonl").read_text().splitlines()]
    assert len(records) == 4 and {r["state"] for r in records} == {"finished"}
    for record in records:
        metadata = json.loads((path / "runs" / record["id"] / "wandb-metadata.json").read_text())
        assert metadata["node_ip"] in ("127.0.0.4", "127.0.0.5")  # not the driver's node
        written = (path / "runs" / record["id"] / "output.log").read_text().splitlines()
        assert len(written) == 6  # 3 epochs, a stdout and a stderr line each
        prefix = f"{record['name']}: "
        assert [line.removeprefix(prefix) for line in done.stdout.splitlines() if line.startswith(prefix)] \
            == written
