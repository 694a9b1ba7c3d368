"""One run's folder: W&B's config.yaml shape, the summary caught up from history, attempts recorded."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import pytest
import yaml

from raysweep.errors import RunLogError
from raysweep.runlog.rundir import (CONFIG, HISTORY, METADATA, OUTPUT, SUMMARY, OpenRun, close_attempt,
                                    config_yaml, current_summary, epoch, iso, load_run, metric_warning, now,
                                    read_config, run_record)


def test_config_yaml_is_wandbs_shape_and_reads_back(tmp_path: Path) -> None:
    text = config_yaml({"lr": 0.1, "opt": {"name": "adam"}})
    assert yaml.safe_load(text) == {"wandb_version": 1, "lr": {"desc": None, "value": 0.1},
                                    "opt": {"desc": None, "value": {"name": "adam"}}}
    (tmp_path / CONFIG).write_text(text)
    assert read_config(tmp_path / CONFIG) == {"lr": 0.1, "opt": {"name": "adam"}}


def test_timestamps_are_utc_with_z_and_parse_back() -> None:
    stamp = now()
    assert stamp.endswith("Z") and abs(epoch(stamp) - epoch(now())) < 5
    assert epoch("2026-01-02T03:04:05Z") == 1767323045.0


def test_summary_is_caught_up_with_history_logged_after_it(tmp_path: Path) -> None:
    (tmp_path / SUMMARY).write_text(json.dumps({"_step": 1, "loss": 0.5, "best": 0.4}))
    rows = [{"_step": 1, "loss": 0.5}, {"_step": 2, "loss": 0.3}, {"_step": 3, "loss": 0.2}]
    (tmp_path / HISTORY).write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"_step": 4, "lo')
    assert current_summary(tmp_path) == {"_step": 3, "loss": 0.2, "best": 0.4}  # torn line not read


def test_load_run_needs_its_metadata(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "abcd1234"
    run_dir.mkdir(parents=True)
    with pytest.raises(RunLogError, match=f"run abcd1234 was not started .*no {METADATA}"):
        load_run(run_dir)
    (run_dir / METADATA).write_text(json.dumps({"name": "brisk-wind-1", "startedAt": "2026-01-02T03:04:05Z",
                                                "attemptStartedAt": "2026-01-02T03:04:05Z"}))
    (run_dir / CONFIG).write_text(config_yaml({"x": 2}))
    run = load_run(run_dir)
    assert (run.name, run.config, run.started) == ("brisk-wind-1", {"x": 2}, 1767323045.0)
    assert run.metadata["run_id"] == "abcd1234" and run.summary == {}


def test_close_attempt_keeps_the_history_and_records_each_attempts_steps(tmp_path: Path) -> None:
    rows = [{"_step": 0, "loss": 3}, {"_step": 1, "loss": 2}, {"_step": 2, "loss": 1}]
    history = "".join(json.dumps(r) + "\n" for r in rows) + '{"_step": 3, "lo'  # torn by a kill
    (tmp_path / HISTORY).write_text(history)
    (tmp_path / SUMMARY).write_text(json.dumps({"_step": 1, "loss": 2, "best": 2}))
    (tmp_path / OUTPUT).write_text("first\n")
    os.utime(tmp_path / OUTPUT, (time.time() - 5, time.time() - 5))  # the attempt's last line, 5 s ago
    wrote = max((tmp_path / name).stat().st_mtime for name in (HISTORY, SUMMARY, OUTPUT))
    attempts = close_attempt(tmp_path, {"attempt": 1, "attemptStartedAt": iso(time.time() - 60)})
    assert [(a["state"], a["first_step"], a["last_step"]) for a in attempts] == [("crashed", 0, 2)]
    assert attempts[0]["error"].startswith("interrupted") and attempts[0]["files"] == "attempts/1"
    assert attempts[0]["endedAt"] == iso(wrote)  # when it was last heard of, not when it was closed
    assert (tmp_path / HISTORY).read_text() == history  # the run's history stays whole, in place
    archive = tmp_path / "attempts" / "1"
    assert sorted(p.name for p in archive.iterdir()) == sorted([SUMMARY, OUTPUT])
    assert (archive / OUTPUT).read_text() == "first\n" and not (tmp_path / OUTPUT).exists()
    assert json.loads((archive / SUMMARY).read_text()) == {"_step": 2, "loss": 1, "best": 2}
    assert close_attempt(tmp_path, {"attempt": 1, "attempts": attempts}) == attempts  # closed once only
    with (tmp_path / HISTORY).open("a") as f:  # the next attempt: the torn line cut, steps 3 and 4
        f.truncate(len(history) - len('{"_step": 3, "lo'))
        f.write('{"_step": 3, "loss": 0.5}\n{"_step": 4, "loss": 0.4}\n')
    second = close_attempt(tmp_path, {"attempt": 2, "attempts": attempts, "state": "preempted",
                                      "error": "preempted", "exit_code": 143, "endedAt": "t2"})
    assert second[1] == {"attempt": 2, "startedAt": None, "endedAt": "t2", "state": "preempted",
                         "error": "preempted", "exit_code": 143, "first_step": 3, "last_step": 4,
                         "files": "attempts/2"}
    third = close_attempt(tmp_path, {"attempt": 3, "attempts": second})  # logged nothing
    assert (third[2]["first_step"], third[2]["last_step"]) == (None, None)


def test_closing_an_attempt_again_after_a_kill_half_way_loses_nothing(tmp_path: Path) -> None:
    (tmp_path / HISTORY).write_text('{"_step": 0, "loss": 1}\n')
    (tmp_path / OUTPUT).write_text("out\n")
    close_attempt(tmp_path, {"attempt": 1})  # the driver killed before the metadata said so: done again
    again = close_attempt(tmp_path, {"attempt": 1})
    assert (again[0]["first_step"], again[0]["last_step"]) == (0, 0)
    assert (tmp_path / "attempts" / "1" / OUTPUT).read_text() == "out\n"
    assert (tmp_path / HISTORY).read_text() == '{"_step": 0, "loss": 1}\n'


def test_run_record_and_the_metric_warning_say_why_a_run_does_not_rank() -> None:
    run = OpenRun("n", "c", 0.0, {"x": 1}, {"host": "h"}, summary={"loss": math.nan, "acc": 1}, nonfinite=2)
    record = run_record("id1", run, "finished", 1.5, exit_code=0)
    assert (record["state"], record["runtime"], record["exit_code"], record["host"]) == ("finished", 1.5, 0, "h")
    assert metric_warning(run, None) is None
    assert metric_warning(run, "loss").startswith("logged 2 NaN or infinite value(s) of the sweep metric 'loss'")
    run.nonfinite = 0
    assert "never logged the sweep metric 'val' (it logged: acc, loss)" in metric_warning(run, "val")
    run.summary["loss"] = 0.1
    assert metric_warning(run, "loss") is None
