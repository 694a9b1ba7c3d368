"""The README, section by section: each promise of a command, flag, file or behaviour
checked through the real command line (`python -m raysweep.cli` in a process of its
own), real Ray and real processes.

Ray costs seconds to start, so a few CLI runs are shared by many assertions
(module-scoped fixtures). Most runs join the session's Ray with ``--address``
(or ``--address auto`` and ``RAY_ADDRESS``, as a Ray job sees it); the first
starts its own local Ray, which is how the quiet start is checked.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from tests.runlog_check import check_runlog

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
PROGRAMS = REPO / "tests" / "programs"

#: The training module of `--function probe:train`, written into each test's directory.
PROBE = '''
import time
from pathlib import Path

import ray
from ray import tune

import raysweep


def train(config):
    if config.hold:  # wait for the test to let the run go on (it may kill the driver first)
        deadline = time.time() + 120
        while not Path(config.hold).exists() and time.time() < deadline:
            time.sleep(0.05)
    for step in range(3):
        row = {"loss": (config.x - 0.3) ** 2 + 1.0 / (step + 1), "gpus": len(ray.get_gpu_ids())}
        if step < 2:
            raysweep.log(row)
        else:
            tune.report(row)  # README: ray.tune.report works too
'''

SWEEP = """name: readme-probe
method: random
metric: {{name: loss, goal: minimize}}
parameters:
  x: {{min: 0.0, max: 1.0}}
  opt: {{values: [a, b, c]}}
  hold: {{value: "{hold}"}}
"""

BANNER = ("Started a local Ray instance", "View the dashboard", "== Status ==", "Trial status",
          "Current time:", "╭")


def _env(drop: tuple[str, ...] = (), **extra: str) -> dict[str, str]:
    """This process's environment (with the session Ray's RAY_AUTH_MODE), no RAY_ADDRESS unless given."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", *drop)}
    return {**env, **extra}


def cli(cwd: Path, *args: str, env: dict[str, str] | None = None,
        timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "raysweep.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=env or _env(), check=False)


def _ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


def _workdir(tmp: Path, hold: str = "") -> Path:
    (tmp / "probe.py").write_text(PROBE)
    (tmp / "sweep.yaml").write_text(SWEEP.format(hold=hold))
    return tmp


def _log_dir(out: Path) -> Path:
    (path,) = [p for p in out.iterdir() if p.is_dir()]
    return path


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (path / "runs.jsonl").read_text().splitlines()]


def _configs(path: Path) -> list[str]:
    """The runs' configs, as sortable JSON (the order runs start in is Ray's affair)."""
    return sorted(json.dumps(r["config"], sort_keys=True) for r in _records(path))


def _metadata(path: Path, run_id: str) -> dict[str, Any]:
    return json.loads((path / "runs" / run_id / "wandb-metadata.json").read_text())


def _history(path: Path, run_id: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (path / "runs" / run_id / "wandb-history.jsonl").read_text().splitlines()]


def _interval(record: dict[str, Any]) -> tuple[float, float]:
    start = datetime.fromisoformat(record["created_at"].replace("Z", "+00:00")).timestamp()
    return start, start + record["runtime"]


@pytest.fixture(scope="module")
def address(ray_session: None) -> str:
    import ray

    return ray.get_runtime_context().gcs_address


# --- `raysweep run` on a fresh local Ray: quiet start, --function, --seed, --max-concurrent, --report

class _Watch:
    """What the processes under the CLI run listen on and are, sampled while it runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.listening: dict[str, set[tuple[str, int]]] = {}  # command line -> (ip, port) it listens on
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()

    def _poll(self) -> None:
        while not self.done.is_set():
            try:
                children = psutil.Process(self.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                return
            for child in children:
                try:
                    self.listening.setdefault(" ".join(child.cmdline()), set()).update(
                        (c.laddr.ip, c.laddr.port) for c in child.net_connections("inet")
                        if c.status == psutil.CONN_LISTEN)
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
            time.sleep(0.2)


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`run sweep.yaml --function probe:train --seed 7 --count 3 --max-concurrent 1 --report --top 2`."""
    work = _workdir(tmp_path_factory.mktemp("local"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "raysweep.cli", "run", "sweep.yaml", "--function", "probe:train", "--seed", "7",
         "--count", "3", "--max-concurrent", "1", "--report", "--top", "2", "--out", "out"],
        cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    watch = _Watch(proc.pid)
    try:
        stdout, stderr = proc.communicate(timeout=240)
    finally:
        watch.done.set()
        proc.kill()
    assert proc.returncode == 0, stdout[-2000:] + stderr[-3000:]
    return {"work": work, "path": _log_dir(work / "out"), "stdout": stdout, "stderr": stderr, "watch": watch}


def test_local_ray_starts_quietly_without_a_dashboard(local_run: dict[str, Any]) -> None:
    """README, under the hood: no banner or per-trial table, the dashboard not started."""
    printed = local_run["stdout"] + local_run["stderr"]
    assert not [b for b in BANNER if b in printed], printed[-3000:]
    listening = local_run["watch"].listening
    assert any("gcs_server" in c for c in listening), listening  # the sampler saw Ray's processes
    assert not [a for found in listening.values() for a in found if a[1] == 8265], listening
    # Ray keeps a minimal dashboard process for its own bookkeeping: no web UI, only on loopback
    heads = {c: found for c, found in listening.items() if "dashboard/dashboard.py" in c}
    for command, found in heads.items():
        assert "--disable-frontend" in command and "--host=127.0.0.1" in command, command
        assert {ip for ip, _ in found} <= {"127.0.0.1"}, (command, found)


def test_run_prints_the_packing_then_the_results_table(local_run: dict[str, Any]) -> None:
    out = local_run["stdout"]
    assert re.search(r"^Ray at \S+: 1 node, \d+ CPUs, 0 GPUs; up to 1 runs at once \(1 CPU, 0 GPU each\)$",
                     out, re.MULTILINE), out[:500]
    assert f"sweep finished: 3 runs, log in {local_run['path']}" in out
    table = out.split(f"log in {local_run['path']}", 1)[1].split("report:")[0].strip().splitlines()
    assert table[0].split()[:3] == ["run", "state", "loss"] and len(table) == 3  # --top 2: header + 2 rows


def test_function_module_fn_runs_and_tune_report_rows_are_recorded(local_run: dict[str, Any]) -> None:
    path = local_run["path"]
    records = _records(path)
    assert [r["state"] for r in records] == ["finished"] * 3
    for record in records:
        x = record["config"]["x"]
        losses = [row["loss"] for row in _history(path, record["id"])]
        assert losses == pytest.approx([(x - 0.3) ** 2 + 1.0 / (step + 1) for step in range(3)])  # 3rd: tune.report
    check_runlog(path)


def test_seed_draws_what_sample_draws_with_that_seed(local_run: dict[str, Any]) -> None:
    """`raysweep sample` draws by the very searcher a run uses: same seed, same configs."""
    sampled = _ok(cli(local_run["work"], "sample", "sweep.yaml", "-n", "3", "--seed", "7")).stdout
    assert sorted(json.dumps(json.loads(line), sort_keys=True) for line in sampled.splitlines()) == \
        _configs(local_run["path"])


def test_max_concurrent_1_runs_never_overlap(local_run: dict[str, Any]) -> None:
    intervals = sorted(_interval(r) for r in _records(local_run["path"]))
    assert all(later[0] >= earlier[1] for earlier, later in itertools.pairwise(intervals)), intervals


def test_resources_are_recorded_in_each_runs_metadata(local_run: dict[str, Any]) -> None:
    path = local_run["path"]
    for record in _records(path):
        assert _metadata(path, record["id"])["resources"] == {"CPU": 1.0}


def test_report_flag_writes_an_offline_report(local_run: dict[str, Any]) -> None:
    """`--report` writes DIR/report.html; it opens with no network: no URL but SVG's namespace."""
    page = local_run["path"] / "report.html"
    assert f"report: {page}" in local_run["stdout"]
    text = page.read_text()
    assert set(re.findall(r"https?://[^\s\"'<>)]+", text)) <= {"http://www.w3.org/2000/svg"}
    assert not re.search(r"""(?:src|href)\s*=\s*["']?//""", text)
    sweep = json.loads((local_run["path"] / "sweep.json").read_text())
    assert all(f'"{r["id"]}"' in text for r in _records(local_run["path"])) and sweep["state"] == "finished"


# --- runs joining the session's Ray: the same seed again, another seed, resources, agents


@pytest.fixture(scope="module")
def same_seed(address: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The local run's sweep again with `--seed 7`, half a CPU per run."""
    work = _workdir(tmp_path_factory.mktemp("same-seed"))
    proc = _ok(cli(work, "run", "sweep.yaml", "--function", "probe:train", "--seed", "7", "--count", "3",
                   "--cpus-per-trial", "0.5", "--address", address, "--out", "out"))
    return {"path": _log_dir(work / "out"), "stdout": proc.stdout}


def test_same_seed_gives_the_same_configs(local_run: dict[str, Any], same_seed: dict[str, Any]) -> None:
    assert _configs(same_seed["path"]) == _configs(local_run["path"])


def test_cpus_per_trial_packs_and_is_recorded(address: str, same_seed: dict[str, Any]) -> None:
    assert f"Ray at {address}: 1 node, 2 CPUs, 0 GPUs; up to 4 runs at once (0.5 CPU, 0 GPU each)" \
        in same_seed["stdout"]
    for record in _records(same_seed["path"]):
        assert _metadata(same_seed["path"], record["id"])["resources"] == {"CPU": 0.5}


def test_sweep_then_agent_with_address_auto_and_another_seed(address: str, local_run: dict[str, Any],
                                                             tmp_path: Path) -> None:
    """`raysweep sweep` then `raysweep agent ID --address auto` (Ray finds the cluster from
    RAY_ADDRESS, as in a Ray job); `--seed 8` draws other configs than `--seed 7`."""
    work = _workdir(tmp_path)
    sweep_id = _ok(cli(work, "sweep", "sweep.yaml", "--out", "out")).stdout.strip()
    ran = _ok(cli(work, "agent", sweep_id, "--function", "probe:train", "--seed", "8", "--count", "3",
                  "--address", "auto", "--out", "out", env=_env(RAY_ADDRESS=address)))
    assert f"Ray at {address}: 1 node" in ran.stdout
    path = _log_dir(work / "out")
    assert path.name.endswith(sweep_id) and len(_records(path)) == 3
    assert not set(_configs(path)) & set(_configs(local_run["path"]))


def test_a_failed_connection_names_the_address_and_hints_at_token_auth(tmp_path: Path) -> None:
    """README, cluster: Ray 2.60 clusters want a token; the error says how to send one."""
    work = _workdir(tmp_path)
    failed = cli(work, "run", "sweep.yaml", "--function", "probe:train", "--address", "ray://127.0.0.1:1",
                 "--out", "out", env=_env(drop=("RAY_AUTH_MODE",)), timeout=120)
    assert failed.returncode == 2 and "Traceback" not in failed.stderr
    assert "cannot connect to Ray at 'ray://127.0.0.1:1'" in failed.stderr
    assert "RAY_AUTH_MODE=token" in failed.stderr and "~/.ray/auth_token" in failed.stderr
    assert not (work / "out").exists()


def test_no_token_hint_for_a_client_that_sends_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    from raysweep.driver.cluster import _auth_hint

    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    assert _auth_hint("ray://127.0.0.1:1") == ""
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    assert "RAY_AUTH_MODE=token" in _auth_hint("ray://127.0.0.1:1")


# --- program mode: --run-timeout and --kill-grace; results --top/--csv; report


@pytest.fixture(scope="module")
def timed_out(address: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A program that ignores SIGTERM, run with `--run-timeout 2 --kill-grace 1`."""
    work = tmp_path_factory.mktemp("timeout")
    shutil.copy(PROGRAMS / "stubborn_stamps.py", work / "train.py")
    stamps = work / "stamps.txt"
    (work / "sweep.yaml").write_text(yaml.safe_dump({
        "program": "train.py", "method": "grid", "metric": {"name": "loss"},
        "parameters": {"stamps": {"value": str(stamps)}}}))
    proc = _ok(cli(work, "run", "sweep.yaml", "--run-timeout", "2", "--kill-grace", "1", "--address", address,
                   "--out", "out"))
    return {"work": work, "path": _log_dir(work / "out"), "stdout": proc.stdout,
            "stamps": [line.split() for line in stamps.read_text().splitlines()]}


def test_termlog_termwarn_termerror_reach_the_runs_output(timed_out: dict[str, Any]) -> None:
    [record] = _records(timed_out["path"])
    output = (timed_out["path"] / "runs" / record["id"] / "output.log").read_text().splitlines()
    assert output[:3] == ["wandb: a log line", "wandb: WARNING a warning", "wandb: ERROR an error"], output


def test_run_timeout_ends_the_run_crashed_with_the_reason(timed_out: dict[str, Any]) -> None:
    [record] = _records(timed_out["path"])
    assert record["state"] == "crashed"
    assert "timed out after 2 s" in record["error"]
    assert "timed out after 2 s" in timed_out["stdout"]  # the crashed-runs section of the table
    check_runlog(timed_out["path"])


def test_kill_grace_sigkills_a_program_ignoring_sigterm_after_the_grace(timed_out: dict[str, Any]) -> None:
    [record] = _records(timed_out["path"])
    assert record["exit_code"] == -signal.SIGKILL
    stamps = timed_out["stamps"]
    [term] = [float(t) for word, t, _ in stamps if word == "term"]  # one SIGTERM, then SIGKILL
    last_alive = max(float(t) for word, t, _ in stamps if word == "alive")
    first_alive = min(float(t) for word, t, _ in stamps if word == "alive")
    assert 0 < term - first_alive <= 2.0  # --run-timeout 2 (counted from the launch)
    assert 0.9 <= last_alive - term <= 10  # killed about --kill-grace 1 s after SIGTERM (default: 30)
    assert _gone_within(int(stamps[0][2]), seconds=5)  # no process left (README: within a few seconds)


def _gone_within(pid: int, *, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while psutil.pid_exists(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not psutil.pid_exists(pid)


def test_results_top_and_csv_and_report_read_the_run_log(timed_out: dict[str, Any]) -> None:
    work, path = timed_out["work"], timed_out["path"]
    shown = _ok(cli(work, "results", str(path), "--top", "1", "--csv", "runs.csv")).stdout
    [record] = _records(path)
    assert record["name"] in shown and "crashed runs:" in shown
    with open(work / "runs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["id"], r["state"]) for r in rows] == [(record["id"], "crashed")]
    assert {"config.stamps", "summary.loss"} <= set(rows[0])
    written = _ok(cli(work, "report", str(path), "-o", "page.html")).stdout.strip()
    assert work / written == work / "page.html" and record["id"] in (work / "page.html").read_text()


# --- a killed driver: --resume from sweep.json alone; agents restart unended runs; ray-2/


@pytest.fixture(scope="module")
def killed(address: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`run --seed 7 --count 3 --cpus-per-trial 0.5 --max-concurrent 1`, SIGKILLed while its first run waits."""
    base = tmp_path_factory.mktemp("killed")
    hold = base / "go"
    work = _workdir(base, hold=str(hold))
    proc = subprocess.Popen(
        [sys.executable, "-m", "raysweep.cli", "run", "sweep.yaml", "--function", "probe:train", "--seed", "7",
         "--count", "3", "--cpus-per-trial", "0.5", "--max-concurrent", "1", "--address", address,
         "--out", "out"], cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env())
    try:
        deadline = time.time() + 120
        while not list((work / "out").glob("*/runs/*/wandb-metadata.json")):
            assert proc.poll() is None and time.time() < deadline, "the run never started"
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    hold.touch()
    path = _log_dir(work / "out")
    [unended] = check_runlog(path, complete=False).unended
    copies = []
    for name in ("resume-a", "resume-b"):
        (base / name).mkdir()
        copies.append(Path(shutil.copytree(path, base / name / path.name)))
    return {"work": work, "path": path, "unended": unended, "copies": copies, "address": address}


def test_resume_takes_planned_runs_seed_and_resources_from_sweep_json(killed: dict[str, Any]) -> None:
    """`run --resume DIR` with no other flag: 3 runs in all (the cut-off one under its id),
    half a CPU each, one at a time, and the seed 7 (two resumes of one log draw the same)."""
    sweep = json.loads((killed["copies"][0] / "sweep.json").read_text())
    assert (sweep["planned_runs"], sweep["seed"]) == (3, 7)
    assert sweep["resources"] == {"cpus_per_trial": 0.5, "gpus_per_trial": 0.0, "max_concurrent": 1}
    outputs = [_ok(cli(killed["work"], "run", "--resume", str(copy), "--function", "probe:train",
                       "--address", killed["address"])).stdout for copy in killed["copies"]]
    for copy, out in zip(killed["copies"], outputs):
        assert "up to 1 runs at once (0.5 CPU, 0 GPU each)" in out
        log = check_runlog(copy)
        assert len(log.records) == 3 and killed["unended"] in log.records
        assert {r["state"] for r in log.records.values()} == {"finished"}
        assert all(_metadata(copy, i)["resources"] == {"CPU": 0.5} for i in log.records)
        intervals = sorted(_interval(r) for r in log.records.values())
        assert all(b[0] >= a[1] for a, b in itertools.pairwise(intervals))  # --max-concurrent 1 kept
        assert (copy / "ray").is_dir() and (copy / "ray-2").is_dir()  # a later driver: ray-2/
    assert _configs(killed["copies"][0]) == _configs(killed["copies"][1])


def test_an_agent_first_restarts_the_run_an_earlier_driver_left_unended(killed: dict[str, Any]) -> None:
    path, unended = killed["path"], killed["unended"]
    sweep_id = path.name.rsplit("-", 1)[1]
    _ok(cli(killed["work"], "agent", sweep_id, "--function", "probe:train", "--count", "1",
            "--address", killed["address"], "--out", "out"))
    log = check_runlog(path)
    assert list(log.records) == [unended] and log.records[unended]["state"] == "finished"
    assert log.records[unended]["attempts"] == 2 and (path / "runs" / unended / "attempts").is_dir()
    assert (path / "ray-2").is_dir()


# --- GPUs: a Ray that declares two (none are needed to place runs on them)

GPU_DRIVER = """
import sys
import ray
from raysweep.cli import main
ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False)
code = main(["run", "sweep.yaml", "--function", "probe:train", "--count", "2", "--gpus-per-trial", "2",
             "--out", "out"])
print("code", code)
"""


def test_gpus_per_trial_2_gives_each_run_two_gpus(tmp_path: Path) -> None:
    work = _workdir(tmp_path)
    ran = subprocess.run([sys.executable, "-c", GPU_DRIVER], cwd=work, capture_output=True, text=True,
                         timeout=240, env=_env(), check=False)
    assert ran.stdout.strip().splitlines()[-1] == "code 0", ran.stdout[-2000:] + ran.stderr[-3000:]
    assert "2 GPUs; up to 1 runs at once (1 CPU, 2 GPU each)" in ran.stdout
    path = _log_dir(work / "out")
    records = _records(path)
    assert len(records) == 2
    for record in records:
        assert _metadata(path, record["id"])["resources"] == {"CPU": 1.0, "GPU": 2.0}
        assert record["summary"]["gpus"] == 2  # ray.get_gpu_ids() inside the run
    intervals = sorted(_interval(r) for r in records)
    assert intervals[1][0] >= intervals[0][1]  # 2 GPUs hold one such run at a time
