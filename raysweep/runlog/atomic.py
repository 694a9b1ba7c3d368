"""Files that no crash leaves half-written, and readers that never trip on one.

A sweep may run for hours and its driver may be killed at any instant, so the
run log's files are written in two ways only: appends are one ``write`` of
whole lines (a line torn by a crash has no newline; readers skip it and the
next append cuts it off), and every other file is replaced whole (temporary
file in the same directory, fsync, ``os.replace``).  An OS error becomes a
`RunLogError` that names the file and says what to do about it.

JSON keeps Python's defaults, so a NaN or infinite metric is written as
``NaN``/``Infinity`` (not strict JSON, but what ``json.loads`` and pandas read
back as the same floats) instead of being lost.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

from raysweep.values import plain
from raysweep.errors import RunLogError

_HINTS = {
    errno.ENOSPC: "the disk is full: free space (or pass --out on another disk), then "
                  "continue with `raysweep run --resume`",
    errno.EDQUOT: "the disk quota is used up: free space, then `raysweep run --resume`",
    errno.EROFS: "pass --out with a directory on a writable disk",
    errno.EACCES: "make the directory writable for this user or pass --out elsewhere",
    errno.EPERM: "make the directory writable for this user or pass --out elsewhere",
}


def io_error(path: Path, exc: OSError, action: str = "write") -> RunLogError:
    """A `RunLogError` naming the file and saying what to do about the OS error."""
    hint = _HINTS.get(exc.errno or 0)
    return RunLogError(f"cannot {action} run log file {path}: {exc.strerror or exc}"
                       + (f" ({hint})" if hint else ""))


def dumps(value: Any) -> str:
    """`value` as one line of JSON, numpy and other non-JSON values made plain first."""
    return json.dumps(plain(value), ensure_ascii=False)


def write_atomic(path: Path, text: str) -> None:
    """Replace `path` by `text` so that readers see the old file or the new, never a part."""
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fchmod(f.fileno(), 0o644)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise io_error(path, exc) from exc


def append(path: Path, data: bytes, *, lines: bool) -> None:
    """Append `data` with one write; for line files, first cut a line a crash left torn."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            if lines:
                _cut_torn_tail(fd)
            while data:
                data = data[os.write(fd, data):]
        finally:
            os.close(fd)
    except OSError as exc:
        raise io_error(path, exc) from exc


def append_line(path: Path, value: Any) -> None:
    """Append `value` as one JSON line."""
    append(path, (dumps(value) + "\n").encode(), lines=True)


def _cut_torn_tail(fd: int) -> None:
    """Truncate the file after its last newline (reading backwards in chunks)."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    chunk = 1 << 16
    end = size
    while end > 0:
        start = max(0, end - chunk)
        found = os.pread(fd, end - start, start).rfind(b"\n")
        if found >= 0:
            os.ftruncate(fd, start + found + 1)
            return
        end = start
    os.ftruncate(fd, 0)


def read_text(path: Path) -> str | None:
    """The file's text; None when it does not exist (yet)."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise io_error(path, exc, "read") from exc


def read_json(path: Path) -> dict[str, Any]:
    """A JSON file written whole; ``{}`` when it does not exist (yet)."""
    text = read_text(path)
    try:
        return {} if text is None else json.loads(text)
    except json.JSONDecodeError as exc:
        raise RunLogError(f"run log file {path} is not JSON ({exc}); it was not written "
                          "by raysweep or was edited") from exc


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The complete lines of a JSON-lines file; a torn last line is not part of it.

    The lines are parsed as one JSON array (ten times faster than line by line
    for the histories of 10,000 runs); a file with a bad line is read line by
    line, skipping that line with a warning.
    """
    lines = (read_text(path) or "").split("\n")[:-1]
    with contextlib.suppress(json.JSONDecodeError):
        rows = json.loads("[" + ",".join(lines) + "]")
        if len(rows) == len(lines) and all(isinstance(row, dict) for row in rows):
            return rows
    return [row for number, line in enumerate(lines, start=1)
            if (row := _object_or_warn(path, number, line)) is not None]


def _object_or_warn(path: Path, number: int, line: str) -> dict[str, Any] | None:
    """One line's JSON object, or None (with a warning) for a line that is not one."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        row = None
    if isinstance(row, dict):
        return row
    warnings.warn(f"{path}:{number}: skipped a line that is not a JSON object", RuntimeWarning,
                  stacklevel=3)
    return None
