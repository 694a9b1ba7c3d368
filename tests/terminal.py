"""Run a command under a pseudo-terminal and read what a person would see, through `pyte`.

The process is told its terminal is `columns` wide (TIOCSWINSZ); a screen
made wider than that (`screen`'s `columns`) shows a line the process wrote
past its width as text beyond that column, instead of wrapping it out of sight.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyte


@dataclass
class Session:
    """What a command under a pty did: its exit code and its output as read, chunk by chunk."""

    code: int
    chunks: list[bytes]

    @property
    def raw(self) -> bytes:
        return b"".join(self.chunks)


def run_in_terminal(argv: Sequence[str], *, cwd: Path, env: dict[str, str], columns: int = 80,
                    rows: int = 200, sigterm_when: bytes | None = None, timeout: float = 240) -> Session:
    """Run `argv` with stdin, stdout and stderr on a pty `columns` wide; SIGTERM once `sigterm_when` shows."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    process = subprocess.Popen(list(argv), cwd=cwd, env={**env, "TERM": "xterm-256color"},
                               stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if select.select([master], [], [], 0.5)[0]:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # every holder of the pty's other side has exited
                    break
                if not chunk:
                    break
                chunks.append(chunk)
                if sigterm_when is not None and sigterm_when in b"".join(chunks):
                    process.send_signal(signal.SIGTERM)
                    sigterm_when = None
            elif process.poll() is not None:
                break
        code = process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if process.poll() is None:
            process.kill()
        os.close(master)
    return Session(code, chunks)


def screen(chunks: Sequence[bytes], columns: int, rows: int = 200) -> pyte.Screen:
    """The emulator's screen after `chunks` of output."""
    shown = pyte.Screen(columns, rows)
    stream = pyte.ByteStream(shown)
    for chunk in chunks:
        stream.feed(chunk)
    return shown


def screen_lines(shown: pyte.Screen) -> list[str]:
    """The screen's lines without trailing blanks, trailing empty lines dropped."""
    lines = [line.rstrip() for line in shown.display]
    while lines and not lines[-1]:
        lines.pop()
    return lines
