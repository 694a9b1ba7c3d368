"""`--verbose` on the worker's side: a program's output lines sent to the driver, from any node.

Ray runs with ``log_to_driver=False`` (the driver's terminal belongs to the
progress display), so what a worker prints never reaches it.  With
`--verbose` the driver starts one `OutputSink` actor; each program's output
pump sends it every line with the run's id, without waiting for an answer,
and the driver takes the lines from it (`raysweep.driver.echo`).  Runs that
are not verbose send nothing and pay nothing.
"""

from __future__ import annotations

from typing import Any

FLUSH_S = 10.0


class OutputSink:
    """Lines of program output waiting for the driver: (run id, text) in the order they came."""

    def __init__(self) -> None:
        self._lines: list[tuple[str, str]] = []

    def add(self, run_id: str, text: str) -> None:
        self._lines.append((run_id, text))

    def take(self) -> list[tuple[str, str]]:
        lines, self._lines = self._lines, []
        return lines


class Sender:
    """The program pump's `echo`: each line goes to the `sink` actor's `add`, without waiting.

    Calls from one process to one actor run in the order they were made, so
    a run's lines arrive in order, and waiting for the last call (`flush`)
    waits for them all: a worker that ends with its trial must not drop them.
    """

    def __init__(self, sink: Any, run_id: str) -> None:
        self._sink, self._run_id = sink, run_id
        self._last: Any = None

    def __call__(self, text: str) -> None:
        self._last = self._sink.add.remote(self._run_id, text)

    def flush(self, timeout: float = FLUSH_S) -> None:
        if self._last is not None:
            import ray

            ray.wait([self._last], timeout=timeout)
