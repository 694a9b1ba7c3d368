"""The run log's file rules: whole-file replace, whole-line appends, readers that skip torn lines."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from raysweep.errors import RunLogError
from raysweep.runlog.atomic import append, append_line, dumps, read_json, read_jsonl, read_text, write_atomic


def test_write_atomic_replaces_the_whole_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "sweep.json"
    write_atomic(path, "old")
    write_atomic(path, '{"state": "finished"}')
    assert read_json(path) == {"state": "finished"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep.json"]
    assert path.stat().st_mode & 0o777 == 0o644


def test_write_atomic_into_a_missing_folder_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(RunLogError, match=r"cannot write run log file .*missing/sweep.json"):
        write_atomic(tmp_path / "missing" / "sweep.json", "{}")


def test_append_line_cuts_a_torn_last_line_before_writing(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    append_line(path, {"a": 1})
    with open(path, "ab") as f:
        f.write(b'{"a": 2, "tor')  # a crash in the middle of a line
    assert read_jsonl(path) == [{"a": 1}]  # the reader skips it
    append_line(path, {"a": 3})  # the next append cuts it off
    assert path.read_text() == '{"a": 1}\n{"a": 3}\n'


def test_a_file_that_is_one_torn_line_is_cut_to_nothing(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    path.write_bytes(b"x" * 70_000)  # longer than one backwards read
    append(path, b'{"b": 1}\n', lines=True)
    assert read_jsonl(path) == [{"b": 1}]


def test_read_jsonl_skips_lines_that_are_not_objects_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    path.write_text('{"a": 1}\n[1, 2]\nnot json\n{"a": 2}\n')
    with pytest.warns(RuntimeWarning, match="skipped a line") as caught:
        assert read_jsonl(path) == [{"a": 1}, {"a": 2}]
    assert [str(w.message).split(": ")[0].rsplit("/", 1)[1] for w in caught] == [
        "history.jsonl:2", "history.jsonl:3"]


def test_readers_of_missing_files_and_bad_json(tmp_path: Path) -> None:
    assert read_text(tmp_path / "none") is None and read_json(tmp_path / "none") == {}
    assert read_jsonl(tmp_path / "none") == []
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(RunLogError, match="is not JSON"):
        read_json(tmp_path / "bad.json")


def test_dumps_keeps_non_finite_numbers_and_makes_numpy_plain() -> None:
    text = dumps({"loss": math.nan, "best": -math.inf, "lr": np.float32(0.5), "n": np.int64(3)})
    assert text == '{"loss": NaN, "best": -Infinity, "lr": 0.5, "n": 3}'
    back = json.loads(text)
    assert math.isnan(back["loss"]) and back["best"] == -math.inf
