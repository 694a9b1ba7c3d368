"""Signals during a sweep: Ctrl-C, SIGTERM and SIGHUP drain it the way Ray Tune stops, and say so.

Ray Tune's own SIGINT handler ends `Tuner.fit` as if the sweep had run out of
runs: it saves the experiment state (so the sweep can be resumed) and returns
with every running trial marked terminated, so an interrupted sweep would be
recorded as finished.  A SIGTERM (SLURM at a job's time limit, ``docker
stop``, Kubernetes) or a SIGHUP (a closed terminal) would end the driver at
once, leaving the run log ``running``.  raysweep takes all three itself, notes
which came (the command exits ``128 + signal``), and asks Ray for its orderly
stop through SIGUSR1, the signal Ray Tune always listens to while it runs:
no new run starts, and each running program gets SIGTERM, then SIGKILL after
the kill grace.  A second signal during that drain kills the programs at once
and raises `Interrupted`, a `KeyboardInterrupt`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from types import FrameType

from raysweep.trial import reaper
from raysweep.trial.reaper import kill_marked, marked

#: Set, Ray Tune leaves SIGINT alone (its SIGUSR1 handler stays).
_RAY_SIGINT_SWITCH = "TUNE_DISABLE_SIGINT_HANDLER"
#: The signals that drain a sweep.
DRAIN_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_SAY_EVERY_S = 5.0


class Interrupted(KeyboardInterrupt):
    """A second signal during a drain (or one when Ray does not listen): the sweep stops at once."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def say(text: str) -> None:
    """One line on `sys.stderr`'s descriptor, written at once (safe inside a signal handler, unlike print).

    `sys.stderr` may not be descriptor 2: Ray's own output can be diverted from it.
    """
    with contextlib.suppress(OSError, ValueError, RuntimeError):  # RuntimeError: a write it interrupted
        sys.stderr.flush()
    with contextlib.suppress(OSError, ValueError, AttributeError):
        os.write(sys.stderr.fileno(), f"raysweep: {text}\n".encode())


class Drain:
    """What the driver knows of a drain: the signal that started it, and how to end the programs."""

    def __init__(self, mark: str | None, kill_grace: float,
                 in_flight: Callable[[], str] | None = None) -> None:
        self.signum: int | None = None
        self.mark, self.kill_grace, self._in_flight = mark, kill_grace, in_flight
        self._started = 0.0

    def is_set(self) -> bool:
        return self.signum is not None

    @property
    def exit_code(self) -> int:
        """``128 + signal``, as shells report a process ended by it."""
        return 128 + (self.signum or signal.SIGINT)

    def begin(self, signum: int) -> None:
        self.signum, self._started = signum, time.monotonic()
        what = self._in_flight() if self._in_flight else "the runs in flight"
        say(f"{signal.Signals(signum).name}: starting no new run; stopping {what}: each program gets "
            f"SIGTERM, then SIGKILL after {self.kill_grace:g} s (--kill-grace); "
            "send the signal again to kill them at once")

    def kill_now(self) -> None:
        """SIGKILL every program of this driver on this machine (other nodes' reapers end theirs)."""
        if self.mark:
            kill_marked(self.mark + "/", 0)

    def wait_for_programs(self) -> None:
        """Return once no program of this driver runs on this machine, saying what is awaited."""
        if not self.mark:
            return
        deadline = self._started + self.kill_grace + 5.0  # the reapers' SIGKILL, then the exits
        said = 0.0
        while (pids := marked(self.mark + "/")) and time.monotonic() < deadline:
            if time.monotonic() - said >= _SAY_EVERY_S:
                left = max(0.0, self._started + self.kill_grace - time.monotonic())
                say(f"waiting for {len(pids)} program process(es) of the stopped runs to exit "
                    f"(SIGKILL in {left:.0f} s)")
                said = time.monotonic()
            time.sleep(0.1)
        self.kill_now()  # what outlived the grace (or escaped its reaper)


@contextlib.contextmanager
def catch_interrupt(drain: Drain | None = None) -> Iterator[Drain]:
    """Inside, SIGINT/SIGTERM/SIGHUP stop Ray Tune's loop gracefully and start `drain` (yielded)."""
    drain = drain or Drain(None, 0.0)
    if threading.current_thread() is not threading.main_thread():
        yield drain  # signals reach the main thread only: nothing to catch here
        return

    def on_signal(signum: int, frame: FrameType | None) -> None:
        ray_listens = signal.getsignal(signal.SIGUSR1) not in (signal.SIG_DFL, signal.SIG_IGN, None)
        if drain.is_set() or not ray_listens:
            say(f"{signal.Signals(signum).name} again: killing the runs' programs now")
            drain.signum = drain.signum or signum
            drain.kill_now()
            raise Interrupted(drain.signum)
        drain.begin(signum)
        signal.raise_signal(signal.SIGUSR1)

    handlers = {sig: signal.getsignal(sig) for sig in (*DRAIN_SIGNALS, signal.SIGUSR1)}
    switch = os.environ.get(_RAY_SIGINT_SWITCH)
    os.environ[_RAY_SIGINT_SWITCH] = "1"
    for sig in DRAIN_SIGNALS:
        signal.signal(sig, on_signal)
    try:
        yield drain
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        if switch is None:
            os.environ.pop(_RAY_SIGINT_SWITCH, None)
        else:
            os.environ[_RAY_SIGINT_SWITCH] = switch


@contextlib.contextmanager
def watchdog(kill_grace: float) -> Iterator[str]:
    """Yield a new driver mark, guarded by a watchdog process until the block ends.

    The watchdog (`raysweep.trial.reaper`, ``watch`` mode) runs in a session
    of its own and waits for this process to close its lifeline, which also
    happens when the driver is killed with SIGKILL: it then ends, on this
    machine, every program still carrying the mark (SIGTERM, then SIGKILL
    after `kill_grace`).
    """
    mark = uuid.uuid4().hex[:16]
    lifeline, keep = os.pipe()
    try:
        subprocess.Popen([sys.executable, "-I", reaper.__file__, "watch", str(lifeline), str(kill_grace), mark],
                         pass_fds=(lifeline,), stdin=subprocess.DEVNULL, start_new_session=True)
    finally:
        os.close(lifeline)
    try:
        yield mark
    finally:
        os.close(keep)
