"""The program's process: started under a reaper, its output pumped, its rows read.

The trial starts a small reaper (`raysweep.trial.reaper`, ``run`` mode) as the
leader of a new session; the reaper starts the program in that process group,
stdin closed, and waits.  When the trial ends its side of a "lifeline" pipe
(Ray stopped the trial, the run timed out, or the worker process died for any
reason, even SIGKILL), the reaper sends SIGTERM to the group and SIGKILL after
``kill_grace`` seconds, so no program outlives its trial.  Once the program
has exited the reaper SIGKILLs what it left behind: its group, and descendants
that left the group, found by the attempt's mark (``RAYSWEEP_MARK``).

Why a reaper: Ray 2.60 stops a function trainable by making the
``tune.report`` it is blocked in raise ``SystemExit(0)`` in the training
thread, and then tears the actor down at once (``reuse_actors=False``, or the
end of the experiment) or gives the thread 2 s (``reset_config`` with
``reuse_actors=True``) before replacing the actor.  Cleanup code in the
trainable may therefore never finish; the reaper, outside the worker, does.

The program's ``wandb`` calls (`raysweep.trial.capture`) write one JSON line per
committed row to a pipe; `run_child` hands each to a `Reporter` as it comes,
so Ray sees every step as it happens.  stdout and stderr go, line by line, to
``output.log`` or another binary stream (`raysweep.trial.program.Courier` for a run
on another node).  A non-zero exit or a signal is `ProgramFailed` with the
exit code and the output's last lines; a program that exits 0 without logging
is `ProgramSilent`.  Nothing here imports Ray.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Union

from raysweep.trial import reaper
from raysweep.trial.capture import RESULT_FD_ENV, Reporter
from raysweep.errors import ProgramError

TAIL_LINES = 20
#: Where the program's output goes when not to a file: any binary stream (e.g. `raysweep.trial.program.Courier`).
ByteSink = Union[IO[bytes], io.RawIOBase]

_REAPER = str(Path(reaper.__file__).resolve())

class ProgramFailed(ProgramError):
    """The program exited non-zero, died of a signal or timed out (W&B: ``failed``/``crashed``)."""

    def __init__(self, exit_code: int, tail: Sequence[str], reason: str = "") -> None:
        self.exit_code, self.tail, self.reason = exit_code, tuple(tail), reason
        self.state = "crashed" if exit_code < 0 or reason else "failed"
        if reason:
            what = f"{reason} (exit code {exit_code})"
        elif exit_code < 0:
            what = f"was killed by signal {_signal_name(-exit_code)} (exit code {exit_code})"
        else:
            what = f"exited with code {exit_code}"
        super().__init__(f"program {what}{_render_tail(self.tail)}")

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.exit_code, self.tail, self.reason)


class ProgramPreempted(ProgramFailed):
    """The program called ``mark_preempting()``, then exited non-zero or died (W&B: ``preempted``, requeued)."""

    def __init__(self, exit_code: int, tail: Sequence[str], reason: str = "") -> None:
        super().__init__(exit_code, tail, reason or "was preempted (mark_preempting) and is requeued")
        self.state = "preempted"


class ProgramSilent(ProgramError):
    """The program exited 0 without one ``wandb.log``: nothing reached the sweep (W&B: ``failed``)."""

    state = "failed"

    def __init__(self, tail: Sequence[str]) -> None:
        self.exit_code, self.tail = 0, tuple(tail)
        super().__init__("program exited with code 0 but never called wandb.log, so the sweep got no result; "
                         f"log the sweep's metric, e.g. wandb.log({{'val_loss': loss}}){_render_tail(self.tail)}")

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.tail,)


def _signal_name(signum: int) -> str:
    with suppress(ValueError):
        return signal.Signals(signum).name
    return str(signum)


def _render_tail(tail: Sequence[str]) -> str:
    return f"\n--- last {len(tail)} lines of output ---\n" + "\n".join(tail) if tail else ""


@dataclass(frozen=True)
class ChildExit:
    """How a program ended: its exit status (negative: signal), what it sent, its last output lines."""

    status: int
    messages: int
    timed_out: float | None
    tail: tuple[str, ...]
    preempting: bool = False

    def check(self) -> None:
        """Raise `ProgramFailed`, `ProgramPreempted` or `ProgramSilent` unless the program exited 0 after logging."""
        if self.timed_out is not None:
            raise ProgramFailed(self.status, self.tail, f"timed out after {self.timed_out:g} s and was killed")
        if self.status != 0 and self.preempting:
            raise ProgramPreempted(self.status, self.tail)
        if self.status != 0:
            raise ProgramFailed(self.status, self.tail)
        if self.messages == 0:
            raise ProgramSilent(self.tail)


class _Child:
    """The program under its reaper, in a session of its own; `stop` starts SIGTERM-then-SIGKILL."""

    def __init__(self, command: Sequence[str], *, env: Mapping[str, str], cwd: str, kill_grace: float,
                 mark: str) -> None:
        lifeline, self._lifeline = os.pipe()
        results, results_w = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", _REAPER, "run", str(lifeline), str(results_w), str(kill_grace), mark,
                 *command],
                env={**env, RESULT_FD_ENV: str(results_w), reaper.MARK_ENV: mark}, cwd=cwd, stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, pass_fds=(lifeline, results_w),
                start_new_session=True)
        except BaseException:
            os.close(results)
            os.close(self._lifeline)
            raise
        finally:
            os.close(lifeline)
            os.close(results_w)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()  # like the agent: the program reads EOF, never blocks on a terminal
        self.stdout: IO[bytes] = self.proc.stdout
        self.results: IO[bytes] = open(results, "rb")  # noqa: SIM115 - closed in run_child
        self.mark, self._grace = mark, kill_grace
        self._stop_lock = threading.Lock()
        self._backstop: threading.Timer | None = None

    def stop(self) -> None:
        """Close the lifeline: the reaper SIGTERMs the group, then SIGKILLs it after the grace period.

        Should the reaper itself be gone (killed from outside), the trial
        SIGKILLs the attempt's marked processes a little after the grace period.
        """
        with self._stop_lock:
            if self._lifeline >= 0:
                os.close(self._lifeline)
                self._lifeline = -1
                self._backstop = threading.Timer(self._grace + 5.0, reaper.kill_marked, (self.mark, 0))
                self._backstop.daemon = True
                self._backstop.start()

    def wait(self) -> None:
        """Reap the reaper's first process (it forks the reaper proper and exits at once)."""
        self.proc.wait()
        if self._backstop is not None:
            self._backstop.cancel()


class _OutputPump(threading.Thread):
    """Copies the program's output, line by line, to output.log and (verbose) to `echo`; keeps the tail."""

    def __init__(self, stream: IO[bytes], output: Path | ByteSink | None,
                 echo: Callable[[str], None] | None) -> None:
        super().__init__(daemon=True)
        self._stream, self._output, self._echo = stream, output, echo
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)

    def run(self) -> None:
        sink = self._open_sink()
        with sink or nullcontext():
            for line in iter(self._stream.readline, b""):
                text = line.decode("utf-8", "replace")
                self.tail.append(text.rstrip("\r\n"))
                if self._echo:
                    self._echo(text)
                if sink is not None:
                    sink = self._write(sink, line)

    def _open_sink(self) -> ByteSink | None:
        if not isinstance(self._output, Path):
            return self._output
        try:
            self._output.parent.mkdir(parents=True, exist_ok=True)
            return open(self._output, "ab", buffering=0)  # noqa: SIM115 - closed by run()
        except OSError as exc:
            self.tail.append(f"raysweep: cannot write {self._output}: {exc}")
            return None

    def _write(self, sink: ByteSink, line: bytes) -> ByteSink | None:
        """One write per line; on a full or read-only disk stop writing but keep draining the pipe."""
        try:
            sink.write(line)
            return sink
        except OSError as exc:
            self.tail.append(f"raysweep: cannot write {self._output}: {exc}")
            sink.close()
            return None


def attempt_mark(driver_mark: str | None) -> str:
    """The ``RAYSWEEP_MARK`` of one program attempt: ``<driver mark>/<attempt>`` (a fresh driver mark if None)."""
    return f"{driver_mark or uuid.uuid4().hex[:16]}/{uuid.uuid4().hex[:16]}"


def run_child(command: Sequence[str], *, env: Mapping[str, str], cwd: str, kill_grace: float,
              reporter: Reporter, mark: str | None = None, output: Path | ByteSink | None = None,
              echo: Callable[[str], None] | None = None,
              timeout: float | None = None) -> ChildExit:
    """Run `command` to its end, feeding each row it sends to `reporter`.

    Whatever ends this call — the program exiting, `timeout`, or an exception
    from `reporter` (Ray's ``SystemExit`` when it stops the trial) — the program
    has exited and every process of it that holds its pipes is gone before this
    returns or raises; the reaper kills the rest moments later.  `mark`
    (`attempt_mark`) tags the program and its descendants.
    """
    child = _Child(command, env=env, cwd=cwd, kill_grace=kill_grace, mark=mark or attempt_mark(None))
    pump = _OutputPump(child.stdout, output, echo)
    pump.start()
    timed_out = threading.Event()

    def time_out() -> None:
        timed_out.set()
        child.stop()

    timer = threading.Timer(timeout, time_out) if timeout else None
    if timer:
        timer.start()
    try:
        messages, status = _read_results(child.results, reporter)
        reporter.close()
    finally:
        if timer:
            timer.cancel()
        child.stop()
        for _ in child.results:  # let a program finishing after SIGTERM write without blocking
            pass
        child.results.close()
        child.wait()
        pump.join()
    status = -signal.SIGKILL if status is None else status  # no exit line: the reaper was killed
    return ChildExit(status, messages, timeout if timed_out.is_set() else None, tuple(pump.tail),
                     reporter.preempting)


def _read_results(results: IO[bytes], reporter: Reporter) -> tuple[int, int | None]:
    """Pass the program's rows and summaries to `reporter`; return how many, and the reaper's exit line."""
    messages, status = 0, None
    for line in results:
        try:
            message = json.loads(line)
        except ValueError:
            continue  # not from raysweep: a process the program forked wrote to the inherited pipe
        if "exit" in message:
            status = message["exit"]
            continue
        messages += 1
        if "row" in message:
            reporter.row(message["row"])
        elif "summary" in message:
            reporter.summary(message["summary"])
        elif message.get("preempting"):
            reporter.mark_preempting()
    return messages, status
