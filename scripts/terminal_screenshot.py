"""Draw docs/terminal.png: the live display of a real `raysweep run`, as a terminal emulator shows it.

A small program sweep (``tests/programs/chatty.py``, Hyperband on) runs under
a pseudo-terminal 80 columns wide; its output is replayed into `pyte`, and the
screen at the last moment runs were still in flight (with some ended) is drawn
character by character with Pillow, in the colours the emulator recorded.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import matplotlib
import pyte
import yaml
from PIL import Image, ImageDraw, ImageFont

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from terminal import run_in_terminal

COLUMNS, ROWS = 80, 22
FONT = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
BACKGROUND, FOREGROUND = (30, 30, 36), (220, 220, 220)
COLOURS = {"black": (60, 60, 60), "red": (230, 90, 90), "green": (120, 200, 110), "brown": (215, 180, 80),
           "yellow": (215, 180, 80), "blue": (110, 150, 230), "magenta": (200, 120, 210),
           "cyan": (100, 200, 210), "white": (230, 230, 230)}


def run_sweep(workdir: Path) -> list[bytes]:
    """`raysweep run` of a 10-run grid under an 80-column pty; its output chunks."""
    (workdir / "chatty.py").write_text((REPO / "tests" / "programs" / "chatty.py").read_text())
    spec = {"program": "chatty.py", "method": "grid", "metric": {"name": "loss", "goal": "minimize"},
            "parameters": {"lr": {"values": [8.0, 0.5, 4.0, 0.7, 2.0, 1.0, 3.0, 0.3, 6.0, 0.2]},
                           "epochs": {"value": 9}, "sleep": {"value": 0.5}},
            "early_terminate": {"type": "hyperband", "min_iter": 1, "eta": 2}}
    (workdir / "sweep.yaml").write_text(yaml.safe_dump(spec))
    env = {**os.environ, "TMPDIR": str(workdir), "PYTHONPATH": str(REPO)}
    env.pop("RAY_ADDRESS", None)
    session = run_in_terminal([sys.executable, "-m", "raysweep.cli", "run", "sweep.yaml", "--out", "out"],
                              cwd=workdir, env=env, columns=COLUMNS, rows=ROWS)
    if session.code != 0:
        raise SystemExit(f"the sweep failed:\n{session.raw.decode(errors='replace')[-3000:]}")
    return session.chunks


def mid_sweep(chunks: list[bytes]) -> pyte.Screen:
    """The screen at the last moment that 2 runs were in flight, 3 had ended and the live area was up to date."""
    shown, best = pyte.Screen(COLUMNS, ROWS), None
    stream = pyte.ByteStream(shown)
    for chunk in chunks:
        stream.feed(chunk)
        text = "\n".join(shown.display)
        running = re.search(r"^running (\d+), finished", text, re.MULTILINE)
        ended = re.search(r" (\d+)/10 ", text)
        printed = len(re.findall(r"^\[\d+/10\] ", text, re.MULTILINE))  # the live area is redrawn after a line
        if running and ended and int(running.group(1)) >= 2 and int(ended.group(1)) == printed >= 3:
            best = {y: dict(line) for y, line in shown.buffer.items()}
    if best is None:
        raise SystemExit("no moment with runs in flight was seen")
    frozen = pyte.Screen(COLUMNS, ROWS)
    for y, line in best.items():
        frozen.buffer[y].update(line)
    return frozen


def colour(name: str, default: tuple[int, int, int]) -> tuple[int, int, int]:
    if name == "default":
        return default
    if re.fullmatch(r"[0-9a-fA-F]{6}", name):
        return tuple(int(name[i:i + 2], 16) for i in (0, 2, 4))  # type: ignore[return-value]
    return COLOURS.get(name.removeprefix("bright"), default)


def draw(shown: pyte.Screen, path: Path) -> None:
    regular = ImageFont.truetype(str(FONT / "DejaVuSansMono.ttf"), 15)
    bold = ImageFont.truetype(str(FONT / "DejaVuSansMono-Bold.ttf"), 15)
    width, height = round(regular.getlength("M")), 20
    pad = 14
    image = Image.new("RGB", (COLUMNS * width + 2 * pad, ROWS * height + 2 * pad), BACKGROUND)
    pen = ImageDraw.Draw(image)
    for y in range(ROWS):
        for x in range(COLUMNS):
            char = shown.buffer[y][x]
            if char.data.strip():
                pen.text((pad + x * width, pad + y * height), char.data, fill=colour(char.fg, FOREGROUND),
                         font=bold if char.bold else regular)
    image.save(path, optimize=True)


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="rs-shot-", dir="/tmp"))
    try:
        target = REPO / "docs" / "terminal.png"
        draw(mid_sweep(run_sweep(workdir)), target)
        print(f"{target.relative_to(REPO)} remade")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
