"""Multi-node sweeps, storage for --resume, and the cluster launcher config.

The multi-node test runs `tests/cluster_scenario.py` in a child process: a
`ray.cluster_utils.Cluster` needs a Ray of its own, and this session's shared
Ray (`ray_session`) may already be up in this process.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster_scenario import CKPT_EPOCHS, CKPT_READY, EPOCHS, RUNS, WORKERS
from runlog_check import check_runlog
from test_carry import attempts

import raysweep
from raysweep.cli import build_parser
from raysweep.driver.storage import ray_storage

REPO = Path(__file__).resolve().parents[2]
SCENARIO = REPO / "tests" / "cluster_scenario.py"

PROBE_OUTPUT = ["probe start CUDA_VISIBLE_DEVICES=0", *(f"probe epoch {e}" for e in range(EPOCHS))]


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run the multi-node scenario once; its JSON report, its stdout and its run log."""
    out = tmp_path_factory.mktemp("cluster")
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_TMPDIR")}
    proc = subprocess.run([sys.executable, str(SCENARIO), "scenario", str(out)], capture_output=True,
                          text=True, timeout=150, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    log = Path(report["log"])
    records = [json.loads(line) for line in (log / "runs.jsonl").read_text().splitlines()]
    return {**report, "stdout": proc.stdout, "path": log, "records": records}


def _max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one instant (an end and a start at the same instant do not overlap)."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    most = running = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return most


@pytest.mark.integration
def test_driver_prints_the_cluster_and_refuses_trials_no_node_holds(scenario: dict[str, Any]) -> None:
    assert "3 nodes, 4 CPUs, 2 GPUs; up to 4 runs at once (0.5 CPU, 0.5 GPU each)" in scenario["stdout"]
    assert set(scenario["refused"]) == {"3/0", "0.5/2"}
    assert all("2 CPUs/1 GPUs" in message for message in scenario["refused"].values())
    assert "asks for 4 CPUs" in scenario["run_refused"]  # raysweep.run refuses before starting anything
    # On a `ray up` head the autoscaler's node types count: cluster.yaml's GPU worker has 8 CPUs, 1 GPU.
    assert scenario["node_types"] == [[8.0, 1.0]]
    assert scenario["fits_with_autoscaler"] == {"8/1": True, "9/1": False}


@pytest.mark.integration
def test_every_run_is_recorded_once_and_trials_land_on_every_worker(scenario: dict[str, Any]) -> None:
    records = scenario["records"]
    assert scenario["state"] == "finished"
    assert len(records) == RUNS and len({r["id"] for r in records}) == RUNS
    assert {r["state"] for r in records} == {"finished"}
    assert {p.name for p in (scenario["path"] / "runs").iterdir()} == {r["id"] for r in records}
    assert {r["node_ip"] for r in records} == set(WORKERS)
    assert json.loads((scenario["path"] / "sweep.json").read_text())["state"] == "finished"


@pytest.mark.integration
def test_half_a_gpu_per_trial_runs_two_per_gpu_and_never_more(scenario: dict[str, Any]) -> None:
    by_node: dict[str, list[tuple[float, float]]] = {}
    for record in scenario["records"]:
        summary = record["summary"]
        by_node.setdefault(record["node_ip"], []).append((summary["started"], summary["ended"]))
        assert summary["cuda"] == "0"  # the program saw the GPU Ray pinned its trial to
    overlaps = {node: _max_overlap(intervals) for node, intervals in by_node.items()}
    assert overlaps[WORKERS[0]] == 2, overlaps
    assert max(overlaps.values()) == 2, overlaps


@pytest.mark.integration
def test_program_output_from_worker_nodes_reaches_the_driver_run_log(scenario: dict[str, Any]) -> None:
    for record in scenario["records"]:
        output = (scenario["path"] / "runs" / record["id"] / "output.log").read_text()
        assert output.splitlines() == PROBE_OUTPUT, record["id"]  # every line, none twice


@pytest.mark.integration
def test_losing_a_node_retries_its_runs_and_records_the_crashed_attempt(scenario: dict[str, Any]) -> None:
    assert scenario["removed"] and scenario["removed_node_ip"] == WORKERS[-1]
    records = {r["id"]: r for r in scenario["records"]}
    assert scenario["running_on_removed"]
    for run_id in scenario["running_on_removed"]:
        run_dir = scenario["path"] / "runs" / run_id
        meta = json.loads((run_dir / "wandb-metadata.json").read_text())
        first = meta["attempts"][0]
        assert records[run_id]["attempts"] == 2 and records[run_id]["state"] == "finished"
        assert first["state"] == "crashed" and "node" in first["error"] and "died" in first["error"]
        assert records[run_id]["node_ip"] == WORKERS[0]  # the retry ran on the node that was left
        crashed_output = (run_dir / "attempts" / "1" / "output.log").read_text().splitlines()
        assert crashed_output[0] == PROBE_OUTPUT[0] and len(crashed_output) < len(PROBE_OUTPUT)
    retried = {run_id for run_id, r in records.items() if r["attempts"] > 1}
    assert set(scenario["running_on_removed"]) <= retried


def quadratic(config: Any) -> None:
    raysweep.log({"loss": (config.x - 0.5) ** 2})


@pytest.mark.parametrize(("storage", "expected"), [
    (None, "{log}"),
    ("state", "{cwd}/state/{name}"),
    ("~/state", "{home}/state/{name}"),
    ("s3://bucket/sweeps/", "s3://bucket/sweeps/{name}"),
    ("gs://bucket", "gs://bucket/{name}"),
], ids=["default-run-log", "relative", "home", "s3", "gs"])
def test_storage_paths_are_absolute_and_uris_pass_through(storage: str | None, expected: str, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    log = tmp_path / "runs" / "quad-abc12345"
    where = ray_storage(storage, log)
    assert where == expected.format(log=log, cwd=tmp_path, home=Path.home(), name=log.name)


@pytest.mark.integration
def test_storage_holds_rays_experiment_and_resume_needs_only_the_run_log(ray_session: None, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    spec = {"name": "quad", "method": "grid", "metric": {"name": "loss"},
            "parameters": {"x": {"values": [0.0, 0.5, 1.0]}}}
    first = raysweep.run(spec, quadratic, count=2, out="runs", storage="shared", progress=False)
    recorded = json.loads((first.path / "sweep.json").read_text())["ray_experiment_path"]
    assert recorded == str(tmp_path / "shared" / first.path.name / "ray")
    assert Path(recorded, "tuner.pkl").exists() and not (first.path / "ray").exists()
    shutil.rmtree(tmp_path / "shared")  # Ray's state is gone; the run log is the record
    resumed = raysweep.run(None, quadratic, count=1, resume=first.path, storage="shared", progress=False)
    assert resumed.state == "finished" and sorted(resumed.runs["config.x"]) == [0.0, 0.5, 1.0]
    assert json.loads((first.path / "sweep.json").read_text())["ray_experiment_path"] == recorded


def test_cli_retries_lost_runs_twice_and_takes_storage() -> None:
    args = build_parser().parse_args(["run", "sweep.yaml", "--storage", "s3://bucket/sweeps"])
    assert args.max_failures == 2 and args.storage == "s3://bucket/sweeps"


def test_cluster_yaml_passes_rays_autoscaler_validation() -> None:
    from ray.autoscaler._private.commands import prepare_config
    from ray.autoscaler._private.util import validate_config

    config = prepare_config(yaml.safe_load((REPO / "cluster.yaml").read_text()))
    validate_config(config)  # raises on a config `ray up` would reject
    head, workers = config["head_start_ray_commands"], config["worker_start_ray_commands"]
    assert any("--dashboard-host=127.0.0.1" in command for command in head)
    assert not any("0.0.0.0" in command for command in head + workers)
    gpu = [t for t in config["available_node_types"].values() if t["resources"].get("GPU")]
    assert gpu and all(t["min_workers"] == 0 and t["max_workers"] > 0 for t in gpu)
    assert config["available_node_types"][config["head_node_type"]]["resources"] == {"CPU": 0}
    assert all("RAY_AUTH_MODE=token" in command for command in head + workers if "ray start" in command)


def _lost_run(kind: str, out: Path) -> tuple[dict[str, Any], Path]:
    """Run the `kind` checkpoint scenario into `out`; the run whose node was removed, and its run folder."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_TMPDIR")}
    proc = subprocess.run([sys.executable, str(SCENARIO), kind, str(out)], capture_output=True,
                          text=True, timeout=240, env=env, cwd=REPO, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["removed"] and report["state"] == "finished"
    path = Path(report["log"])
    lost = check_runlog(path).records[report["run_on_removed"]]
    assert lost["state"] == "finished" and lost["attempts"] == 2 and lost["node_ip"] != report["removed_node_ip"]
    run_dir = path / "runs" / lost["id"]
    assert json.loads((run_dir / "wandb-metadata.json").read_text())["attempts"][0]["state"] == "crashed"
    return lost, run_dir


@pytest.mark.integration
def test_a_run_whose_node_is_removed_goes_on_from_its_last_checkpoint(tmp_path: Path) -> None:
    """Function mode: `raysweep.log(..., checkpoint=)` each epoch; the node under a run is removed."""
    _, run_dir = _lost_run("checkpoint", tmp_path)
    before, after = attempts(run_dir)
    assert len(before) >= CKPT_READY and {row["start_epoch"] for row in before} == {0}
    assert after[0]["start_epoch"] > 0 and after[0]["epoch"] == after[0]["start_epoch"]  # from its checkpoint
    assert [row["epoch"] for row in after][-1] == CKPT_EPOCHS - 1


@pytest.mark.integration
def test_a_program_run_whose_node_is_removed_goes_on_with_the_folder_it_saved_there(tmp_path: Path) -> None:
    """Program mode with --storage: the program saves each epoch in `wandb.run.dir`; its node is removed."""
    lost, run_dir = _lost_run("carry", tmp_path)
    before, after = attempts(run_dir)
    assert len(before) >= CKPT_READY and not any(row["resumed"] for row in before)
    # The next attempt, on another node and in another folder, found the epoch saved on the lost node.
    assert 0 < after[0]["epoch"] <= before[-1]["epoch"] + 1 and all(row["resumed"] for row in after)
    assert [row["epoch"] for row in after] == list(range(after[0]["epoch"], CKPT_EPOCHS))
    assert len(list((tmp_path / "wandb").glob(f"run-*-{lost['id']}*"))) == 2


@pytest.mark.skipif(importlib.util.find_spec("grpc") is not None, reason="Ray Client is installed here")
def test_a_ray_client_address_without_ray_client_says_what_to_install(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("method: random\nparameters: {x: {values: [1]}}\n")
    done = subprocess.run([str(Path(sys.executable).parent / "raysweep"), "run", str(sweep), "--function", "os:getcwd",
                           "--address", "ray://127.0.0.1:1", "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "pip install 'raysweep[client]'" in done.stderr and "Traceback" not in done.stderr
