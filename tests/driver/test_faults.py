"""Faults during a sweep, end to end: real Ray, real programs, real signals, real disks.

Each case runs a small sweep through `raysweep.run` or the `raysweep` command
(joined to the session's Ray with ``--address``), breaks it the way the world
does, and checks the whole run log afterwards with `runlog_check.check_runlog`.
At the end of the session this module reports how many fault and bad-input
cases ran (`CaseCounter`).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

import raysweep
from raysweep.runlog.log import RunLog, new_sweep_id
from raysweep.driver.runner import Resources, run
from raysweep.spec.load import load_spec
from runlog_check import CheckedLog, check_runlog

REPO = Path(__file__).resolve().parents[2]
PROGRAMS = REPO / "tests" / "programs"
GRID = [0.0, 0.25, 0.5, 0.75]


# --- counting the cases ----------------------------------------------------------------

#: Node-id prefixes of the bad- and hostile-input cases: the corpus, the CLI, the fuzz tests,
#: hostile YAML, argument values and names that look like paths.
BAD_INPUT_TESTS = ("tests/test_cli.py::", "tests/test_spec.py::test_bad_file",
                   "tests/test_spec.py::test_hostile", "tests/test_spec.py::test_fuzz",
                   "tests/test_program.py::test_program_receives_values_byte_for_byte",
                   "tests/test_runlog.py::test_ids_that_could_escape",
                   "tests/test_runlog.py::test_sweep_names_stay",
                   "tests/test_runlog.py::test_run_names_and_config_keys")


class CaseCounter:
    """A pytest plugin: at the end of the session, how many fault and bad/hostile-input cases ran.

    Fault cases are the end-to-end (integration) tests of this module; the lower-level
    ones of the run log and program modules are counted by their own files' totals.
    """

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        counts: dict[str, dict[str, int]] = {"fault": {}, "bad/hostile-input": {}}
        for outcome in ("passed", "failed", "skipped", "error"):
            for report in terminalreporter.stats.get(outcome, []):
                node = getattr(report, "nodeid", "")
                fault = node.startswith("tests/test_faults.py::") and "integration" in getattr(
                    report, "keywords", {})
                kind = "fault" if fault else (
                    "bad/hostile-input" if node.startswith(BAD_INPUT_TESTS) else None)
                if kind and getattr(report, "when", "call") in ("call", "setup"):
                    counts[kind][outcome] = counts[kind].get(outcome, 0) + 1
        corpus = len(list((REPO / "tests" / "data" / "bad").glob("*.yaml")))
        parts = [f"{sum(c.values())} {kind} cases" + (
                     f" ({', '.join(f'{n} {o}' for o, n in c.items())})" if c else "")
                 for kind, c in counts.items()]
        terminalreporter.write_line(f"raysweep reliability: {'; '.join(parts)}; "
                                    f"bad-input corpus: {corpus} files")


@pytest.fixture(scope="session", autouse=True)
def count_cases(request: pytest.FixtureRequest) -> None:
    """Register `CaseCounter` once; it reads every test's report at the end, whatever ran first."""
    manager = request.config.pluginmanager
    if not manager.has_plugin("raysweep-case-counter"):
        manager.register(CaseCounter(), "raysweep-case-counter")


# --- the shared check catches what it is for ---------------------------------------------

def _torn_history(log: RunLog, run_id: str) -> None:
    with (log.run_dir(run_id) / "wandb-history.jsonl").open("a") as history:
        history.write('{"loss": 1, "_st')


def _twice(log: RunLog, run_id: str) -> None:
    runs = log.path / "runs.jsonl"
    runs.write_text(runs.read_text() * 2)


def _bad_line(log: RunLog, run_id: str) -> None:
    with (log.run_dir(run_id) / "wandb-history.jsonl").open("a") as history:
        history.write("not json\n")


def _never_ended(log: RunLog, run_id: str) -> None:
    log.start_run("abcd0000", "late-run-2", {"x": 2}, {})


@pytest.mark.parametrize("damage, complete", [
    (_torn_history, True), (_twice, False), (_bad_line, False), (_never_ended, True)],
    ids=["torn-line-after-a-clean-end", "run-recorded-twice", "history-line-not-json",
         "started-never-ended"])
def test_the_run_log_check_catches_a_broken_log(damage: Callable[[RunLog, str], None],
                                                 complete: bool, tmp_path: Path) -> None:
    spec = load_spec({"method": "random", "metric": {"name": "loss"},
                      "parameters": {"x": {"values": [1, 2]}}})
    log = RunLog.create(tmp_path, spec, new_sweep_id())
    log.start_run("abcd1234", "first-run-1", {"x": 1}, {})
    log.append_history("abcd1234", {"loss": 0.5})
    log.end_run("abcd1234", "finished")
    log.finish("finished")
    assert check_runlog(log.path).records["abcd1234"]["summary"]["loss"] == 0.5
    damage(log, "abcd1234")
    with pytest.raises((AssertionError, ValueError)):
        check_runlog(log.path, complete=complete)


# --- helpers ---------------------------------------------------------------------------

def wait_for(condition: Callable[[], Any], timeout: float = 120, what: str = "condition") -> Any:
    """Poll `condition` until it is true (its value is returned)."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


def pids_in(pidfile: Path) -> list[int]:
    """The pids the test programs wrote to `pidfile` so far."""
    return [int(pid) for pid in pidfile.read_text().split()] if pidfile.exists() else []


def assert_all_gone(pidfile: Path) -> None:
    """Every program the sweep started has exited (the driver's death reaches them in time)."""
    pids = pids_in(pidfile)
    assert pids
    wait_for(lambda: not any(Path(f"/proc/{pid}").exists() and _state(pid) != "Z" for pid in pids),
             timeout=60, what=f"programs {pids} to exit")


def _state(pid: int) -> str:
    """The process state letter of `pid` (``Z`` also for a process that is gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "Z"


def run_log(out: Path) -> Path:
    """The one run-log directory under `out`."""
    (path,) = [p for p in out.iterdir() if p.is_dir()]
    return path


def ended_runs(out: Path) -> list[dict[str, Any]]:
    """The runs.jsonl records of the sweep under `out` so far (none before it exists)."""
    runs = list(out.glob("*/runs.jsonl"))
    lines = runs[0].read_text().split("\n")[:-1] if runs else []  # a line being written: not yet
    return [json.loads(line) for line in lines]


def steady_sweep(tmp_path: Path, name: str, **parameters: Any) -> Path:
    """A grid over `GRID` of tests/programs/steady.py (4 steps), as a sweep file."""
    values = {"steps": 4, "sleep": 0.15, "pidfile": str(tmp_path / "pids"), **parameters}
    config = {"name": name, "method": "grid", "metric": {"name": "loss"},
              "program": str(PROGRAMS / "steady.py"),
              "parameters": {"x": {"values": GRID}, **{k: {"value": v} for k, v in values.items()}}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def driver(args: list[str], cwd: Path, preexec_fn: Callable[[], None] | None = None
           ) -> subprocess.Popen[str]:
    """`raysweep ARGS --address <the session's Ray>`: a sweep's driver in its own process."""
    import ray

    address = ray.get_runtime_context().gcs_address
    return subprocess.Popen([sys.executable, "-m", "raysweep.cli", *args, "--address", address],
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=preexec_fn)


def resume(path: Path, cwd: Path) -> CheckedLog:
    """`raysweep run --resume PATH` to the end; the whole log, checked complete."""
    done = driver(["run", "--resume", str(path)], cwd)
    out, err = done.communicate(timeout=300)
    assert done.returncode == 0, err
    checked = check_runlog(path)
    assert checked.sweep["state"] == "finished"
    return checked


def assert_grid_ran_once(checked: CheckedLog, before: dict[str, dict[str, Any]]) -> None:
    """Each grid point is one finished run; runs that had ended are untouched, none lost."""
    records = checked.records.values()
    assert sorted(r["config"]["x"] for r in records) == GRID
    assert {r["state"] for r in records} == {"finished"}
    for run_id, record in before.items():
        assert checked.records[run_id] == record


def assert_each_attempt_kept_its_output(path: Path, run_ids: frozenset[str]) -> None:
    """Runs restarted by `--resume`: the cut-off attempt's output.log (in attempts/1/) holds its own start
    at most, and the run's output.log begins with the new attempt's first line (tests/programs/steady.py)."""
    for run_id in run_ids:
        earlier = path / "runs" / run_id / "attempts" / "1" / "output.log"
        earlier_starts = earlier.read_text().count("attempt starts") if earlier.exists() else 0
        output = (path / "runs" / run_id / "output.log").read_text()
        assert earlier_starts <= 1 and output.startswith("attempt starts (pid "), (earlier_starts, output)
        assert output.count("attempt starts") == 1, output


# --- function-mode faults: exceptions, NaN, inf, a metric never logged ------------------

def metric_faults(config: Any) -> None:
    """Logs `loss` as its `kind` says for 4 steps: finite, NaN, inf, never, or raises at step 1."""
    values = {"nan": math.nan, "inf": math.inf}
    for step in range(4):
        if config.kind == "raise" and step == 1:
            raise RuntimeError("diverged at step 1")
        loss = values.get(config.kind, config.base + 1.0 / (step + 1))
        raysweep.log({"epoch": step} if config.kind == "never" else {"loss": loss, "epoch": step})


@pytest.fixture(scope="module")
def function_faults(ray_session: None, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """One hyperband grid sweep, one run at a time, over every way a metric can go wrong."""
    spec = {"method": "grid", "metric": {"name": "loss", "goal": "minimize"},
            "early_terminate": {"type": "hyperband", "min_iter": 2, "eta": 3},
            # In this order W&B's cut at rung 2 (keep the best int(n/3) + 1 of n) stops nan and inf.
            "parameters": {"kind": {"values": ["fine", "nan", "fine2", "inf", "never", "raise"]},
                           "base": {"value": 0.5}}}
    result = run(spec, metric_faults, out=tmp_path_factory.mktemp("function"), progress=False,
                 resources=Resources(max_concurrent=1), max_failures=0)
    checked = check_runlog(result.path)
    return SimpleNamespace(result=result, checked=checked,
                           by_kind={r["config"]["kind"]: r for r in checked.records.values()})


@pytest.mark.integration
def test_a_trial_raising_an_exception_is_crashed_and_the_sweep_goes_on(function_faults: SimpleNamespace
                                                                       ) -> None:
    crashed = function_faults.by_kind["raise"]
    assert crashed["state"] == "crashed" and "RuntimeError: diverged at step 1" in crashed["error"]
    assert crashed["summary"]["loss"] == 1.5  # its one logged row is kept
    assert function_faults.result.state == "finished"
    assert len(function_faults.checked.records) == 6


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["nan", "inf"])
def test_nan_and_inf_are_the_worst_value_and_warned(function_faults: SimpleNamespace, kind: str) -> None:
    record = function_faults.by_kind[kind]
    assert record["state"] == "killed" and record["stopped_at_rung"] == 2  # hyperband: worst at rung 2
    assert "NaN or infinite value(s) of the sweep metric 'loss'" in record["warning"]
    history = (function_faults.result.path / "runs" / record["id"] / "wandb-history.jsonl")
    losses = [json.loads(line)["loss"] for line in history.read_text().splitlines()]
    assert len(losses) == 2 and all(not math.isfinite(v) for v in losses)
    assert function_faults.by_kind["fine"]["state"] == "finished"  # the scheduler kept going
    best = function_faults.checked.sweep["best_run"]
    assert best["id"] in (function_faults.by_kind["fine"]["id"], function_faults.by_kind["fine2"]["id"])


@pytest.mark.integration
def test_a_run_that_never_logs_the_metric_is_warned(function_faults: SimpleNamespace) -> None:
    record = function_faults.by_kind["never"]
    assert record["state"] == "finished" and "loss" not in record["summary"]
    assert "never logged the sweep metric 'loss' (it logged: epoch)" in record["warning"]
    assert function_faults.by_kind["fine"]["warning"] is None
    assert list(function_faults.result.runs["warning"].notna()) == [
        r["warning"] is not None for r in function_faults.checked.records.values()]


def nan_below(config: Any) -> None:
    """NaN where x < 0.6: a bayes searcher must learn around it."""
    raysweep.log({"loss": math.nan if config.x < 0.6 else (config.x - 0.8) ** 2})


@pytest.mark.integration
def test_bayes_keeps_searching_past_nan_runs(ray_session: None, tmp_path: Path) -> None:
    spec = {"method": "bayes", "metric": {"name": "loss"},
            "parameters": {"x": {"distribution": "uniform", "min": 0.0, "max": 1.0}}}
    result = run(spec, nan_below, count=8, seed=3, out=tmp_path, progress=False)
    checked = check_runlog(result.path)
    records = list(checked.records.values())
    assert result.state == "finished" and len(records) == 8
    nan_runs = [r for r in records if r["config"]["x"] < 0.6]
    assert nan_runs and all("NaN" in r["warning"] and r["state"] == "finished" for r in nan_runs)
    assert checked.sweep["best_run"]["summary"]["loss"] < 0.16  # a finite run, x >= 0.6


# --- program faults: non-zero exit, abort, hang past the timeout, SIGKILL from outside --

def kill_when_started(pidfile: Path, mode: str, stop: threading.Event) -> None:
    """SIGKILL the program started with ``--mode=<mode>`` as soon as it appears."""
    while not stop.is_set():
        for pid in pids_in(pidfile):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if f"--mode={mode}".encode() in cmdline:
                os.kill(pid, signal.SIGKILL)
                return
        time.sleep(0.05)


@pytest.fixture(scope="module")
def program_faults(ray_session: None, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """One grid sweep of tests/programs/faulty.py over the ways a program dies."""
    tmp_path = tmp_path_factory.mktemp("program")
    pidfile = tmp_path / "pids"
    spec = {"method": "grid", "metric": {"name": "loss"}, "program": str(PROGRAMS / "faulty.py"),
            "parameters": {"mode": {"values": ["ok", "exit3", "abort", "hang", "slow"]},
                           "pidfile": {"value": str(pidfile)}}}
    stop = threading.Event()
    killer = threading.Thread(target=kill_when_started, args=(pidfile, "slow", stop))
    killer.start()
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.chdir(tmp_path)  # the agent's param files go to ./wandb, as with W&B
            result = run(spec, out=tmp_path / "out", progress=False, run_timeout=3,
                         kill_grace=1, max_failures=0)
    finally:
        stop.set()
        killer.join()
    checked = check_runlog(result.path)
    return SimpleNamespace(result=result, checked=checked, pidfile=pidfile,
                           by_mode={r["config"]["mode"]: r for r in checked.records.values()})


@pytest.mark.integration
@pytest.mark.parametrize("mode, state, exit_code, says", [
    ("exit3", "failed", 3, "program exited with code 3"),
    ("abort", "crashed", -6, "killed by signal SIGABRT"),
    ("hang", "crashed", -15, "timed out after 3 s and was killed"),
    ("slow", "crashed", -9, "killed by signal SIGKILL"),
], ids=["exit-non-zero", "abort", "hang-past-run-timeout", "sigkill-from-outside"])
def test_a_dying_program_is_recorded_and_the_sweep_goes_on(program_faults: SimpleNamespace, mode: str,
                                                          state: str, exit_code: int, says: str) -> None:
    record = program_faults.by_mode[mode]
    assert (record["state"], record["exit_code"]) == (state, exit_code)
    assert says in record["error"]
    assert program_faults.by_mode["ok"]["state"] == "finished"
    assert program_faults.result.state == "finished" and len(program_faults.checked.records) == 5
    assert_all_gone(program_faults.pidfile)


# --- hostile names: nothing is written outside the run log ------------------------------

def path_like_keys(config: Any) -> None:
    """Logs metric keys shaped like paths; they are data, never file names."""
    raysweep.log({"loss": config["a.b"], "../../escape": 1, "/abs/x": 2, "train/loss": 3})


@pytest.mark.integration
def test_path_like_names_and_keys_stay_inside_the_run_log(ray_session: None, tmp_path: Path) -> None:
    out = tmp_path / "deep" / "out"
    spec = {"name": "../../evil", "method": "grid", "metric": {"name": "loss"},
            "parameters": {"a.b": {"values": [1, 2]}, "_..": {"value": "../../x"}}}
    result = run(spec, path_like_keys, out=out, progress=False)
    assert result.path.parent == out.resolve() and ".." not in result.path.name
    outside = [p for p in tmp_path.rglob("*") if out not in (p, *p.parents) and p not in out.parents]
    assert outside == []
    checked = check_runlog(result.path)
    assert sorted(r["config"]["a.b"] for r in checked.records.values()) == [1, 2]
    for record in checked.records.values():
        assert record["summary"]["../../escape"] == 1 and record["summary"]["/abs/x"] == 2
        assert record["config"]["_.."] == "../../x"
    assert sorted(p.name for p in result.path.iterdir() if p.is_file()) == [
        "claims.jsonl", "runs.jsonl", "sweep.json", "sweep.lock", "sweep.yaml"]


# --- the driver: Ctrl-C, SIGKILL --------------------------------------------------------

@pytest.mark.integration
def test_ctrl_c_cancels_the_sweep_and_resume_completes_it(ray_session: None, tmp_path: Path) -> None:
    child = driver(["run", str(steady_sweep(tmp_path, "interrupted")), "--out", "out"], tmp_path)
    wait_for(lambda: ended_runs(tmp_path / "out") or child.poll() is not None, what="a run to end")
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=120)
    path = run_log(tmp_path / "out")
    assert child.returncode == 130, err
    assert f"interrupted; resume with `raysweep run --resume {path}`" in err and "Traceback" not in err
    cancelled = check_runlog(path, complete=False)
    assert cancelled.sweep["state"] == "cancelled" and cancelled.records
    assert_all_gone(tmp_path / "pids")
    finished = resume(path, tmp_path)
    assert_grid_ran_once(finished, cancelled.records)
    assert cancelled.unended <= {i for i, r in finished.records.items() if r["attempts"] == 2}
    assert_each_attempt_kept_its_output(path, cancelled.unended)


@pytest.mark.integration
def test_a_killed_driver_leaves_a_readable_log_and_resume_completes_it(ray_session: None,
                                                                      tmp_path: Path) -> None:
    child = driver(["run", str(steady_sweep(tmp_path, "killed")), "--out", "out"], tmp_path)

    def mid_sweep() -> bool:  # a run has ended, and one started after it has logged
        ended = {r["id"] for r in ended_runs(tmp_path / "out")}
        later = [p for p in (tmp_path / "out").glob("*/runs/*/wandb-history.jsonl")
                 if p.parent.name not in ended]
        return child.poll() is not None or (bool(ended) and len(ended) + len(later) >= 3)

    wait_for(mid_sweep, what="the middle of the sweep")
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=60)
    path = run_log(tmp_path / "out")
    killed = check_runlog(path, complete=False)
    assert killed.sweep["state"] == "running" and killed.records and killed.unended
    assert_all_gone(tmp_path / "pids")
    finished = resume(path, tmp_path)
    assert_grid_ran_once(finished, killed.records)
    assert_each_attempt_kept_its_output(path, killed.unended)


# --- the run log's disk: full, read-only ------------------------------------------------

@pytest.mark.integration
def test_a_full_disk_stops_the_sweep_with_a_clear_error_and_resume_completes_it(ray_session: None,
                                                                                 tmp_path: Path) -> None:
    sweep = steady_sweep(tmp_path, "full", fill_disk_under=str(tmp_path / "out"), fill_disk_at=0.5)
    child = driver(["run", str(sweep), "--out", "out"], tmp_path)
    out, err = child.communicate(timeout=300)
    path = run_log(tmp_path / "out")
    assert child.returncode == 2, err
    assert err.startswith("raysweep run: error: cannot write run log file ") and "Traceback" not in err
    assert "wandb-history.jsonl: No space left on device (the disk is full" in err
    assert "raysweep run --resume" in err
    assert_all_gone(tmp_path / "pids")
    for link in path.glob("runs/*/wandb-history.jsonl"):
        if link.is_symlink():
            link.unlink()  # space is freed
    stopped = check_runlog(path, complete=False)
    assert stopped.sweep["state"] == "cancelled" and stopped.records
    finished = resume(path, tmp_path)
    assert_grid_ran_once(finished, stopped.records)


def drop_root_write_access() -> None:
    """In the child, before exec: lose the capabilities that let root ignore permissions."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, from the bounding set
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def set_mode(path: Path, writable: bool) -> None:
    """Make the tree at `path` read-only, or writable again (files may vanish meanwhile)."""
    for item in [path, *path.rglob("*")]:
        with contextlib.suppress(FileNotFoundError):
            if not item.is_symlink():
                item.chmod((0o755 if item.is_dir() else 0o644) if writable else
                           (0o555 if item.is_dir() else 0o444))


@pytest.mark.integration
def test_a_read_only_run_log_stops_the_sweep_with_a_clear_error(ray_session: None, tmp_path: Path) -> None:
    child = driver(["run", str(steady_sweep(tmp_path, "readonly")), "--out", "out"], tmp_path,
                   preexec_fn=drop_root_write_access)
    wait_for(lambda: ended_runs(tmp_path / "out") or child.poll() is not None, what="a run to end")
    path = run_log(tmp_path / "out")
    set_mode(path, writable=False)
    try:
        recorded = (path / "runs.jsonl").read_text()
        out, err = child.communicate(timeout=300)
    finally:
        set_mode(path, writable=True)
    assert child.returncode == 2, err
    assert err.startswith("raysweep run: error: cannot ") and "Traceback" not in err
    assert "run log file" in err and str(path) in err
    assert "Permission denied (make the directory writable for this user or pass --out" in err
    assert (path / "runs.jsonl").read_text() == recorded
    stopped = check_runlog(path, complete=False)
    assert stopped.records and stopped.sweep["state"] == "running"  # sweep.json could not be written
    assert_all_gone(tmp_path / "pids")


FILLER = '''
import raysweep


def train(config):
    for step in range(20):  # about 10 kB of history per run
        raysweep.log({"loss": config.x + 1.0 / (step + 1), **{f"metric_{i:02d}": step * i for i in range(30)}})
'''


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real filesystem of 200 kB (a tmpfs), unmounted afterwards; skipped where mounting is not allowed."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0:
        pytest.skip("a real full disk needs a tmpfs mount, which needs root; "
                    "test_a_full_disk_stops_the_sweep_with_a_clear_error_and_resume_completes_it stands in")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(disk)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()}); "
                    "test_a_full_disk_stops_the_sweep_with_a_clear_error_and_resume_completes_it stands in")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "--lazy", str(disk)], check=False)


@pytest.mark.integration
def test_a_real_full_disk_stops_the_sweep_and_resume_completes_it(ray_session: None, tmp_path: Path,
                                                                  small_disk: Path) -> None:
    """The run log on a 200 kB tmpfs that fills up mid-sweep (about 25 kB a run); Ray's own files elsewhere (--storage)."""
    (tmp_path / "filler.py").write_text(FILLER)
    grid = list(range(16))
    (tmp_path / "fill.yaml").write_text(yaml.safe_dump({
        "name": "fill", "method": "grid", "metric": {"name": "loss"}, "parameters": {"x": {"values": grid}}}))
    child = driver(["run", "fill.yaml", "--function", "filler:train", "--out", str(small_disk),
                    "--storage", str(tmp_path / "ray")], tmp_path)
    out, err = child.communicate(timeout=300)
    assert child.returncode == 2, out[-2000:] + err[-3000:]
    assert err.startswith("raysweep run: error: cannot write run log file ") and "Traceback" not in err
    assert "No space left on device (the disk is full" in err and "raysweep run --resume" in err
    path = run_log(small_disk)
    stopped = check_runlog(path, complete=False)  # every file written so far parses
    assert 0 < len(stopped.records) < len(grid)
    assert stopped.sweep["state"] == "cancelled"
    subprocess.run(["mount", "-o", "remount,size=20m", str(small_disk)], check=True)  # space is freed
    done = driver(["run", "--resume", str(path), "--function", "filler:train"], tmp_path)
    _, err = done.communicate(timeout=300)
    assert done.returncode == 0, err[-3000:]
    finished = check_runlog(path)
    assert finished.sweep["state"] == "finished"
    assert sorted(r["config"]["x"] for r in finished.records.values()) == grid
    assert {r["state"] for r in finished.records.values()} == {"finished"}
    for run_id, record in stopped.records.items():
        assert finished.records[run_id] == record


# --- a function-mode sweep resumed without being told its function -----------------------

SLOW_TRAIN = '''
import time

import raysweep


def train(config):
    for step in range(4):
        time.sleep(0.3)
        raysweep.log({"loss": config["x"] + 1.0 / (step + 1)})
'''


def grid_file(tmp_path: Path, name: str) -> Path:
    """A grid over `GRID` with no program: a sweep for a function."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "method": "grid", "metric": {"name": "loss"},
                                    "parameters": {"x": {"values": GRID}}}))
    return path


@pytest.mark.integration
def test_a_function_sweep_resumes_from_anywhere_with_the_function_it_was_started_with(
        ray_session: None, tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "slow_train.py").write_text(SLOW_TRAIN)
    child = driver(["run", str(grid_file(tmp_path, "named")), "--function", "slow_train:train",
                    "--out", str(tmp_path / "out"), "--max-concurrent", "1"], code)
    wait_for(lambda: ended_runs(tmp_path / "out") or child.poll() is not None, what="a run to end")
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 128 + signal.SIGTERM, err
    path = run_log(tmp_path / "out")
    stopped = check_runlog(path, complete=False)
    assert stopped.sweep["state"] == "cancelled" and 0 < len(stopped.records) < len(GRID)
    assert stopped.sweep["function"] == {"target": "slow_train:train", "directory": str(code)}
    (code / "slow_train.py").rename(code / "elsewhere.py")  # the recorded name no longer imports
    refused = driver(["run", "--resume", str(path)], tmp_path)
    _, err = refused.communicate(timeout=120)
    assert refused.returncode == 2
    assert err.startswith(f"raysweep run: error: the sweep's function slow_train:train (recorded in "
                          f"sweep.json, imported from {code}) no longer imports: cannot import slow_train")
    assert "pass --function module:function" in err and "Traceback" not in err
    assert check_runlog(path, complete=False).sweep == stopped.sweep  # nothing ran, nothing changed
    (code / "elsewhere.py").rename(code / "slow_train.py")
    finished = resume(path, tmp_path)  # another directory, no --function: the recorded one runs
    assert_grid_ran_once(finished, stopped.records)
    assert finished.sweep["function"] == stopped.sweep["function"]


def train_in_python(config: Any) -> None:
    raysweep.log({"loss": config.x})


@pytest.mark.integration
def test_a_sweep_of_a_function_given_in_python_asks_for_it_and_then_remembers_its_name(
        ray_session: None, tmp_path: Path) -> None:
    sweep_id = raysweep.sweep(str(grid_file(tmp_path, "notebook")), out=tmp_path / "out")
    raysweep.agent(sweep_id, function=train_in_python, count=1, out=tmp_path / "out", progress=False)
    path = run_log(tmp_path / "out")
    assert RunLog.open(path).sweep_info()["function"] == {"target": None, "directory": None}
    for args in (["run", "--resume", str(path)], ["agent", sweep_id, "--out", "out"]):
        refused = driver(args, tmp_path)
        _, err = refused.communicate(timeout=120)
        assert refused.returncode == 2, err
        assert err.startswith(f"raysweep {args[0]}: error: this sweep ran a function handed over in Python")
        assert "give it again, as --function module:function" in err and "Traceback" not in err
    (tmp_path / "named.py").write_text("import raysweep\n\n\ndef train(config):\n"
                                       "    raysweep.log({'loss': config['x']})\n")
    named = driver(["run", "--resume", str(path), "--function", "named:train"], tmp_path)
    _, err = named.communicate(timeout=120)
    assert named.returncode == 0, err
    assert RunLog.open(path).sweep_info()["function"] == {"target": "named:train", "directory": str(tmp_path)}
    later = driver(["agent", sweep_id, "--out", "out", "--count", "1"], tmp_path)  # no --function
    _, err = later.communicate(timeout=120)
    assert later.returncode == 0, err
    checked = check_runlog(path)
    assert len(checked.records) == 2 and {r["state"] for r in checked.records.values()} == {"finished"}
