"""The run log: W&B file formats, nothing torn by a kill, errors that say what to do.

Everything runs on the real filesystem; crashes are real SIGKILLs of real child
processes; the callback is driven by real Ray Tune runs on the shared session Ray.
"""

from __future__ import annotations

import errno
import json
import math
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from raysweep.errors import RunLogError
from raysweep.names import check_id, new_id, new_sweep_id, run_id_for, run_name, slug
from raysweep.values import plain
from raysweep.runlog.recorder import RunLogCallback, history_row
from raysweep.runlog.log import COLUMNS, RunLog, load
from raysweep.runlog.rundir import best_record, epoch
from reference import run_reference
from runlog_check import check_runlog

REPO = Path(__file__).resolve().parents[2]
SWEEP_YAML = """\
name: demo
method: random
metric: {name: loss, goal: minimize}
parameters:
  x: {min: 0.0, max: 1.0}
"""
ID = re.compile(r"[a-z0-9]{8}")


def make_spec(name: str | None = "demo", source_text: str | None = SWEEP_YAML) -> Any:
    """The part of a `SweepSpec` that `RunLog.create` reads (spec.py is another module)."""
    return SimpleNamespace(name=name, source=None, source_text=source_text,
                           raw=yaml.safe_load(SWEEP_YAML), method="random",
                           metric=SimpleNamespace(name="loss", goal="minimize"))


def new_log(out: Path, **spec: Any) -> RunLog:
    return RunLog.create(out, make_spec(**spec), new_sweep_id())


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


new_run_id = new_id  # the runs these tests start are not Ray trials


def best_run(source: RunLog | Path, metric: str, goal: str = "minimize") -> dict[str, Any] | None:
    """The ended run that sweep.json's rule ranks best by ``summary[metric]``."""
    log = source if isinstance(source, RunLog) else RunLog.open(source)
    return best_record(log.finished_runs(), metric, goal)


def started(log: RunLog, config: dict[str, Any] | None = None, **metadata: Any) -> str:
    run_id = new_run_id()
    log.start_run(run_id, log.name_for(run_id), config or {"x": 1}, metadata)
    return run_id


# --- ids and names -------------------------------------------------------------------

def test_ids_are_wandb_shaped_and_fresh():
    ids = {new_run_id() for _ in range(500)} | {new_sweep_id() for _ in range(500)}
    assert len(ids) == 1000
    assert all(ID.fullmatch(i) for i in ids)


def test_run_id_for_is_derived_from_sweep_and_trial():
    first = run_id_for("abcd1234", "5f3a1_00001")
    assert ID.fullmatch(first)
    assert first == run_id_for("abcd1234", "5f3a1_00001")
    assert len({first, run_id_for("abcd1234", "5f3a1_00002"),
                run_id_for("zzzz1234", "5f3a1_00001")}) == 3


def test_run_names_are_adjective_noun_index_and_seeded():
    names = [run_name(i, seed="abcd1234") for i in range(1, 51)]
    assert all(re.fullmatch(rf"[a-z]+-[a-z]+-{i}", n) for i, n in enumerate(names, start=1))
    assert names == [run_name(i, seed="abcd1234") for i in range(1, 51)]
    assert names != [run_name(i, seed="other") for i in range(1, 51)]
    assert len({n.rsplit("-", 1)[0] for n in names}) > 30


@pytest.mark.parametrize("bad", ["../x", "..", "a/b", "/etc", ".hidden", "", "a b", "x" * 65,
                                 "a\x00b", "a\\b", "run\n"],
                         ids=["dotdot-slash", "dotdot", "slash", "absolute", "dot", "empty",
                              "space", "too-long", "nul", "backslash", "newline"])
def test_ids_that_could_escape_are_refused(tmp_path, bad):
    log = new_log(tmp_path)
    with pytest.raises(RunLogError, match="not allowed"):
        check_id(bad)
    with pytest.raises(RunLogError):
        log.start_run(bad, "n", {"x": 1}, {})
    with pytest.raises(RunLogError):
        log.append_history(bad, {"loss": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == [log.path.name]
    assert list((log.path / "runs").iterdir()) == []


@pytest.mark.parametrize("name", ["../../escape", "/abs/path", "a/../../b", "..", "ok name!"],
                         ids=["dotdot", "absolute", "inner-dotdot", "only-dots", "spaces"])
def test_sweep_names_stay_one_directory_inside_out(tmp_path, name):
    log = new_log(tmp_path / "out", name=name)
    assert log.path.parent == (tmp_path / "out").resolve()
    assert "/" not in slug(name) and slug(name) not in ("", ".", "..")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_run_names_and_config_keys_with_paths_stay_data(tmp_path):
    log = new_log(tmp_path)
    run_id = new_run_id()
    log.start_run(run_id, "../../name", {"../../x": 1, "a/b": 2}, {})
    log.end_run(run_id, "finished")
    run_dir = log.run_dir(run_id)
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.yaml", "wandb-metadata.json",
                                                         "wandb-summary.json"]
    assert sorted(p.name for p in log.path.iterdir()) == ["runs", "runs.jsonl", "sweep.json",
                                                          "sweep.yaml"]
    assert load(log.path).loc[0, "name"] == "../../name"
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["../../x"]["value"] == 1 and config["a/b"]["value"] == 2


# --- plain values ----------------------------------------------------------------------

def test_plain_turns_numpy_and_containers_into_python():
    value = plain({"f": np.float64(0.5), "i": np.int64(3), "b": np.bool_(True),
                   "a": np.arange(3), "t": (1, 2), 7: {"nested": np.float32(2.0)},
                   "o": Path("/x"), "n": None})
    assert value == {"f": 0.5, "i": 3, "b": True, "a": [0, 1, 2], "t": [1, 2],
                     "7": {"nested": 2.0}, "o": "/x", "n": None}
    assert [type(value[k]) for k in ("f", "i", "b")] == [float, int, bool]
    yaml.safe_dump(value)


def test_nan_and_inf_survive_a_json_round_trip(tmp_path):
    log = new_log(tmp_path)
    run_id = started(log)
    log.append_history(run_id, {"a": float("nan"), "b": np.float64("inf"), "c": -math.inf})
    row = read_jsonl(log.run_dir(run_id) / "wandb-history.jsonl")[0]
    assert math.isnan(row["a"]) and row["b"] == math.inf and row["c"] == -math.inf
    summary = json.loads((log.run_dir(run_id) / "wandb-summary.json").read_text())
    assert math.isnan(summary["a"])


# --- formats ---------------------------------------------------------------------------

def test_create_writes_sweep_yaml_as_given_and_sweep_json(tmp_path):
    log = new_log(tmp_path)
    assert log.path.name == f"demo-{log.sweep_id}"
    assert (log.path / "sweep.yaml").read_text() == SWEEP_YAML
    sweep = json.loads((log.path / "sweep.json").read_text())
    assert sweep["id"] == log.sweep_id and sweep["name"] == "demo"
    assert sweep["method"] == "random" and sweep["state"] == "running"
    assert sweep["metric"] == {"name": "loss", "goal": "minimize"}
    assert {"created_at", "finished_at", "run_count", "best_run",
            "ray_experiment_path"} <= set(sweep)
    with pytest.raises(RunLogError, match="already exists"):
        RunLog.create(tmp_path, make_spec(), log.sweep_id)
    assert RunLog.open(log.path).sweep_id == log.sweep_id


def test_a_run_writes_every_file_in_wandb_format(tmp_path):
    log = new_log(tmp_path)
    config = {"lr": np.float64(0.01), "layers": np.int64(3), "opt": {"name": "adam"}}
    run_id = started(log, config, host="h1", node_ip="10.0.0.1", command=["python", "t.py"])
    for step in range(3):
        log.append_history(run_id, {"loss": 1.0 / (step + 1), "acc": np.float32(step / 4)})
    log.update_summary(run_id, {"best_acc": 0.5})
    log.append_output(run_id, "epoch 1\nepoch 2\n")
    log.end_run(run_id, "finished")
    run_dir = log.run_dir(run_id)

    config_text = (run_dir / "config.yaml").read_text()
    assert config_text.startswith("wandb_version: 1\n")
    assert yaml.safe_load(config_text) == {
        "wandb_version": 1, "lr": {"desc": None, "value": 0.01},
        "layers": {"desc": None, "value": 3}, "opt": {"desc": None, "value": {"name": "adam"}}}

    history = read_jsonl(run_dir / "wandb-history.jsonl")
    assert [row["_step"] for row in history] == [0, 1, 2]
    assert all({"loss", "acc", "_runtime", "_timestamp"} <= set(row) for row in history)
    assert history[-1]["_timestamp"] >= history[0]["_timestamp"] > 1.6e9

    summary = json.loads((run_dir / "wandb-summary.json").read_text())
    assert summary == {**history[-1], "best_acc": 0.5}

    meta = json.loads((run_dir / "wandb-metadata.json").read_text())
    assert meta["host"] == "h1" and meta["node_ip"] == "10.0.0.1"
    assert meta["command"] == ["python", "t.py"] and meta["name"] == log.name_for(run_id)
    assert meta["startedAt"].endswith("Z") and meta["state"] == "finished"
    assert (run_dir / "output.log").read_text() == "epoch 1\nepoch 2\n"

    [record] = read_jsonl(log.path / "runs.jsonl")
    assert record["id"] == run_id and record["state"] == "finished"
    assert record["name"] == meta["name"] and record["created_at"] == meta["startedAt"]
    assert record["config"] == {"lr": 0.01, "layers": 3, "opt": {"name": "adam"}}
    assert record["summary"] == summary and record["runtime"] >= 0
    assert {"early_stopped", "stopped_at_rung", "exit_code", "error"} <= set(record)


def test_wandb_reads_the_config_yaml(tmp_path):
    log = new_log(tmp_path)
    run_id = started(log, {"lr": np.float64(0.5), "opt": {"beta": [0.9, 0.99]}, "s": "a b"})
    path = log.run_dir(run_id) / "config.yaml"
    read = run_reference(f"""
        import json
        from wandb.sdk.lib.config_util import dict_from_config_file
        print(json.dumps(dict_from_config_file({str(path)!r})))
    """)
    assert read == {"lr": 0.5, "opt": {"beta": [0.9, 0.99]}, "s": "a b"}


def test_summary_is_the_last_value_of_each_key_and_explicit_updates(tmp_path):
    log = new_log(tmp_path)
    run_id = started(log)
    log.append_history(run_id, {"loss": 3.0, "acc": 0.1})
    log.update_summary(run_id, {"loss": 0.5, "best": 7})
    log.append_history(run_id, {"loss": 2.0, "_step": 10})
    log.append_history(run_id, {"loss": 1.0})
    assert read_jsonl(log.run_dir(run_id) / "wandb-history.jsonl")[-1]["_step"] == 11
    log.end_run(run_id, "finished")  # a running run's summary file lags by up to SUMMARY_EVERY_S
    summary = json.loads((log.run_dir(run_id) / "wandb-summary.json").read_text())
    assert summary["loss"] == 1.0 and summary["acc"] == 0.1 and summary["best"] == 7
    assert summary["_step"] == 11


@pytest.mark.parametrize("state,kwargs", [
    ("killed", {"stopped_at_rung": 3}),
    ("crashed", {"error": "Traceback\nValueError: boom"}),
    ("failed", {"exit_code": 2, "error": "exit 2"}),
], ids=["early-stopped", "crashed", "failed"])
def test_end_states_are_recorded(tmp_path, state, kwargs):
    log = new_log(tmp_path)
    run_id = started(log)
    log.end_run(run_id, state, **kwargs)
    [record] = log.finished_runs()
    assert record["state"] == state
    assert record["early_stopped"] is ("stopped_at_rung" in kwargs)
    assert all(record[key] == value for key, value in kwargs.items())
    with pytest.raises(ValueError, match="run state"):
        log.end_run(started(log), "stopped")


# --- attempts, restarts, no duplicates ---------------------------------------------------

def test_a_retried_attempt_goes_on_with_the_runs_history_and_summary(tmp_path):
    log = new_log(tmp_path)
    run_id = started(log)
    name = log.name_for(run_id)
    for step in range(3):
        log.append_history(run_id, {"loss": step, "acc": step / 10})
    log.update_summary(run_id, {"best": 0})
    log.append_output(run_id, "first attempt\n")
    log.fail_attempt(run_id, "RayActorError: node died")
    log.start_run(run_id, log.name_for(run_id), {"x": 1}, {})
    log.append_history(run_id, {"loss": 9})
    log.append_history(run_id, {"loss": 7, "_step": 1})  # a step the run has: left out, as W&B does
    log.append_history(run_id, {"loss": 6, "_step": 3})
    log.append_history(run_id, {"loss": 5})
    log.end_run(run_id, "finished")
    run_dir = log.run_dir(run_id)
    rows = read_jsonl(run_dir / "wandb-history.jsonl")
    assert [(r["_step"], r["loss"]) for r in rows] == [(0, 0), (1, 1), (2, 2), (3, 9), (4, 5)]
    assert (run_dir / "attempts" / "1" / "output.log").read_text() == "first attempt\n"
    assert (run_dir / "output.log").read_text().splitlines() == [
        "wandb: WARNING Tried to log to step 1 that is less than the current step 4. Steps must be "
        "monotonically increasing, so this data will be ignored."]  # once per attempt
    assert json.loads((run_dir / "attempts" / "1" / "wandb-summary.json").read_text())["loss"] == 2
    meta = json.loads((run_dir / "wandb-metadata.json").read_text())
    assert meta["name"] == name and meta["attempt"] == 2
    assert [(a["state"], a["error"], a["first_step"], a["last_step"]) for a in meta["attempts"]] == [
        ("crashed", "RayActorError: node died", 0, 2)]
    [record] = log.finished_runs()
    assert record["attempts"] == 2  # the summary is the whole run's: later keys win, earlier ones stay
    assert {k: record["summary"][k] for k in ("loss", "acc", "best", "_step")} == {
        "loss": 5, "acc": 0.2, "best": 0, "_step": 4}
    assert log.history(run_id) == rows


def test_a_resumed_runs_runtime_counts_its_attempts_and_not_the_wait_between(tmp_path):
    log = new_log(tmp_path)
    run_id = started(log)
    time.sleep(0.3)
    log.append_history(run_id, {"loss": 1.0, "_runtime": 0.3})  # the attempt's own clock
    log.fail_attempt(run_id, "RayActorError: node died")
    log.start_run(run_id, log.name_for(run_id), {"x": 1}, {})
    time.sleep(0.2)
    log.append_history(run_id, {"loss": 0.5, "_runtime": 0.2})
    stopped = time.time()  # the driver is killed; --resume comes a while later
    time.sleep(1.0)
    resumed = RunLog.open(log.path)
    resumed.start_run(run_id, resumed.name_for(run_id), {"x": 1}, {})
    resumed.append_history(run_id, {"loss": 0.25})
    resumed.end_run(run_id, "finished")
    meta = json.loads((log.run_dir(run_id) / "wandb-metadata.json").read_text())
    first, second = (epoch(a["endedAt"]) - epoch(a["startedAt"]) for a in meta["attempts"])
    assert first >= 0.3 and 0.2 <= second < stopped + 0.05 - epoch(meta["attempts"][1]["startedAt"])
    assert epoch(meta["attempts"][1]["endedAt"]) < stopped + 0.05  # its last write, not the resume
    [record] = check_runlog(log.path).records.values()  # runtime >= every attempt's, added up
    assert record["runtime"] == meta["runtime"] < first + second + 0.5  # not the second's wait
    rows = log.history(run_id)
    assert rows[0]["_runtime"] == 0.3 and rows[1]["_runtime"] == pytest.approx(first + 0.2)
    assert first + second <= rows[2]["_runtime"] <= record["runtime"]  # goes on, as W&B's resumed run's
    assert record["summary"]["_runtime"] == rows[2]["_runtime"]


def test_an_attempt_that_counts_its_steps_from_zero_goes_on_after_the_runs_last_step(tmp_path):
    log = new_log(tmp_path)
    run_id = started(log)
    for step in range(3):
        log.append_history(run_id, {"_step": step, "loss": 3 - step})
    log.fail_attempt(run_id, "RayActorError: node died")
    log.start_run(run_id, log.name_for(run_id), {"x": 1}, {})  # on a node without the run log
    for step in (0, 1, 1, 2):
        log.append_history(run_id, {"_step": step, "loss": 10 + step})
    log.end_run(run_id, "finished")
    rows = log.history(run_id)
    assert [(r["_step"], r["loss"]) for r in rows] == [(0, 3), (1, 2), (2, 1), (3, 10), (4, 11), (5, 12)]
    assert "Tried to log to step 4 that is less than the current step 5" in (
        log.run_dir(run_id) / "output.log").read_text()


def test_a_resumed_runs_nan_values_count_across_its_attempts(tmp_path):
    log = new_log(tmp_path)
    run_id = started(log)
    log.append_history(run_id, {"loss": math.nan})
    log.fail_attempt(run_id, "lost")
    log.start_run(run_id, log.name_for(run_id), {"x": 1}, {})
    log.append_history(run_id, {"loss": math.inf})
    log.end_run(run_id, "finished")
    [record] = log.finished_runs()
    assert record["warning"].startswith("logged 2 NaN or infinite value(s)")


def test_a_run_restarted_after_the_driver_died_is_not_duplicated(tmp_path):
    first = new_log(tmp_path)
    run_id = started(first)
    first.append_history(run_id, {"loss": 1})
    done = started(first)
    first.end_run(done, "finished")
    again = RunLog.open(first.path)  # a new driver, as after `raysweep run --resume`
    for rid in (run_id, done):
        again.start_run(rid, again.name_for(rid), {"x": 1}, {})
        again.append_history(rid, {"loss": 2})
        again.end_run(rid, "finished")
    records = read_jsonl(first.path / "runs.jsonl")
    assert sorted(r["id"] for r in records) == sorted([run_id, done])
    assert [row["_step"] for row in again.history(run_id)] == [0, 1]  # after the cut-off attempt's
    assert all(r["summary"]["loss"] == 2 and r["attempts"] == 2 for r in records)
    states = {rid: json.loads((again.run_dir(rid) / "wandb-metadata.json").read_text())
              ["attempts"][0]["state"] for rid in (run_id, done)}
    assert states == {run_id: "crashed", done: "finished"}


def test_finish_records_state_best_run_and_runs_lost_in_flight(tmp_path):
    log = new_log(tmp_path)
    losses = {"a": 0.3, "b": float("nan"), "c": 0.1, "d": math.inf}
    ids = {}
    for key, loss in losses.items():
        ids[key] = started(log)
        log.append_history(ids[key], {"loss": loss})
        log.end_run(ids[key], "finished")
    lost = started(log)
    assert json.loads((log.path / "sweep.json").read_text())["best_run"]["id"] == ids["c"]
    log.finish("cancelled")
    assert load(log.path).set_index("id").loc[lost, "state"] == "running"
    log.finish("finished", ray_experiment_path="/x/ray")
    sweep = json.loads((log.path / "sweep.json").read_text())
    assert sweep["state"] == "finished" and sweep["finished_at"] and sweep["run_count"] == 5
    assert sweep["best_run"] == {"id": ids["c"], "name": log.name_for(ids["c"]),
                                 "summary": {"loss": 0.1}}
    assert sweep["ray_experiment_path"] == "/x/ray"
    assert load(log.path).set_index("id").loc[lost, "state"] == "crashed"
    assert best_run(log.path, "loss", "maximize")["id"] == ids["a"]
    assert best_run(log, "missing", "minimize") is None


# --- load ------------------------------------------------------------------------------

def test_load_gives_one_row_per_run_with_dotted_columns(tmp_path):
    log = new_log(tmp_path)
    assert list(load(log.path).columns) == COLUMNS
    ended = started(log, {"lr": 0.1, "opt": {"name": "adam", "beta": 0.9}})
    log.append_history(ended, {"loss": 0.5, "val": {"acc": 0.8}})
    log.end_run(ended, "killed", stopped_at_rung=1)
    running = started(log, {"lr": 0.2, "opt": {"name": "sgd", "beta": 0.0}})
    log.append_history(running, {"loss": 0.7})
    frame = load(log.path)
    assert list(frame.columns[:len(COLUMNS)]) == COLUMNS
    assert {"config.lr", "config.opt.name", "config.opt.beta", "summary.loss",
            "summary.val.acc", "summary._step", "summary._runtime"} <= set(frame.columns)
    assert list(frame["id"]) == [ended, running]
    assert list(frame["state"]) == ["killed", "running"]
    assert list(frame["config.opt.name"]) == ["adam", "sgd"]
    assert frame.loc[0, "stopped_at_rung"] == 1 and bool(frame.loc[0, "early_stopped"])
    assert isinstance(frame.loc[0, "created_at"], pd.Timestamp)
    with pytest.raises(RunLogError, match="not a raysweep run log"):
        load(tmp_path)


# --- nothing torn ----------------------------------------------------------------------

def test_whole_file_replacement_is_atomic_for_readers(tmp_path):
    log = new_log(tmp_path)
    run_id = started(log)
    path = log.run_dir(run_id) / "wandb-summary.json"
    log.update_summary(run_id, {"v": 0})
    stop = threading.Event()
    reads: list[int] = []

    def reader() -> None:
        while not stop.is_set():
            reads.append(json.loads(path.read_text())["v"])

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(1, 150):
            log.update_summary(run_id, {"v": i, "pad": "x" * 400_000})
    finally:
        stop.set()
        thread.join()
    assert len(reads) > 10 and reads == sorted(reads)


def test_a_torn_line_is_ignored_by_readers_and_cut_by_the_next_append(tmp_path):
    log = new_log(tmp_path)
    run_id = started(log)
    log.append_history(run_id, {"loss": 1})
    history = log.run_dir(run_id) / "wandb-history.jsonl"
    with history.open("a") as f:
        f.write('{"loss": 2, "_st')  # what a crash in the middle of a write leaves
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load(log.path).loc[0, "summary.loss"] == 1
    RunLog.open(log.path).append_history(run_id, {"loss": 3})
    assert [row["loss"] for row in read_jsonl(history)] == [1, 3]


_WRITER = """
import random, sys
sys.path.insert(0, sys.argv[2])
from raysweep.names import new_id as new_run_id
from raysweep.runlog.log import RunLog
log = RunLog.open(sys.argv[1])
rng = random.Random()
print("ready", flush=True)
while True:
    run_id = new_run_id()
    log.start_run(run_id, log.name_for(run_id), {"x": rng.random(), "pad": "c" * 20000}, {})
    for step in range(10):
        log.append_history(run_id, {"loss": rng.random(), "pad": "h" * rng.randint(0, 300000)})
        log.update_summary(run_id, {"best": step, "pad": "s" * 100000})
        log.append_output(run_id, "output line\\n" * 50)
    log.end_run(run_id, rng.choice(["finished", "crashed", "killed"]))
"""


def assert_whole(path: Path) -> int:
    """Every file of the run log parses; every complete line parses; no run twice."""
    json.loads((path / "sweep.json").read_text())
    for run_dir in (path / "runs").iterdir():
        if not (run_dir / "wandb-metadata.json").exists():
            continue  # killed before its start was complete: not a run yet
        for name in ("wandb-metadata.json", "wandb-summary.json"):
            if (run_dir / name).exists():
                json.loads((run_dir / name).read_text())
        yaml.safe_load((run_dir / "config.yaml").read_text())
        if (run_dir / "wandb-history.jsonl").exists():
            for line in (run_dir / "wandb-history.jsonl").read_text().split("\n")[:-1]:
                json.loads(line)
    records = [json.loads(line) for line in
               (path / "runs.jsonl").read_text().split("\n")[:-1]] if (
        path / "runs.jsonl").exists() else []
    assert len({r["id"] for r in records}) == len(records)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frame = load(path)
    assert (frame["state"] != "running").sum() == len(records)
    return len(records)


def test_a_writer_killed_mid_write_leaves_a_readable_log(tmp_path):
    log = new_log(tmp_path)
    rng = random.Random(8)
    ended = []
    for _ in range(3):
        child = subprocess.Popen([sys.executable, "-c", _WRITER, str(log.path), str(REPO)],
                                 stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline() == "ready\n"
        time.sleep(rng.uniform(0.2, 0.8))
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
        ended.append(assert_whole(log.path))
    assert ended == sorted(ended) and ended[-1] > 0


_ATTEMPT = """
import os, random, signal, sys, time
sys.path.insert(0, sys.argv[2])
from raysweep.runlog.log import RunLog
from raysweep.trial.attempt import last_step
log, run_id, steps, tear = RunLog.open(sys.argv[1]), sys.argv[3], int(sys.argv[4]), sys.argv[5] == "tear"
log.start_run(run_id, log.name_for(run_id), {"x": 1}, {})
run_dir = log.run_dir(run_id)
first = last_step(run_dir) + 1  # what the attempt's trial reads: where its steps go on
print("ready", flush=True)
rng = random.Random()
for step in range(first, steps):
    if tear and step == first + 2:  # killed in the middle of writing a row
        fd = os.open(run_dir / "wandb-history.jsonl", os.O_WRONLY | os.O_APPEND)
        os.write(fd, b'{"_step": %d, "loss": 0.5, "pa' % step)
        os.kill(os.getpid(), signal.SIGKILL)
    log.append_history(run_id, {"_step": step, "loss": 1 / (step + 1), "pad": "h" * rng.randint(0, 200000)})
    time.sleep(0.01)
log.end_run(run_id, "finished")
print("done", flush=True)
"""


def test_attempts_killed_anywhere_leave_one_history_with_each_step_once(tmp_path):
    """Real processes, each one attempt of a run, SIGKILLed at random or mid-row; the last one ends it."""
    log = new_log(tmp_path)
    run_id, steps, rng = new_run_id(), 100, random.Random(14)
    plan = ["tear", "kill", "kill", "tear", "kill", "kill", "end"]
    for how in plan:
        child = subprocess.Popen([sys.executable, "-c", _ATTEMPT, str(log.path), str(REPO), run_id,
                                  str(steps), "tear" if how == "tear" else "-"], stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline() == "ready\n"
        if how == "kill":
            time.sleep(rng.uniform(0.0, 0.3))
            child.send_signal(signal.SIGKILL)
        out, _ = child.communicate(timeout=60)
        assert (child.returncode, out) == ((0, "done\n") if how == "end" else (-signal.SIGKILL, ""))
    history = log.run_dir(run_id) / "wandb-history.jsonl"
    assert history.read_bytes().endswith(b"\n")
    rows = read_jsonl(history)
    assert [row["_step"] for row in rows] == list(range(steps))  # each once, in order, none torn or glued
    assert all(row["loss"] == 1 / (row["_step"] + 1) for row in rows)
    checked = check_runlog(log.path)
    assert checked.records[run_id]["attempts"] == len(plan)
    meta = json.loads((log.run_dir(run_id) / "wandb-metadata.json").read_text())
    ranges = [(a["first_step"], a["last_step"]) for a in meta["attempts"] if a["first_step"] is not None]
    assert ranges[0][0] == 0 and all(b[0] == a[1] + 1 for a, b in zip(ranges, ranges[1:]))
    assert all(a["state"] == "crashed" and a["error"].startswith("interrupted") for a in meta["attempts"])


# --- disks that refuse writes ------------------------------------------------------------

def test_a_full_disk_is_a_run_log_error_naming_the_file(tmp_path):
    log = new_log(tmp_path)
    run_id = started(log)
    history = log.run_dir(run_id) / "wandb-history.jsonl"
    history.symlink_to("/dev/full")  # every write to it fails with ENOSPC
    with pytest.raises(RunLogError, match=r"wandb-history\.jsonl.*disk is full") as caught:
        log.append_history(run_id, {"loss": 1})
    assert caught.value.__cause__.errno == errno.ENOSPC


_READ_ONLY_WRITER = """
import ctypes, json, sys
sys.path.insert(0, sys.argv[2])
# Root writes anywhere: drop the capabilities that let it, so permissions apply.
libc = ctypes.CDLL(None, use_errno=True)
class Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]
class Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]
header, data = Header(0x20080522, 0), (Data * 2)()
assert libc.capget(ctypes.byref(header), data) == 0
for name in ("effective", "permitted", "inheritable"):
    setattr(data[0], name, getattr(data[0], name) & ~0b110)  # DAC_OVERRIDE, DAC_READ_SEARCH
assert libc.capset(ctypes.byref(header), data) == 0
from raysweep.errors import RunLogError
from raysweep.runlog.log import RunLog
log = RunLog.open(sys.argv[1])
run_id = sys.argv[3]
messages = {}
for what, write in [
    ("history", lambda: log.append_history(run_id, {"loss": 1})),
    ("summary", lambda: log.update_summary(run_id, {"loss": 1})),
    ("new run", lambda: log.start_run("abcd0000", "n", {}, {})),
    ("cancel", lambda: log.finish("cancelled")),
]:
    try:
        write()
        messages[what] = None
    except RunLogError as exc:
        messages[what] = str(exc)
print(json.dumps(messages))
"""


def test_a_read_only_directory_is_a_run_log_error_naming_the_file():
    base = Path(tempfile.mkdtemp())
    try:
        log = new_log(base)
        run_id = started(log)
        log.append_history(run_id, {"loss": 0})
        for path in [log.path, *log.path.rglob("*")]:
            path.chmod(0o555 if path.is_dir() else 0o444)
        out = subprocess.run([sys.executable, "-c", _READ_ONLY_WRITER, str(log.path), str(REPO),
                              run_id], capture_output=True, text=True, check=True).stdout
        messages = json.loads(out)
    finally:
        for path in [base, *base.rglob("*")]:
            path.chmod(0o755)
        subprocess.run(["rm", "-rf", str(base)], check=True)
    expected = {"history": "wandb-history.jsonl", "summary": "wandb-summary.json",
                "new run": "abcd0000", "cancel": "sweep.json"}
    for what, file in expected.items():
        assert messages[what] is not None, f"{what} was written to a read-only directory"
        assert file in messages[what] and "Permission denied (make the directory" in messages[what]


# --- the Ray Tune callback, on real Ray ---------------------------------------------------

def test_history_rows_drop_rays_keys_and_number_plain_reports():
    result = {"loss": 0.5, "acc": 1, "training_iteration": 3, "time_total_s": 2.5,
              "timestamp": 1, "done": False, "config": {"x": 1}, "trial_id": "t", "pid": 9,
              "hostname": "h", "node_ip": "ip", "date": "d", "_raysweep": {"history": True},
              "_raysweep_stopped_at_rung": 3, "time_this_iter_s": 1, "experiment_tag": "e",
              "iterations_since_restore": 3, "time_since_restore": 2.5,
              "checkpoint_dir_name": None, "should_checkpoint": False}
    assert history_row(result) == {"loss": 0.5, "acc": 1, "_step": 2, "_runtime": 2.5}
    assert history_row({**result, "_step": 7, "_runtime": 1.0})["_step"] == 7


def sweep_trainable(marker: Path) -> Any:
    """One trial per outcome the run log records, chosen by ``config["x"]``.

    Made by a factory so Ray pickles it by value: its workers cannot import this file.
    """

    def sweep_trial(config: dict[str, Any]) -> None:
        from ray import tune

        from raysweep.trial import session
        from raysweep.trial.child import ProgramFailed

        x = config["x"]
        if x == 1:  # plain Ray reporting: no _step
            for i in range(3):
                tune.report({"loss": float(10 - i)})
            return
        for i in range(4):
            session.log({"loss": x + 1 / (i + 1), "epoch": i})
            if x == 2 and marker.exists():  # the retry: a program exiting with code 3
                raise ProgramFailed(3, ["Traceback (most recent call last):", "OSError: x"])
            if x == 2:
                marker.touch()
                raise ValueError("the first attempt of x=2 fails after its first step")
        session.report_row(None, summary={"best_loss": x})

    return sweep_trial


def stop_x4(trial_id: str, result: dict[str, Any]) -> bool:
    return result["config"]["x"] == 4 and result["training_iteration"] >= 2


def stops_x3() -> Any:
    from ray.tune.schedulers import FIFOScheduler, TrialScheduler

    class StopX3AtRung2(FIFOScheduler):
        """Stops x=3 at its 2nd result and tells at which rung, as raysweep's hyperband does."""

        def __init__(self) -> None:
            super().__init__()
            self.rungs: dict[str, int] = {}

        def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
            if trial.config["x"] == 3 and result["training_iteration"] == 2:
                self.rungs[trial.trial_id] = 2
                return TrialScheduler.STOP
            return TrialScheduler.CONTINUE

        def stopped_at_rung(self, trial_id: str) -> int | None:
            return self.rungs.get(trial_id)

    return StopX3AtRung2()


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory, ray_session: None) -> Any:
    """One real Ray Tune run of `sweep_trainable` recorded by the callback."""
    from ray import tune

    tmp_path = tmp_path_factory.mktemp("outcomes")
    log = new_log(tmp_path / "out")
    scheduler = stops_x3()
    tuner = tune.Tuner(
        sweep_trainable(tmp_path / "marker"),
        param_space={"x": tune.grid_search(list(range(5))), "opt": {"lr": 0.1},
                     "scale": np.float64(0.25)},
        tune_config=tune.TuneConfig(reuse_actors=True, scheduler=scheduler),
        run_config=tune.RunConfig(
            storage_path=str(tmp_path / "ray"), name="exp", verbose=0, stop=stop_x4,
            callbacks=[RunLogCallback(log, scheduler.stopped_at_rung)],
            failure_config=tune.FailureConfig(max_failures=1)))
    grid = tuner.fit()
    log.finish("finished")
    runs = {r["config"]["x"]: r for r in read_jsonl(log.path / "runs.jsonl")}
    return SimpleNamespace(log=log, runs=runs,
                           trial_ids={r.config["x"]: r.metrics["trial_id"] for r in grid})


@pytest.mark.integration
def test_every_trial_becomes_one_run_with_its_end_state(outcomes):
    runs = outcomes.runs
    assert sorted(runs) == list(range(5))
    assert {x: runs[x]["id"] for x in runs} == {
        x: run_id_for(outcomes.log.sweep_id, t) for x, t in outcomes.trial_ids.items()}
    outcome = {x: (r["state"], r["early_stopped"], r["stopped_at_rung"], r["attempts"])
               for x, r in runs.items()}
    assert outcome == {0: ("finished", False, None, 1), 1: ("finished", False, None, 1),
                       2: ("failed", False, None, 2), 3: ("killed", True, 2, 1),
                       4: ("killed", True, None, 1)}
    assert runs[2]["exit_code"] == 3 and "program exited with code 3" in runs[2]["error"]
    assert runs[2]["error"].endswith("OSError: x") and "\x1b" not in runs[2]["error"]
    assert runs[0]["summary"]["loss"] == 0.25 and runs[0]["summary"]["best_loss"] == 0
    assert runs[1]["summary"]["loss"] == 8.0


@pytest.mark.integration
def test_each_result_is_one_history_line_and_a_retry_logs_no_step_twice(outcomes):
    def history(x: int) -> list[dict[str, Any]]:
        return read_jsonl(outcomes.log.run_dir(outcomes.runs[x]["id"]) / "wandb-history.jsonl")

    assert {x: [row["_step"] for row in history(x)] for x in range(5)} == {
        0: [0, 1, 2, 3], 1: [0, 1, 2], 2: [0, 1], 3: [0, 1], 4: [0, 1]}
    retried = json.loads((outcomes.log.run_dir(outcomes.runs[2]["id"]) / "wandb-metadata.json").read_text())
    assert [(a["first_step"], a["last_step"]) for a in retried["attempts"]] == [(0, 0)]
    # Both attempts logged their step 0 (this trainable does not read the run log): the retry's follows.
    assert [row["epoch"] for row in history(2)] == [0, 0]
    assert set(history(0)[0]) == {"loss", "epoch", "_step", "_runtime", "_timestamp"}


@pytest.mark.integration
def test_metadata_and_config_say_where_and_with_what_each_run_ran(outcomes):
    runs, log = outcomes.runs, outcomes.log
    meta = json.loads((log.run_dir(runs[2]["id"]) / "wandb-metadata.json").read_text())
    assert [a["state"] for a in meta["attempts"]] == ["crashed"]
    assert "ValueError: the first attempt of x=2 fails" in meta["attempts"][0]["error"]
    assert meta["host"] == socket.gethostname() and meta["node_ip"]
    assert all(r["host"] == meta["host"] and r["node_ip"] for r in runs.values())
    assert meta["resources"] == {"CPU": 1.0} and meta["ray_trial_id"] == outcomes.trial_ids[2]
    config = yaml.safe_load((log.run_dir(runs[0]["id"]) / "config.yaml").read_text())
    assert config["scale"] == {"desc": None, "value": 0.25}
    assert config["opt"]["value"] == {"lr": 0.1}


@pytest.mark.integration
def test_load_and_sweep_json_after_a_ray_tune_run(outcomes):
    frame = load(outcomes.log.path)
    assert len(frame) == 5 and list(frame.columns[:len(COLUMNS)]) == COLUMNS
    assert {"config.x", "config.opt.lr", "config.scale", "summary.loss",
            "summary.best_loss"} <= set(frame.columns)
    sweep = json.loads((outcomes.log.path / "sweep.json").read_text())
    assert sweep["state"] == "finished" and sweep["run_count"] == 5
    assert sweep["best_run"]["id"] == outcomes.runs[0]["id"]


def slow_trainable() -> Any:
    def slow_trial(config: dict[str, Any]) -> None:
        import time

        from raysweep.trial import session

        for i in range(5):
            time.sleep(0.25)
            session.log({"loss": config["x"] + i})

    return slow_trial


def drive(log_path: str, storage: str, address: str) -> None:
    """A sweep's driver, in a child process that the test kills with SIGKILL."""
    import ray
    from ray import tune

    os.environ["TUNE_GLOBAL_CHECKPOINT_S"] = "0"
    ray.init(address=address, log_to_driver=False)
    tune.Tuner(slow_trainable(), param_space={"x": tune.grid_search(list(range(3)))},
               tune_config=tune.TuneConfig(reuse_actors=True),
               run_config=tune.RunConfig(storage_path=storage, name="exp", verbose=0,
                                         callbacks=[RunLogCallback(RunLog.open(log_path))])
               ).fit()


def wait_for(condition: Any, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


def attempt_order_trainable(runs_dir: Path, sweep_id: str) -> Any:
    """Writes output.log first thing, as a program's output pump does, saying which attempt the
    run log had begun when it started; the first attempt of ``x == 1`` fails (Ray retries it)."""

    def attempt_order(config: dict[str, Any]) -> None:
        from ray import tune

        run_dir = runs_dir / run_id_for(sweep_id, tune.get_context().get_trial_id())
        attempt = json.loads((run_dir / "wandb-metadata.json").read_text())["attempt"]
        with open(run_dir / "output.log", "ab", buffering=0) as output:
            output.write(f"attempt {attempt} starts\n".encode())
        tune.report({"loss": config["x"]})
        if config["x"] == 1 and attempt == 1:
            raise RuntimeError("node lost")

    return attempt_order


@pytest.mark.integration
def test_an_attempt_begins_in_the_run_log_before_its_trainable_writes_a_line(tmp_path, ray_session):
    """Ray starts a trainable only after the callbacks' on_trial_start (a new actor, a reused one, a
    retry): the earlier attempt's output.log has moved to attempts/<n>/ before the next one writes."""
    from ray import tune

    log = new_log(tmp_path / "out")
    tuner = tune.Tuner(
        attempt_order_trainable(log.path / "runs", log.sweep_id),
        param_space={"x": tune.grid_search([0, 1, 2])},
        tune_config=tune.TuneConfig(reuse_actors=True, max_concurrent_trials=1),
        run_config=tune.RunConfig(storage_path=str(tmp_path / "ray"), name="exp", verbose=0,
                                  callbacks=[RunLogCallback(log)],
                                  failure_config=tune.FailureConfig(max_failures=1)))
    tuner.fit()
    runs = {r["config"]["x"]: r for r in read_jsonl(log.path / "runs.jsonl")}
    assert {x: (r["state"], r["attempts"]) for x, r in runs.items()} == {
        0: ("finished", 1), 1: ("finished", 2), 2: ("finished", 1)}
    outputs = {x: (log.run_dir(r["id"]) / "output.log").read_text() for x, r in runs.items()}
    assert outputs == {0: "attempt 1 starts\n", 1: "attempt 2 starts\n", 2: "attempt 1 starts\n"}
    assert (log.run_dir(runs[1]["id"]) / "attempts" / "1" / "output.log").read_text() == "attempt 1 starts\n"


@pytest.mark.integration
def test_a_sweep_restored_after_its_driver_was_killed_duplicates_no_run(tmp_path, ray_session):
    import ray
    from ray import tune

    log = new_log(tmp_path / "out")
    storage = tmp_path / "ray"
    code = (f"import sys; sys.path[:0] = [{str(REPO)!r}, {str(REPO / 'tests')!r}, {str(Path(__file__).parent)!r}]; "
            f"import test_runlog; test_runlog.drive(*sys.argv[1:])")
    child = subprocess.Popen([sys.executable, "-c", code, str(log.path), str(storage),
                              ray.get_runtime_context().gcs_address], cwd=REPO)

    def mid_sweep() -> bool:  # a run has ended and another is half-way (steps 1-2 of 0-4)
        frame = load(log.path) if (log.path / "runs.jsonl").exists() else None
        return frame is not None and ((frame["state"] == "running") & frame.get(
            "summary._step", pd.Series(dtype=float)).between(1, 2)).any()

    try:
        wait_for(mid_sweep)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    interrupted = set(load(log.path).query("state == 'running'")["id"])
    tune.Tuner.restore(str(storage / "exp"), slow_trainable(), resume_unfinished=True).fit()
    records = read_jsonl(log.path / "runs.jsonl")
    assert sorted(r["config"]["x"] for r in records) == [0, 1, 2]
    assert all(r["state"] == "finished" for r in records)
    restarted = {r["id"] for r in records if r["attempts"] > 1}
    assert interrupted and interrupted <= restarted
    lengths = {}
    for record in records:  # a restarted run's history: the cut-off attempt's steps, then all five again
        rows = read_jsonl(log.run_dir(record["id"]) / "wandb-history.jsonl")
        assert [row["_step"] for row in rows] == list(range(len(rows)))
        x = record["config"]["x"]
        assert [row["loss"] for row in rows[-5:]] == [x + i for i in range(5)]
        lengths[record["id"]] = len(rows)
    assert all(n == 5 for run_id, n in lengths.items() if run_id not in restarted)
    assert any(lengths[run_id] >= 5 + 2 for run_id in interrupted)  # the one cut off at step 1 or 2
    assert_whole(log.path)
