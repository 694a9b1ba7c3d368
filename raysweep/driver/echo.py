"""`--verbose` on the driver's side: program output from every run, prefixed by its run name.

The lines come from the `OutputSink` actor the runs' workers send them to
(`raysweep.trial.echo`); a thread takes them every `POLL_S` and writes them to
``sys.stdout``, which a live display turns into lines above its live area.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import ray

from raysweep.trial.echo import OutputSink

if TYPE_CHECKING:
    from raysweep.runlog.log import RunLog

POLL_S = 0.2


@contextlib.contextmanager
def streamed_output(log: RunLog) -> Iterator[Any]:
    """An `OutputSink` actor whose lines are printed as ``<run name>: <line>`` while the block runs.

    The lines still on their way when the block ends are taken once more
    before the actor goes.
    """
    sink: Any = ray.remote(num_cpus=0)(OutputSink).remote()
    stop = threading.Event()
    names: dict[str, str] = {}

    def name_of(run_id: str) -> str:
        if run_id not in names:
            known = log.run_metadata(run_id).get("name")
            if not known:
                return run_id  # not started in the run log yet: its id, until it is
            names[run_id] = known
        return names[run_id]

    def pump() -> None:
        while True:
            last = stop.wait(POLL_S)
            for run_id, text in ray.get(sink.take.remote()):
                sys.stdout.write(f"{name_of(run_id)}: {text}")
            sys.stdout.flush()
            if last:
                return

    thread = threading.Thread(target=pump, name="raysweep-verbose", daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        stop.set()
        thread.join(timeout=30)
        ray.kill(sink)
