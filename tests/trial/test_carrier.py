"""When a carried run folder is persisted: only when it changed, never half-written, and at the end.

`Carrier` hands its checkpoint to the trial's report function; here that is
a recorder of the calls and of what the checkpoint's folder holds at the call
(the real `report_row` needs a Ray trial, which tests/driver/test_carry.py
runs).  The folders, the copying thread and the checkpoints are real.
"""

from __future__ import annotations

import json
import threading
import time
import warnings
from pathlib import Path
from typing import Any

from raysweep.trial.attempt import Attempt
from raysweep.trial.capture import ENV_FILES, ENV_RESUMED
from raysweep.trial.carry import SETTLE_S, STATE, Carrier, new_folder

EVERY = 0.1


def _carrier(tmp_path: Path, every: float = EVERY) -> tuple[Carrier, list[dict[str, Any]]]:
    root = new_folder(str(tmp_path), "abcd1234")
    (root / "files").mkdir()
    calls: list[dict[str, Any]] = []

    def report(row: dict[str, Any] | None, **kw: Any) -> None:  # what Ray would copy, as it is at the call
        folder = Path(kw["checkpoint"].path) if "checkpoint" in kw else None
        calls.append({"row": row, **kw, "holds": folder and {
            str(path.relative_to(folder)): path.read_text() for path in folder.rglob("*") if path.is_file()}})

    return Carrier(root, report, every, Attempt(root / "files", False, 0)), calls


def _persisted(calls: list[dict[str, Any]]) -> list[int]:
    return [i for i, call in enumerate(calls) if call.get("checkpoint") is not None]


def _rows_until_persisted(carrier: Carrier, calls: list[dict[str, Any]], first_step: int,
                          timeout: float = 10 * SETTLE_S) -> int:
    """Report a row every 0.05 s until one carries a checkpoint; its step."""
    deadline, step = time.monotonic() + timeout, first_step
    while not _persisted(calls[-1:]) and time.monotonic() < deadline:
        carrier.report({"loss": 1.0, "_step": step})
        step += 1
        time.sleep(0.05)
    assert _persisted(calls[-1:]), "no copy of the folder came with a step"
    return step - 1


def test_a_run_that_writes_no_file_is_never_copied_nor_persisted(tmp_path: Path) -> None:
    carrier, calls = _carrier(tmp_path)
    for step in range(30):
        carrier.report({"loss": 1.0, "_step": step})
        time.sleep(0.05)
    carrier.stop()
    carrier.finish()
    assert len(calls) == 30 and _persisted(calls) == []
    assert sorted(p.name for p in (tmp_path / "wandb").iterdir()) == [carrier.root.name]  # no copy made


def test_a_changed_folder_rides_with_a_later_row_once_and_the_end_persists_what_is_left(tmp_path: Path) -> None:
    carrier, calls = _carrier(tmp_path)
    (carrier.attempt.files / "model.pt").write_text("epoch 0")
    step = _rows_until_persisted(carrier, calls, 0)
    assert calls[-1]["row"]["_step"] == step
    assert calls[-1]["holds"] == {"files/model.pt": "epoch 0", STATE: json.dumps({"next_step": step + 1})}
    copy = Path(calls[-1]["checkpoint"].path)  # a copy beside the folder, gone once Ray has it
    assert copy.parent == carrier.root.parent and copy != carrier.root and not copy.exists()
    time.sleep(SETTLE_S + 3 * EVERY)
    carrier.report({"loss": 0.5, "_step": step + 1})
    assert len(_persisted(calls)) == 1  # unchanged since: no second copy
    (carrier.attempt.files / "sub").mkdir()
    (carrier.attempt.files / "sub" / "model.pt").write_text("epoch 2")
    carrier.stop()
    carrier.finish()
    assert calls[-1]["row"] is None  # a result of its own, not a history row
    assert calls[-1]["holds"] == {"files/model.pt": "epoch 0", "files/sub/model.pt": "epoch 2",
                                  STATE: json.dumps({"next_step": step + 2})}
    assert Path(calls[-1]["checkpoint"].path) == carrier.root  # the program has exited: its folder as it is
    carrier.finish()
    assert len(_persisted(calls)) == 2  # unchanged since: not persisted twice


def test_a_file_being_rewritten_is_never_copied_half_written(tmp_path: Path) -> None:
    """A checkpoint truncated, then written a while later, as a slow save does; it keeps its old mtime."""
    carrier, calls = _carrier(tmp_path)
    model = carrier.attempt.files / "model.pt"
    done = threading.Event()

    def save_slowly() -> None:
        for epoch in range(6):
            with model.open("w") as out:  # truncated now, written after a pause shorter than SETTLE_S
                out.flush()
                time.sleep(SETTLE_S * 0.4)
                out.write(f"epoch {epoch}")
            time.sleep(SETTLE_S * 0.4)
        done.set()

    writer = threading.Thread(target=save_slowly)
    writer.start()
    step = 0
    while not done.is_set():
        carrier.report({"loss": 1.0, "_step": step})
        step += 1
        time.sleep(0.05)
    writer.join()
    assert _persisted(calls) == []  # it never held still for SETTLE_S
    _rows_until_persisted(carrier, calls, step)
    carrier.stop()
    assert calls[-1]["holds"]["files/model.pt"] == "epoch 5"


def test_rows_take_no_copy_before_the_period(tmp_path: Path) -> None:
    carrier, calls = _carrier(tmp_path, every=3600.0)
    (carrier.attempt.files / "model.pt").write_text("epoch 0")
    for step in range(20):
        carrier.report({"loss": 1.0, "_step": step})
        time.sleep(0.1)
    carrier.stop()
    assert _persisted(calls) == []
    carrier.finish()
    assert _persisted(calls) == [20]


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
    carrier.stop()
    assert carrier.root.parent == tmp_path / "node" / "wandb"
    assert (carrier.attempt.files / "sub" / "model.pt").read_text() == "epoch 6"
    assert carrier.attempt.environ() == {ENV_FILES: str(carrier.attempt.files), ENV_RESUMED: "7",
                                         "WANDB_RESUME": "allow"}


def test_a_first_attempt_where_the_run_log_is_not_starts_empty_and_not_resumed(tmp_path: Path) -> None:
    carrier = _begin(tmp_path, None)
    carrier.stop()
    assert carrier.attempt.environ() == {ENV_FILES: str(carrier.attempt.files)}
    assert carrier.attempt.files.is_dir() and not any(carrier.attempt.files.iterdir())
