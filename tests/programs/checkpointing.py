"""A function-mode `train` that checkpoints every epoch through Ray and goes on from the last checkpoint.

Used with ``raysweep run sweep.yaml --function checkpointing:train``.  Each
row logs the epoch and the epoch this attempt started from.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import raysweep


def train(config: Any) -> None:
    checkpoint = raysweep.get_checkpoint()
    start = 0 if checkpoint is None else json.loads((Path(checkpoint.path) / "epoch.json").read_text()) + 1
    for epoch in range(start, config.epochs):
        time.sleep(config.sleep)
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "epoch.json").write_text(json.dumps(epoch))
            raysweep.log({"loss": 1.0 / (epoch + 1), "epoch": epoch, "start_epoch": start}, checkpoint=folder)
