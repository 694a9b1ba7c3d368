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
- with a logged step, when the folder changed since the last persist: at most
  every `PERSIST_EVERY_S` seconds (30; ``RAYSWEEP_CARRY_EVERY_S`` changes it)
  a thread looks at the folder and, if it changed, copies it beside itself on
  the node once it holds still, for the program's next step to take along;
  so a node lost mid-run loses about that much, plus the time to the program's next step.

A folder nobody writes to is never copied nor persisted; a look costs one walk
of it.  A half-written file restored into the next attempt would break it (a
truncated file even keeps its old modification time), so a copy is taken only
when two looks `SETTLE_S` seconds apart find the same files, sizes and times,
and kept only if they are still the same once copied.
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
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from raysweep.trial import attempt
from raysweep.trial.attempt import Attempt

#: Seconds between two looks at a carried folder for changes.
PERSIST_EVERY_S = 30.0
EVERY_ENV = "RAYSWEEP_CARRY_EVERY_S"
#: A folder is copied only when two looks this many seconds apart find it the same.
SETTLE_S = 1.0
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


class Snapshots(threading.Thread):
    """Copies a folder beside its attempt's root when it changed and holds still, at most every `every` s.

    The training thread `take`s the newest copy (and then owns it); a copy not
    taken is replaced by a newer one.
    """

    def __init__(self, files: Path, root: Path, every: float, persisted: Signature) -> None:
        super().__init__(daemon=True, name="raysweep-carry")
        self._files, self._root, self._every = files, root, max(every, 0.05)
        self._copied = persisted
        self._ready: tuple[Path, Signature] | None = None
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._count = itertools.count(1)

    def run(self) -> None:
        while not self._stopped.wait(self._every):
            while not self._stopped.is_set() and (now := signature(self._files)) != self._copied:
                if not self._stopped.wait(SETTLE_S) and signature(self._files) == now and self._copy(now):
                    break

    def _copy(self, now: Signature) -> bool:
        copy = self._root.parent / f".{self._root.name}.persist-{next(self._count)}"
        try:
            shutil.copytree(self._files, copy / attempt.FILES)
            if signature(self._files) != now:  # written under the copy
                raise OSError("changed")
        except OSError:
            shutil.rmtree(copy, ignore_errors=True)
            return False
        with self._lock:
            earlier, self._ready = self._ready, (copy, now)
        if earlier is not None:
            shutil.rmtree(earlier[0], ignore_errors=True)
        self._copied = now
        return True

    def take(self) -> tuple[Path, Signature] | None:
        """The newest copy not taken yet, and the folder's signature when it was taken."""
        with self._lock:
            ready, self._ready = self._ready, None
        return ready

    def stop(self) -> None:
        """Stop looking; remove a copy nobody took."""
        self._stopped.set()
        self.join()
        ready = self.take()
        if ready is not None:
            shutil.rmtree(ready[0], ignore_errors=True)


class Carrier:
    """One attempt's carried folder: restored when it begins, persisted with its rows and at its end.

    `report` is the trial's (`raysweep.trial.session.report_row`); a persist
    rides with a row as its checkpoint, or at the end with a result of its own
    (not a history row).  Reports run in the trial's training thread, as they
    must; `Snapshots` copies the folder in the background.
    """

    def __init__(self, root: Path, report: Callable[..., None], every: float, current: Attempt) -> None:
        self.root, self._report = root, report
        self.attempt = current
        self.next_step = current.next_step
        self._persisted = signature(current.files)  # as restored: nothing new to persist yet
        self._snapshots = Snapshots(current.files, root, every, self._persisted)
        self._snapshots.start()

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
        """Report like the trial's `report`, with the folder's newest copy as checkpoint if there is one."""
        if row is not None and "_step" in row:
            self.next_step = max(self.next_step, int(row["_step"]) + 1)
        ready = self._snapshots.take() if row is not None else None
        if ready is None:
            self._report(row, summary=summary)
            return
        copy, self._persisted = ready
        try:
            self._persist(row, summary, copy)
        finally:
            shutil.rmtree(copy, ignore_errors=True)

    def stop(self) -> None:
        """The program has ended (or the trial stops): no more copies."""
        self._snapshots.stop()

    def finish(self) -> None:
        """Persist the folder once the program has exited, if it changed since the last persist."""
        now = signature(self.attempt.files)
        if now != self._persisted:
            self._persist(None, {}, self.root)
            self._persisted = now

    def _persist(self, row: dict[str, Any] | None, summary: dict[str, Any] | None, folder: Path) -> None:
        from ray import tune

        (folder / STATE).write_text(json.dumps({"next_step": self.next_step}))
        self._report(row, summary=summary, checkpoint=tune.Checkpoint(str(folder)))  # as `from_directory` makes


def recorded_checkpoints(run_dirs: Iterable[Path]) -> dict[str, str]:
    """Run id → its last checkpoint, as the run log records them, for runs (`run_dirs`) that may run again."""
    return {run_dir.name: uri for run_dir in run_dirs if (uri := attempt.last_checkpoint(run_dir))}


def _next_step(root: Path) -> int | None:
    """The next history step a restored folder's `STATE` holds (None: none)."""
    try:
        return int(json.loads((root / STATE).read_text())["next_step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
