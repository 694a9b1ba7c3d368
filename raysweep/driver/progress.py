"""A sweep's progress while it runs: a live display in a terminal, short plain lines elsewhere.

Ray's own table is switched off (it reprints every trial every few seconds).
`Board` keeps what a person watching a sweep asks (how far it is, what runs
now, what ended how, the best run so far); `ProgressCallback` feeds it from
Ray Tune's hooks, which only update it, so a display costs the driver's loop
nothing.  `display` picks how it is shown:

- a terminal or a notebook with widgets: a `rich` live area (bar, counts,
  best run, runs in flight) redrawn a few times a second by rich's own
  thread, with one line of at most 100 columns above it per ended run;
- anything else (a CI log, ``ray job logs``, a pipe): plain lines of at most
  120 columns, one per ended run and a summary every `SUMMARY_EVERY_S`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from ray import tune
from rich.console import Console, Group
from rich.live import Live
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from raysweep.names import run_id_for
from raysweep.protocol import is_history, metric_value
from raysweep.spec.distributions import Constant
from raysweep.spec.tree import leaves

if TYPE_CHECKING:
    from ray.tune.experiment import Trial

    from raysweep.runlog.log import RunLog
    from raysweep.spec.load import SweepSpec

LIVE_LINE = 100  # columns of an ended run's line above the live area
PLAIN_LINE = 120  # columns of a plain line
SUMMARY_EVERY_S = 30.0
REFRESH_PER_S = 2
_IN_FLIGHT_ROWS = 8
#: Run states as counted, in the order shown (W&B's states, early-stopped apart).
STATES = ("finished", "early-stopped", "failed", "crashed", "killed")


def fit(text: str, width: int) -> str:
    """`text` cut to `width` characters, an ellipsis marking the cut."""
    return text if len(text) <= width else text[:width - 3] + "..."


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


@dataclass
class Flight:
    """A run in flight, as its latest result left it."""

    name: str
    node: str | None = None
    iteration: int = 0
    value: float | None = None


@dataclass
class Board:
    """The sweep as it stands: planned and ended runs, counts by state, the best run, runs in flight.

    Ray's hooks write it from the driver's loop while a display thread reads
    it, so each change and each reading holds `lock`.
    """

    metric: str | None
    planned: int | None
    milestones: list[int] = field(default_factory=list)
    constants: frozenset[tuple[str, ...]] = frozenset()
    started: float = field(default_factory=time.monotonic)
    flights: dict[str, Flight] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    rungs: Counter[int] = field(default_factory=Counter)
    best: tuple[str, float, dict[str, Any]] | None = None  # name, metric value, config
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def ended(self) -> int:
        return sum(self.counts.values())

    def next_rung(self, iteration: int) -> int | None:
        """The first early-stopping rung a run at `iteration` has yet to reach."""
        return next((m for m in self.milestones if m > iteration), None)

    def counts_text(self) -> str:
        """``running 2, finished 5, early-stopped 3 (@1 x2, @3 x1), crashed 1``."""
        parts = [f"running {len(self.flights)}", f"finished {self.counts['finished']}"]
        for state in STATES[1:]:
            if self.counts[state]:
                rungs = ", ".join(f"@{r} x{n}" for r, n in sorted(self.rungs.items()))
                detail = f" ({rungs})" if state == "early-stopped" and rungs else ""
                parts.append(f"{state} {self.counts[state]}{detail}")
        return ", ".join(parts)

    def best_text(self) -> str:
        """``best loss=0.0123 brisk-wind-7: lr=0.01, layers=3`` (parameters that vary only)."""
        if self.best is None:
            return "best: none yet"
        name, value, config = self.best
        params = ", ".join(f"{'.'.join(path)}={_number(v) if isinstance(v, float) else v}"
                           for path, v in leaves(config).items() if path not in self.constants)
        return f"best {self.metric}={_number(value)} {name}" + (f": {params}" if params else "")

    def done_text(self) -> str:
        return f"[{self.ended}/{self.planned}]" if self.planned is not None else f"[{self.ended}]"


def ended_line(board: Board, name: str, state: str, value: float | None) -> str:
    """One ended run: ``[5/30] brisk-wind-7 finished loss=0.0123 | best 0.0101 (calm-sun-2)``."""
    metric = f" {board.metric}={_number(value)}" if board.metric and value is not None else ""
    best = f" | best {_number(board.best[1])} ({board.best[0]})" if board.best else ""
    return f"{board.done_text()} {name} {state}{metric}{best}"


def summary_line(board: Board) -> str:
    """What runs now, for a log: ``[5/30 2m14s] running 2, finished 5 | calm-sun-2 it 3 loss=0.2, ...``."""
    flights = ", ".join(f"{f.name} it {f.iteration}" + (f" {board.metric}={_number(f.value)}"
                                                         if f.value is not None else "")
                        for f in board.flights.values())
    head = f"{board.done_text()[:-1]} {_duration(time.monotonic() - board.started)}] {board.counts_text()}"
    return head + (f" | {flights}" if flights else "")


class RunsPerMinute(ProgressColumn):
    """The rate of ended runs, as runs a minute."""

    def render(self, task: Task) -> Text:
        return Text(f"{(task.speed or 0) * 60:.1f} runs/min", style="progress.data.speed")


class Display:
    """Plain lines: one per ended run (at most `width` columns) and a summary every `every` seconds."""

    def __init__(self, board: Board, stream: IO[str] | None = None, *, width: int = PLAIN_LINE,
                 every: float = SUMMARY_EVERY_S) -> None:
        self.board, self._stream, self.width, self._every = board, stream, width, every
        self._summarized = time.monotonic()

    def print(self, line: str) -> None:
        print(fit(line, self.width), file=self._stream or sys.stdout, flush=True)

    def ended(self, line: str) -> None:
        self.print(line)

    def tick(self) -> None:
        """Called from the driver's loop: a summary line when one is due."""
        if time.monotonic() - self._summarized >= self._every:
            self._summarized = time.monotonic()
            with self.board.lock:
                line = summary_line(self.board)
            self.print(line)

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


class LiveDisplay(Display):
    """rich's live area in a terminal or a notebook, with ended runs' lines printed above it."""

    def __init__(self, board: Board, console: Console) -> None:
        super().__init__(board, width=min(LIVE_LINE, console.width))
        self._console = console
        columns: list[ProgressColumn] = [TextColumn("runs"), BarColumn(bar_width=24)]
        if board.planned is not None:
            columns += [MofNCompleteColumn(), TaskProgressColumn(), RunsPerMinute(), TextColumn("ETA"),
                        TimeRemainingColumn()]
        else:
            columns += [TextColumn("{task.completed:.0f} ended"), TimeElapsedColumn(), RunsPerMinute()]
        self._bar = Progress(*columns, console=console, auto_refresh=False, speed_estimate_period=300)
        self._task = self._bar.add_task("runs", total=board.planned)
        self._live = Live(console=console, get_renderable=self._render, refresh_per_second=REFRESH_PER_S,
                          transient=False, redirect_stdout=True, redirect_stderr=True)

    def print(self, line: str) -> None:
        self._console.print(Text(fit(line, self.width)), no_wrap=True, overflow="ellipsis", highlight=False)

    def tick(self) -> None:
        pass

    def start(self) -> None:
        self._live.start()

    def stop(self) -> None:
        self._live.stop()

    def _render(self) -> Group:
        board, width = self.board, self._console.width
        with board.lock:
            self._bar.update(self._task, completed=board.ended)
            lines = [Text(fit(board.counts_text(), width)), Text(fit(board.best_text(), width), style="bold")]
            table = self._flights_table(board)
        return Group(self._bar, *lines, table)

    def _flights_table(self, board: Board) -> Table | Text:
        if not board.flights:
            return Text("")
        nodes = len({f.node for f in board.flights.values() if f.node}) > 1  # None: no result yet
        table = Table(box=None, show_edge=False, pad_edge=False, header_style="dim")
        table.add_column("running", no_wrap=True, overflow="ellipsis", max_width=28)
        if nodes:
            table.add_column("node", no_wrap=True, overflow="ellipsis", max_width=16)
        table.add_column("iter", justify="right")
        table.add_column(board.metric or "metric", justify="right", no_wrap=True)
        if board.milestones:
            table.add_column("next rung", justify="right")
        flights = list(board.flights.values())
        for flight in flights[:_IN_FLIGHT_ROWS]:
            rung = board.next_rung(flight.iteration)
            table.add_row(flight.name, *([flight.node or "-"] if nodes else []), str(flight.iteration),
                          _number(flight.value), *([str(rung or "-")] if board.milestones else []))
        if len(flights) > _IN_FLIGHT_ROWS:
            table.add_row(f"... {len(flights) - _IN_FLIGHT_ROWS} more")
        return table


def announce(text: str) -> None:
    """A line printed before the sweep starts, wrapped to the terminal's width in a terminal."""
    if sys.stdout.isatty():
        text = textwrap.fill(text, shutil.get_terminal_size().columns, break_on_hyphens=False)
    print(text, flush=True)


def choose_display(board: Board, console: Console | None = None) -> Display:
    """A live display where rich can redraw in place (a terminal, a notebook with widgets), else lines."""
    console = console or Console()
    if console.is_terminal and not console.is_dumb_terminal:
        return LiveDisplay(board, console)
    if console.is_jupyter and importlib.util.find_spec("ipywidgets") is not None:
        return LiveDisplay(board, console)  # rich redraws in a notebook through an ipywidgets Output
    return Display(board)


@contextlib.contextmanager
def display(spec: SweepSpec, log: RunLog, planned: int | None) -> Iterator[Display]:
    """Show the sweep's progress while the block runs; the live area is closed however it ends."""
    constants = frozenset(path for path, dist in spec.flat_parameters().items() if isinstance(dist, Constant))
    board = Board(spec.metric.name if spec.metric else None, planned, constants=constants)
    board.best = _recorded_best(log)
    shown = choose_display(board)
    shown.start()
    try:
        yield shown
    finally:
        shown.stop()


def _recorded_best(log: RunLog) -> tuple[str, float, dict[str, Any]] | None:
    """The best run a resumed or attached sweep already has, as sweep.json names it."""
    best = log.sweep_info().get("best_run")
    if not best:
        return None
    config: dict[str, Any] = next((r.get("config", {}) for r in log.finished_runs() if r["id"] == best["id"]), {})
    return best["name"], next(iter(best["summary"].values())), config


class ProgressCallback(tune.Callback):
    """Feeds a `Display`'s board from Ray Tune's hooks; it runs after the run log's callback.

    A run's state and the best run are read from what `RunLogCallback` just
    recorded (the run's metadata, sweep.json), so the display and the run log
    can never disagree.  Ray pickles callbacks into its experiment state; the
    display stays behind (an unpickled callback shows nothing).
    """

    def __init__(self, shown: Display, log: RunLog, scheduler: Any = None) -> None:
        self._shown: Display | None = shown
        self._log = log
        self._rung_of = scheduler.stopped_at_rung if scheduler is not None else None
        shown.board.milestones = list(getattr(scheduler, "milestones", []))

    def __getstate__(self) -> dict[str, Any]:
        return {"_shown": None, "_log": None, "_rung_of": None}

    def _run_id(self, trial: Trial) -> str:
        assert self._log is not None
        return run_id_for(self._log.sweep_id, trial.trial_id)

    def on_trial_start(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        if self._shown and self._log:
            name = self._log.name_for(self._run_id(trial))
            with self._shown.board.lock:
                self._shown.board.flights[trial.trial_id] = Flight(name)

    def on_trial_result(self, iteration: int, trials: list[Trial], trial: Trial,
                        result: dict[str, Any], **info: Any) -> None:
        if not self._shown or not is_history(result):
            return
        board = self._shown.board
        with board.lock:
            flight = board.flights.get(trial.trial_id)
            if flight is not None:
                flight.node = result.get("hostname") or result.get("node_ip") or flight.node
                flight.iteration = int(result.get("training_iteration") or flight.iteration)
                value = metric_value(result, board.metric) if board.metric else None
                if value is not None:
                    flight.value = value

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self._end(trial)

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self._end(trial)

    def on_step_end(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        if self._shown:
            self._shown.tick()

    def _end(self, trial: Trial) -> None:
        """Count the run as the run log recorded it, take the best run from sweep.json, print a line."""
        if not self._shown or not self._log:
            return
        run_id = self._run_id(trial)
        record = self._log.run_metadata(run_id)
        rung = self._rung_of(trial.trial_id) if self._rung_of else None
        state = str(record.get("state") or "crashed")
        state = "early-stopped" if state == "killed" and rung is not None else state
        best = self._log.sweep_info().get("best_run")
        board = self._shown.board
        with board.lock:
            flight = board.flights.pop(trial.trial_id, None) or Flight(record.get("name", run_id))
            board.counts[state] += 1
            if rung is not None:
                board.rungs[rung] += 1
            if best and best["id"] == run_id:
                board.best = (best["name"], next(iter(best["summary"].values())), trial.config)
            line = ended_line(board, flight.name, f"{state} @{rung}" if rung is not None else state,
                              flight.value)
        self._shown.ended(line)
