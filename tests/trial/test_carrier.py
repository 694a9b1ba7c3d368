"""When a carried run folder is persisted: only when it changed, at most every so often, and at the end.

`Carrier` hands its checkpoint to the trial's report function; here that is
a recorder of the calls (the real `report_row` needs a Ray trial, which
tests/driver/test_carry.py runs).  The folders and checkpoints are real.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from raysweep.trial.attempt import Attempt
from raysweep.trial.capture import ENV_FILES, ENV_RESUMED
from raysweep.trial.carry import STATE, Carrier, new_folder


def _carrier(tmp_path: Path, every: float) -> tuple[Carrier, list[dict[str, Any]]]:
    root = new_folder(str(tmp_path), "abcd1234")
    (root / "files").mkdir()
    calls: list[dict[str, Any]] = []
    carrier = Carrier(root, lambda row, **kw: calls.append({"row": row, **kw}), every,
                      Attempt(root / "files", False, 0))
    return carrier, calls


def _persisted(calls: list[dict[str, Any]]) -> list[int]:
    return [i for i, call in enumerate(calls) if call.get("checkpoint") is not None]


def test_a_run_that_writes_no_file_is_never_persisted(tmp_path: Path) -> None:
    carrier, calls = _carrier(tmp_path, every=0.0)
    for step in range(50):
        carrier.report({"loss": 1.0, "_step": step})
    carrier.finish()
    assert len(calls) == 50 and _persisted(calls) == []


def test_a_changed_folder_rides_with_the_next_row_once_and_the_end_persists_what_is_left(tmp_path: Path) -> None:
    carrier, calls = _carrier(tmp_path, every=0.0)
    carrier.report({"loss": 1.0, "_step": 0})
    (carrier.attempt.files / "model.pt").write_text("epoch 0")
    carrier.report({"loss": 0.5, "_step": 1})
    carrier.report({"loss": 0.4, "_step": 2})  # nothing new since
    assert _persisted(calls) == [1]
    checkpoint = calls[1]["checkpoint"]
    assert Path(checkpoint.path) == carrier.root and calls[1]["row"]["_step"] == 1
    assert json.loads((carrier.root / STATE).read_text()) == {"next_step": 2}
    (carrier.attempt.files / "sub").mkdir()
    (carrier.attempt.files / "sub" / "model.pt").write_text("epoch 2")
    carrier.finish()
    assert _persisted(calls) == [1, 3] and calls[3]["row"] is None  # a result of its own, not a history row
    assert json.loads((carrier.root / STATE).read_text()) == {"next_step": 3}
    carrier.finish()
    assert len(calls) == 4  # unchanged since: not persisted twice


def test_rows_look_at_the_folder_at_most_every_so_often(tmp_path: Path) -> None:
    carrier, calls = _carrier(tmp_path, every=3600.0)
    for step in range(5):
        (carrier.attempt.files / "model.pt").write_text(f"epoch {step}")
        carrier.report({"loss": 1.0, "_step": step})
    assert _persisted(calls) == []
    carrier.finish()
    assert _persisted(calls) == [5]


def test_each_attempt_gets_a_folder_of_its_own_named_as_wandb_names_a_runs(tmp_path: Path) -> None:
    folders = [new_folder(str(tmp_path), "abcd1234") for _ in range(3)]
    assert len(set(folders)) == 3 and all(f.is_dir() and f.parent == tmp_path / "wandb" for f in folders)
    assert all(f.name.startswith("run-") and "-abcd1234" in f.name for f in folders)


def _begin(tmp_path: Path, recorded: str | None) -> Carrier:
    with warnings.catch_warnings():  # outside a Ray trial Ray warns (once) that it has no checkpoint
        warnings.simplefilter("ignore", UserWarning)
        return Carrier.begin(str(tmp_path / "node"), None, "abcd1234", lambda *a, **kw: None, 30.0, recorded)


def test_an_attempt_where_the_run_log_is_not_restores_the_folder_the_driver_found_recorded(tmp_path: Path) -> None:
    persisted = tmp_path / "storage" / "checkpoint_000003"
    (persisted / "files" / "sub").mkdir(parents=True)
    (persisted / "files" / "sub" / "model.pt").write_text("epoch 6")
    (persisted / STATE).write_text(json.dumps({"next_step": 7}))
    carrier = _begin(tmp_path, str(persisted))
    assert carrier.root.parent == tmp_path / "node" / "wandb"
    assert (carrier.attempt.files / "sub" / "model.pt").read_text() == "epoch 6"
    assert carrier.attempt.environ() == {ENV_FILES: str(carrier.attempt.files), ENV_RESUMED: "7",
                                         "WANDB_RESUME": "allow"}
    carrier.finish()  # as restored: nothing to persist


def test_a_first_attempt_where_the_run_log_is_not_starts_empty_and_not_resumed(tmp_path: Path) -> None:
    carrier = _begin(tmp_path, None)
    assert carrier.attempt.environ() == {ENV_FILES: str(carrier.attempt.files)}
    assert carrier.attempt.files.is_dir() and not any(carrier.attempt.files.iterdir())
