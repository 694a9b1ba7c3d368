"""A program-mode run's folder carried from node to node through Ray's storage (``--storage``).

By default a run's folder (``wandb.run.dir``) is ``runs/<id>/files/`` in the
run log, which every attempt of the run uses in place (`raysweep.trial.attempt`):
nothing is copied, but every node must see the run log's filesystem.  With
``--storage`` (a path every node sees, ``s3://``, ``gs://``) the folder is
carried instead, the way function mode's checkpoints are: each attempt works
in a new folder on its own node, named as W&B names a run's
(``$WANDB_DIR/wandb/run-<time>-<id>/files``), which starts as a copy of the
folder the run's last attempt persisted; the folder is persisted as a Ray
checkpoint of the run, into the sweep's experiment in the storage:

- at the end of each attempt, once the program has exited (exit 0, a failure, a preemption);
- with a logged step, when the folder changed since the last persist, at most
  every `PERSIST_EVERY_S` seconds (30; ``RAYSWEEP_CARRY_EVERY_S`` changes it),
  so a node lost mid-run loses at most that much, plus the time since the program's last step.

A folder nobody writes to is never persisted; a look costs one walk of it.
A file changing while it is persisted is persisted again at the next look.
Ray keeps the run's last checkpoint (its retry of a lost or requeued run
restores it); the run log's ``checkpoint.json`` names it for a later driver
(``--resume``, an agent) on a node that has the run log.  A run the driver
stops (a drain, early stopping) is torn down by Ray with the trial, before
the end of its attempt: its next attempt gets the folder of the last persist.

The checkpoint holds ``files/`` and `STATE` (the run's next history step), so
an attempt on a node without the run log still goes on with W&B's step count.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from raysweep.trial import attempt
from raysweep.trial.attempt import Attempt

if TYPE_CHECKING:
    from ray import tune

#: Seconds between two looks at a carried folder for changes (with the program's logged steps).
PERSIST_EVERY_S = 30.0
EVERY_ENV = "RAYSWEEP_CARRY_EVERY_S"
#: Written next to ``files/`` in each persisted folder: ``{"next_step": n}``.
STATE = "raysweep-attempt.json"

Signature = frozenset[tuple[str, int, int]]


def persist_every() -> float:
    """`PERSIST_EVERY_S`, or ``RAYSWEEP_CARRY_EVERY_S`` where set (read on the driver)."""
    return float(os.environ.get(EVERY_ENV) or PERSIST_EVERY_S)


def signature(folder: Path) -> Signature:
    """Each file under `folder` with its size and modification time: what tells a changed folder."""
    found = set()
    for root, _dirs, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            try:
                stat = os.stat(path)
            except OSError:  # removed while we looked
                continue
            found.add((os.path.relpath(path, folder), stat.st_size, stat.st_mtime_ns))
    return frozenset(found)


def new_folder(wandb_dir: str, run_id: str) -> Path:
    """A folder of this attempt's own: ``$WANDB_DIR/wandb/run-<time>-<id>`` (``-2``... if taken)."""
    stamp = time.strftime("%Y%m%d_%H%M%S")
    for suffix in itertools.chain([""], (f"-{index}" for index in itertools.count(2))):
        path = Path(wandb_dir, "wandb", f"run-{stamp}-{run_id}{suffix}")
        with contextlib.suppress(FileExistsError):
            path.mkdir(parents=True)
            return path
    raise AssertionError("unreachable: the suffixes never run out")


class Carrier:
    """One attempt's carried folder: restored when it begins, persisted with its rows and at its end.

    `report` is the trial's (`raysweep.trial.session.report_row`); a persist
    rides with a row as its checkpoint, or at the end with a result of its own
    (not a history row).  Runs in the trial's training thread, as reports must.
    """

    def __init__(self, root: Path, report: Callable[..., None], every: float, current: Attempt) -> None:
        self.root, self._report, self._every = root, report, every
        self.attempt = current
        self.next_step = current.next_step
        self._persisted = signature(current.files)  # as restored: nothing new to persist yet
        self._looked = time.monotonic()

    @classmethod
    def begin(cls, wandb_dir: str, run_dir: Path | None, run_id: str, report: Callable[..., None],
              every: float, recorded: str | None = None) -> Carrier:
        """Restore the run's last persisted folder (if any) into a new folder of this attempt.

        `run_dir` is the run's folder in the run log when this node sees it;
        `recorded` is the checkpoint the run log named when the driver started
        (for a node that does not see it).
        """
        from ray import tune

        earlier = attempt.begin(run_dir) if run_dir is not None else None
        uri = earlier.checkpoint if earlier is not None else recorded
        checkpoint = tune.get_checkpoint()  # Ray's retry of a lost or requeued run
        if checkpoint is None and uri:
            checkpoint = tune.Checkpoint(uri)  # a run restarted by a later driver
        root = new_folder(wandb_dir, run_id)
        carried = None
        if checkpoint is not None:
            checkpoint.to_directory(root)
            carried = _next_step(root)
        (root / attempt.FILES).mkdir(exist_ok=True)
        if earlier is not None:
            current = replace(earlier, files=root / attempt.FILES, checkpoint=None)
        else:
            current = Attempt(root / attempt.FILES, checkpoint is not None, carried or 0)
        return cls(root, report, every, current)

    def report(self, row: dict[str, Any] | None, *, summary: dict[str, Any] | None = None) -> None:
        """Report like the trial's `report`, with the folder as checkpoint when it is due and changed."""
        if row is not None and "_step" in row:
            self.next_step = max(self.next_step, int(row["_step"]) + 1)
        changed = None
        if row is not None and time.monotonic() - self._looked >= self._every:
            self._looked = time.monotonic()
            changed = self._changed()
        if changed is None:
            self._report(row, summary=summary)
            return
        self._report(row, summary=summary, checkpoint=self._checkpoint())
        self._persisted = changed

    def finish(self) -> None:
        """Persist the folder once the program has exited, if it changed since the last persist."""
        changed = self._changed()
        if changed is not None:
            self._report(None, summary={}, checkpoint=self._checkpoint())
            self._persisted = changed

    def _changed(self) -> Signature | None:
        now = signature(self.attempt.files)
        return None if now == self._persisted else now

    def _checkpoint(self) -> tune.Checkpoint:
        from ray import tune

        (self.root / STATE).write_text(json.dumps({"next_step": self.next_step}))
        return tune.Checkpoint(str(self.root))  # a local folder, as `Checkpoint.from_directory` makes


def recorded_checkpoints(run_dirs: Iterable[Path]) -> dict[str, str]:
    """Run id → its last checkpoint, as the run log records them, for runs (`run_dirs`) that may run again."""
    return {run_dir.name: uri for run_dir in run_dirs if (uri := attempt.last_checkpoint(run_dir))}


def _next_step(root: Path) -> int | None:
    """The next history step a restored folder's `STATE` holds (None: none)."""
    try:
        return int(json.loads((root / STATE).read_text())["next_step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
