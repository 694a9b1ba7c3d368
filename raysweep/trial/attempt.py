"""Where an attempt of a run starts: its own folder, whether it is resumed, the next history step.

A run may be attempted several times under its id: Ray retries it when its
node is lost, a preempted program (``wandb.mark_preempting()``) is requeued,
``--resume`` restarts runs a stopped driver cut off.  W&B's contract for a
resumed run is that ``wandb.run.resumed`` is True, ``wandb.run.step`` goes on
after the last logged step, and files saved in ``wandb.run.dir`` are there
again.  The run log holds all three: ``runs/<id>/files/`` is the run's folder
(it survives attempts: only an attempt's output moves to ``attempts/<n>/``),
and the run's history holds the steps every attempt logged so far.

The trial reads them on the machine that has the run log; the driver writes
an attempt's history before the next attempt of the run starts.  Stdlib only:
the ``wandb`` stand-in inside a program uses what this computes, through the
environment (`ENV_RESUMED`, `ENV_FILES`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from raysweep.trial.capture import ENV_FILES, ENV_RESUMED

#: A run's W&B history file, and the run's own folder (``wandb.run.dir``), inside ``runs/<id>/``.
HISTORY, FILES = "wandb-history.jsonl", "files"
#: Where the run's last Ray checkpoint is (``{"uri": ...}``), written by the driver, kept across attempts.
CHECKPOINT = "checkpoint.json"


@dataclass(frozen=True)
class Attempt:
    """One attempt of a run: its folder, whether an earlier attempt existed, its first step."""

    files: Path
    resumed: bool
    next_step: int
    checkpoint: str | None = None  # the last checkpoint of an earlier attempt: a path or a URI

    def environ(self) -> dict[str, str]:
        """What a program's environment says of this attempt (W&B's agent sets WANDB_RESUME to resume)."""
        env = {ENV_FILES: str(self.files)}
        if self.resumed:
            env.update({ENV_RESUMED: str(self.next_step), "WANDB_RESUME": "allow"})
        return env


def begin(run_dir: str | os.PathLike[str]) -> Attempt:
    """Start an attempt of the run whose run-log directory is `run_dir` (``runs/<id>``)."""
    run_dir = Path(run_dir)
    files = run_dir / FILES
    resumed = files.is_dir()
    files.mkdir(parents=True, exist_ok=True)
    if not resumed:
        return Attempt(files, False, 0)
    return Attempt(files, True, last_step(run_dir) + 1, last_checkpoint(run_dir))


def last_checkpoint(run_dir: Path) -> str | None:
    """Where the run's last Ray checkpoint is, as the driver recorded it (None: none)."""
    try:
        return json.loads((run_dir / CHECKPOINT).read_text()).get("uri")
    except (OSError, ValueError, AttributeError):
        return None


def last_step(run_dir: Path) -> int:
    """The last ``_step`` of the run's history, every attempt's (-1: none); the driver only appends to it."""
    try:
        lines = (run_dir / HISTORY).read_bytes().split(b"\n")[:-1]
    except OSError:
        return -1
    for line in reversed(lines):  # the last complete line: a torn one (no newline, a killed driver) is not
        try:
            return int(json.loads(line)["_step"])
        except (ValueError, KeyError, TypeError):
            continue
    return -1
