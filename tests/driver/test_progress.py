"""The progress display's pieces without Ray: texts cut to their widths, what the live area shows, which display is chosen."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from raysweep.driver.progress import (
    LIVE_LINE,
    PLAIN_LINE,
    Board,
    Display,
    Flight,
    LiveDisplay,
    choose_display,
    ended_line,
    fit,
    summary_line,
)

LONG = "x" * 300


def board(planned: int | None = 10) -> Board:
    shown = Board("loss", planned, milestones=[1, 3, 9], constants=frozenset({("epochs",)}))
    shown.counts.update({"finished": 4, "early-stopped": 3, "crashed": 1})
    shown.rungs.update({1: 2, 3: 1})
    shown.best = ("calm-sun-2", 0.0123456, {"lr": 0.001234, "epochs": 8, "opt": {"name": "adam"}})
    shown.flights = {f"t{i}": Flight(f"run-{i}", node=f"node-{i % 2}", iteration=i, value=1 / (i + 1))
                     for i in range(12)}
    return shown


def test_fit_cuts_with_a_marker_and_leaves_short_text() -> None:
    assert fit("short", 10) == "short"
    assert fit(LONG, 20) == "x" * 17 + "..." and len(fit(LONG, 20)) == 20


def test_counts_name_every_state_seen_and_the_rungs_runs_were_stopped_at() -> None:
    assert board().counts_text() == ("running 12, finished 4, early-stopped 3 (@1 x2, @3 x1), crashed 1")


def test_best_shows_only_parameters_that_vary() -> None:
    assert board().best_text() == "best loss=0.01235 calm-sun-2: lr=0.001234, opt.name=adam"


def test_ended_and_summary_lines_carry_the_count_of_planned_runs_or_none() -> None:
    assert ended_line(board(), "run-1", "early-stopped @3", 0.5) == (
        "[8/10] run-1 early-stopped @3 loss=0.5 | best 0.01235 (calm-sun-2)")
    assert ended_line(board(planned=None), "run-1", "finished", None).startswith("[8] run-1 finished |")
    assert re.match(r"\[8/10 0m0\ds\] running 12, .* \| run-0 it 0 loss=1, run-1 it 1 loss=0.5, ",
                    summary_line(board()))


def test_plain_display_cuts_lines_to_120_columns_and_summarises_when_due() -> None:
    out = io.StringIO()
    shown = board()
    shown.flights["long"] = Flight(LONG)
    plain = Display(shown, out, every=0.0)
    plain.ended(LONG)
    plain.tick()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[1].startswith("[8/10 ") and all(len(line) == PLAIN_LINE for line in lines)
    Display(shown, out, every=3600).tick()  # not due: nothing printed
    assert len(out.getvalue().splitlines()) == 2


def render(shown: Board, width: int = 80) -> list[str]:
    console = Console(file=io.StringIO(), width=width, force_terminal=True, color_system=None)
    live = LiveDisplay(shown, console)
    console.print(live._render())
    live.print(LONG)
    return console.file.getvalue().splitlines()  # type: ignore[attr-defined]


def test_live_area_fits_the_terminal_and_shows_bar_counts_best_and_runs_in_flight() -> None:
    lines = render(board(), width=80)
    assert all(len(line) <= 80 for line in lines), lines
    assert re.match(r"runs .* 8/10 +80% ", lines[0])
    assert lines[1].startswith("running 12, finished 4, early-stopped 3")
    assert lines[2].startswith("best loss=0.01235 calm-sun-2")
    assert re.match(r"running +node +iter +loss +next rung", lines[3])
    assert re.match(r"run-2 +node-0 +2 +0\.3333 +3$", lines[6])  # next rung after iteration 2
    assert lines[-2].startswith("... 4 more")  # 8 rows shown of 12
    assert lines[-1] == "x" * 77 + "..."  # an ended run's line: at most the terminal's width


def test_live_area_has_no_node_column_on_one_node_and_ended_lines_stop_at_100_columns() -> None:
    shown = board(planned=None)
    for flight in shown.flights.values():
        flight.node = "only"
    shown.flights["new"] = Flight("just-started")  # no result yet, so no node known
    lines = render(shown, width=200)
    assert re.match(r"runs .* 8 ended ", lines[0]) and "runs/min" in lines[0] and "ETA" not in lines[0]
    assert "node" not in lines[3]
    assert len(lines[-1]) == LIVE_LINE


@pytest.mark.parametrize(("options", "live"), [
    ({"force_terminal": True}, True),
    ({"force_terminal": False}, False),
    ({"force_terminal": True, "force_jupyter": False, "_environ": {"TERM": "dumb"}}, False),
])
def test_live_display_only_where_rich_can_redraw_in_place(options: dict, live: bool) -> None:
    console = Console(file=io.StringIO(), **options)
    assert isinstance(choose_display(board(), console), LiveDisplay) is live


def test_notebook_draws_in_place_exactly_when_ipywidgets_is_there() -> None:
    try:
        import ipywidgets  # noqa: F401
        has_widgets = True
    except ImportError:
        has_widgets = False
    console = Console(file=io.StringIO(), force_jupyter=True)
    assert isinstance(choose_display(board(), console), LiveDisplay) is has_widgets
