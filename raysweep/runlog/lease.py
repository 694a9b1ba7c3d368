"""Many drivers on one run log: a lock, per-run claims and per-driver heartbeats.

Any number of drivers (``raysweep agent``, ``run --resume``) may work on one
sweep at once, on one machine or on several that share the run log's
filesystem.  They agree through three things in the run log:

- ``sweep.lock``: an exclusive ``fcntl.flock``.  Whoever holds it reads what
  the others claimed and ended since it last looked, decides, and appends its
  own claim; it is held for one decision (well under a millisecond of work),
  never while a run runs.
- ``claims.jsonl``: one line per run a driver takes, new (its Ray trial id,
  config and name number) or adopted from a driver that died.  The last line
  of a run names its owner.  A grid point, a run id and a ``run_cap`` slot are
  taken by appending here under the lock, so no two drivers take the same one.
- ``drivers/<id>.json``: each live driver's heartbeat, rewritten every
  `HEARTBEAT_S` seconds by a thread of its own.  A driver is dead when its
  heartbeat is older than `DEAD_AFTER_S`, or at once when it ran on this host
  and its process is gone (SIGKILL); the word ``running`` it left in its runs'
  files says nothing.  Its unended runs are adopted by the next driver that
  looks, under the lock, so each is restarted once.

Runs that ended are read from ``runs.jsonl`` (whole-line appends), so every
driver also learns the others' results as they come (`Ledger.evaluated_elsewhere`) and
sees the runs they have in flight (`Ledger.running_elsewhere`).

Hyperband's rungs are shared through ``rungs.jsonl``: one line per value that
entered a rung (``{"run", "rung", "loss"}``, the loss lower-is-better and
``Infinity`` for a NaN or infinite value) or per run that started again under
a new driver (``{"run", "restarted": true}``: forget its values).  Lines are
appended under the lock, so a line a killed driver tore is cut by the next
append, and read without it, each driver reading only what was appended since
its last look (a byte offset; a torn line is read once it is whole, or never).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import socket
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raysweep.errors import RunLogError
from raysweep.names import new_id, run_id_for
from raysweep.runlog.atomic import (
    append_line,
    dumps,
    io_error,
    read_json,
    read_jsonl,
    write_atomic,
)
from raysweep.runlog.rundir import HISTORY
from raysweep.values import best_of, finite_number

LOCK, CLAIMS, DRIVERS, RUNS, RUNGS = "sweep.lock", "claims.jsonl", "drivers", "runs.jsonl", "rungs.jsonl"
#: Seconds between two heartbeats of a driver.
HEARTBEAT_S = 5.0
#: A driver whose last heartbeat is this old is dead (clocks of hosts may differ by less).
DEAD_AFTER_S = 60.0
HOST = socket.gethostname()


@dataclass(frozen=True)
class Claim:
    """One run taken by a driver: the last claim line of the run."""

    run_id: str
    trial_id: str
    driver: str
    config: dict[str, Any]
    number: int  # the run's place in the sweep (1, 2, ...): its W&B-style name's number


def _process_start(pid: int) -> str | None:
    """An identity of the live process `pid` (its start time), None when it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:  # no /proc: ask the kernel whether the pid exists
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return "?"
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] in ("Z", "X") else fields[19]


class _Reader:
    """The complete lines appended to a JSON-lines file since the last read.

    A file replaced whole (runs.jsonl when a run's line is rewritten) is read
    again from its start; callers key what they read by run id.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._inode: int | None = None

    def new_lines(self) -> list[dict[str, Any]]:
        try:
            with open(self.path, "rb") as f:
                inode = os.fstat(f.fileno()).st_ino
                if inode != self._inode or os.fstat(f.fileno()).st_size < self._offset:
                    self._inode, self._offset = inode, 0
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise io_error(self.path, exc, "read") from exc
        complete = data[:data.rfind(b"\n") + 1]
        self._offset += len(complete)
        rows = []
        for line in complete.splitlines():
            with contextlib.suppress(ValueError):
                row = json.loads(line)
                if isinstance(row, dict):
                    rows.append(row)
        return rows


class Ledger:
    """This driver's membership of a sweep: its heartbeat, the lock, what every driver claimed.

    `join` registers the driver and starts its heartbeat; `leave` stops it.
    Everything that reads or changes the shared state happens inside
    `locked()`, which first catches up with the files.
    """

    def __init__(self, path: Path, sweep_id: str, *, run_cap: int | None = None,
                 metric: str | None = None, mode: str | None = None,
                 heartbeat_s: float = HEARTBEAT_S) -> None:
        self.path, self.sweep_id, self.run_cap = path, sweep_id, run_cap
        self.metric, self.mode = metric, mode
        self.driver_id = new_id()
        self.claims: dict[str, Claim] = {}
        self.configs: list[dict[str, Any]] = []  # of every run claimed, in claim order
        self.ended: dict[str, dict[str, Any]] = {}  # run id -> its runs.jsonl record
        self.legacy_ids: set[str] = set()  # runs started before claims existed
        self.ordinal = 0  # live drivers when this one joined: tells apart drivers started at once
        self._claims, self._runs, self._rungs = _Reader(path / CLAIMS), _Reader(path / RUNS), _Reader(path / RUNGS)
        self._unfed: list[dict[str, Any]] = []  # ended runs of other drivers not yet handed out
        self._guard = threading.RLock()
        self._depth = 0
        self._lock_file: Any = None
        self._heartbeat_s = heartbeat_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start = _process_start(os.getpid())

    @classmethod
    def join(cls, path: Path, sweep_id: str, *, run_cap: int | None = None, metric: str | None = None,
             mode: str | None = None, existing: Iterable[str] = ()) -> Ledger:
        """Register a new driver of the sweep at `path` and start its heartbeat.

        `existing` (run ids) are runs whose files may predate any claim
        (a run log written before drivers claimed runs): they count towards
        ``run_cap`` and, unended, are orphans to adopt.
        """
        ledger = cls(path, sweep_id, run_cap=run_cap, metric=metric, mode=mode)
        try:
            (path / DRIVERS).mkdir(exist_ok=True)
        except OSError as exc:
            raise io_error(path / DRIVERS, exc, "create") from exc
        with ledger.locked():
            ledger.legacy_ids = set(existing) - set(ledger.claims)
            ledger.ordinal = len(ledger.live_drivers())
            ledger._beat()
        ledger._thread = threading.Thread(target=ledger._beat_until_stopped, daemon=True,
                                          name="raysweep-heartbeat")
        ledger._thread.start()
        return ledger

    def retire(self) -> bool:
        """Stop and remove the heartbeat: this driver runs no more runs.  Whether it was the last live one.

        Called under the lock as the driver ends, so of two drivers that end
        at once the second sees the first gone and says the sweep finished.
        Runs it leaves unended are from now on orphans for others to adopt.
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with contextlib.suppress(OSError):
            self._heartbeat_file(self.driver_id).unlink()
        return not self.live_drivers()

    def leave(self) -> None:
        """Retire (if not yet) and let go of the lock file."""
        if not self._stop.is_set():
            self.retire()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    @contextlib.contextmanager
    def locked(self) -> Iterator[Ledger]:
        """Hold the sweep's lock (re-entrant within this process), caught up with the files."""
        with self._guard:
            if self._depth == 0:
                self._acquire()
            self._depth += 1
            try:
                if self._depth == 1:
                    self._sync()
                yield self
            finally:
                self._depth -= 1
                if self._depth == 0:
                    fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)

    def _acquire(self) -> None:
        try:
            if self._lock_file is None:
                self._lock_file = open(self.path / LOCK, "a+b")  # noqa: SIM115 (kept open)
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_EX)
        except OSError as exc:
            raise RunLogError(
                f"cannot lock {self.path / LOCK}: {exc.strerror or exc} (several drivers on one "
                "sweep need a filesystem with flock: local disks, NFSv4, Lustre mounted with "
                "-o flock)") from exc

    def _sync(self) -> None:
        for line in self._claims.new_lines():
            number = self.claims[line["run"]].number if line["run"] in self.claims else line["number"]
            if line["run"] not in self.claims:
                self.configs.append(line["config"])
            self.claims[line["run"]] = Claim(line["run"], line["trial"], line["driver"],
                                             line["config"], number)
        for record in self._runs.new_lines():
            owner = self.claims.get(record["id"])
            if record["id"] not in self.ended and (owner is None or owner.driver != self.driver_id):
                self._unfed.append(record)
            self.ended[record["id"]] = record

    # --- questions, asked inside `locked()` ------------------------------------------------

    def run_count(self) -> int:
        """Runs the sweep has had or has: claimed, or started before claims existed."""
        return len(self.claims) + len(self.legacy_ids)

    def full(self) -> bool:
        """Whether ``run_cap`` runs exist already."""
        return self.run_cap is not None and self.run_count() >= self.run_cap

    def known(self, trial_id: str) -> bool:
        """Whether the run of Ray trial `trial_id` exists already (another driver drew the id)."""
        run_id = run_id_for(self.sweep_id, trial_id)
        return run_id in self.claims or run_id in self.legacy_ids

    def claim(self, trial_id: str, config: Mapping[str, Any]) -> Claim:
        """Take a new run for this driver: its line in claims.jsonl."""
        run_id = run_id_for(self.sweep_id, trial_id)
        if run_id in self.claims or run_id in self.legacy_ids:
            raise RunLogError(f"run {run_id} exists already in {self.path}")
        return self._append(run_id, trial_id, dict(config), self.run_count() + 1)

    def adopt(self, trial_id: str, config: Mapping[str, Any]) -> Claim:
        """Take over a run whose driver died, under its own trial id."""
        run_id = run_id_for(self.sweep_id, trial_id)
        self.legacy_ids.discard(run_id)
        known = self.claims.get(run_id)
        return self._append(run_id, trial_id, dict(config),
                            known.number if known else self.run_count() + 1)

    def _append(self, run_id: str, trial_id: str, config: dict[str, Any], number: int) -> Claim:
        append_line(self.path / CLAIMS, {"run": run_id, "trial": trial_id, "driver": self.driver_id,
                                         "config": config, "number": number})
        self._sync()
        return self.claims[run_id]

    def orphans(self, cut_off: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
        """Trial id -> config of unended runs no live driver owns, oldest claim first.

        `cut_off` (trial id -> config, from the run directories) adds runs that
        started before claims existed; runs claimed but never started (the
        driver died in between) are here too, from their claim.
        """
        live = self.live_drivers()
        found = {claim.trial_id: claim.config for claim in self.claims.values()
                 if claim.run_id not in self.ended and claim.driver not in live}
        for trial_id, config in (cut_off or {}).items():
            run_id = run_id_for(self.sweep_id, trial_id)
            owner = self.claims.get(run_id)
            if run_id not in self.ended and (owner is None or owner.driver not in live):
                found.setdefault(trial_id, dict(config))
        return found

    def owned_unended(self) -> set[str]:
        """Ids of this driver's runs that have not ended."""
        return {claim.run_id for claim in self.claims.values()
                if claim.driver == self.driver_id and claim.run_id not in self.ended}

    def evaluated_elsewhere(self, *, values: bool = True) -> list[tuple[dict[str, Any], float | None]]:
        """Config and objective (`objective`) of each run not of this driver that ended since the last call.

        The first call returns every ended run of the sweep: what a driver
        starting on an existing sweep gives its searcher before it proposes.
        Without `values` the histories are not read (a searcher that does not learn).
        """
        new, self._unfed = self._unfed, []
        return [(record.get("config") or {}, objective(self.path / "runs" / record["id"], record,
                                                      self.metric, self.mode) if values else None)
                for record in new]

    def running_elsewhere(self) -> dict[str, dict[str, Any]]:
        """Run id -> config of every claimed run of another driver that has not ended."""
        return {claim.run_id: claim.config for claim in self.claims.values()
                if claim.driver != self.driver_id and claim.run_id not in self.ended}

    def number(self, run_id: str) -> int | None:
        """The run's place in the sweep, for its name (None: not claimed)."""
        claim = self.claims.get(run_id)
        return claim.number if claim else None

    # --- Hyperband's rungs (`raysweep.search.stopping.SharedRungs`) ----------------------------

    def run_id(self, trial_id: str) -> str:
        """The run of Ray trial `trial_id` in this sweep."""
        return run_id_for(self.sweep_id, trial_id)

    def publish_rung(self, run_id: str, rung: int, loss: float) -> None:
        """Tell every driver the run's loss at `rung`: a line of rungs.jsonl."""
        self._append_rung({"run": run_id, "rung": rung, "loss": loss})

    def restart_rungs(self, run_id: str) -> None:
        """Tell every driver to forget the run's rung values: it counts from its first value again."""
        self._append_rung({"run": run_id, "restarted": True})

    def _append_rung(self, line: dict[str, Any]) -> None:
        with self.locked():  # appends are whole: under the lock, a torn line can only be a dead driver's
            append_line(self.path / RUNGS, line)

    def rung_news(self) -> list[tuple[str, int | None, float]]:
        """(run id, rung, loss) of each line of rungs.jsonl since the last call, every driver's, in order.

        The rung is None for a run that restarted (its loss NaN).  Read without
        the lock: only whole lines are taken, from a byte offset on.
        """
        return [(line["run"], None, math.nan) if line.get("restarted") else
                (line["run"], int(line["rung"]), float(line["loss"])) for line in self._rungs.new_lines()]

    # --- heartbeats ------------------------------------------------------------------------

    def live_drivers(self) -> set[str]:
        """Ids of drivers whose heartbeat is fresh (this one's until it retires).

        Looked up afresh each time: a driver that joined a moment ago may
        already own runs (callers ask at most about once a second).
        """
        live = set()
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(self.path / DRIVERS):
                if entry.name.endswith(".json") and _alive(read_json(Path(entry.path))):
                    live.add(entry.name[:-5])
        return live

    def _heartbeat_file(self, driver_id: str) -> Path:
        return self.path / DRIVERS / f"{driver_id}.json"

    def _beat(self) -> None:
        write_atomic(self._heartbeat_file(self.driver_id), dumps(
            {"id": self.driver_id, "host": HOST, "pid": os.getpid(), "start": self._start,
             "beat": time.time()}))

    def _beat_until_stopped(self) -> None:
        while not self._stop.wait(self._heartbeat_s):
            with contextlib.suppress(RunLogError):  # a full disk: the next beat may pass
                self._beat()


def _alive(beat: Mapping[str, Any]) -> bool:
    """Whether the driver of heartbeat `beat` is alive: fresh, and its process there if on this host."""
    if not beat or time.time() - float(beat.get("beat", 0)) > DEAD_AFTER_S:
        return False
    if beat.get("host") == HOST:
        started = _process_start(int(beat.get("pid", 0)))
        return started is not None and started == beat.get("start")
    return True


def objective(run_dir: Path, record: Mapping[str, Any], metric: str | None,
              mode: str | None) -> float | None:
    """What an unbroken sweep's searcher learns of an ended run: its best finite metric value.

    That is the best over its history rows and its summary (explicit summary
    values included), as `raysweep.search.searchers.SweepSearcher` takes it
    from Ray's results; None when no value is finite (NaN, inf, none logged).
    """
    if metric is None:
        return None
    rows = [*read_jsonl(run_dir / HISTORY), record.get("summary") or {}]
    return finite_number(best_of((row.get(metric) for row in rows), lambda v: v, mode == "max"))
