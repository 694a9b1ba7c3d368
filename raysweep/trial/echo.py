"""`--verbose` on the worker's side: a program's output lines sent to the driver, from any node.

Ray runs with ``log_to_driver=False`` (the driver's terminal belongs to the
progress display), so what a worker prints never reaches it.  With
`--verbose` the driver starts one `OutputSink` actor; each program's output
pump sends it every line with the run's id, without waiting for an answer,
and the driver takes the lines from it (`raysweep.driver.echo`).  Runs that
are not verbose send nothing and pay nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class OutputSink:
    """Lines of program output waiting for the driver: (run id, text) in the order they came."""

    def __init__(self) -> None:
        self._lines: list[tuple[str, str]] = []

    def add(self, run_id: str, text: str) -> None:
        self._lines.append((run_id, text))

    def take(self) -> list[tuple[str, str]]:
        lines, self._lines = self._lines, []
        return lines


def sender(sink: Any, run_id: str) -> Callable[[str], None]:
    """The program pump's `echo`: each line goes to the `sink` actor's `add`, fire and forget.

    Calls from one process to one actor run in the order they were made, so
    a run's lines arrive in order.
    """

    def echo(text: str) -> None:
        sink.add.remote(run_id, text)

    return echo
