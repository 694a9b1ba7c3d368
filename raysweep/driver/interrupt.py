"""Ctrl-C during a sweep: stop the way Ray Tune stops, and know that it happened.

Ray Tune's own SIGINT handler ends `Tuner.fit` as if the sweep had run out of
runs: it saves the experiment state (so the sweep can be resumed) and returns
with every running trial marked terminated, so an interrupted sweep would be
recorded as finished.  raysweep takes SIGINT itself, notes it, and asks Ray for
the same orderly stop through SIGUSR1, the signal Ray Tune always listens to
while it runs.  A second Ctrl-C raises `KeyboardInterrupt` as usual.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType

#: Set, Ray Tune leaves SIGINT alone (its SIGUSR1 handler stays).
_RAY_SIGINT_SWITCH = "TUNE_DISABLE_SIGINT_HANDLER"


@contextlib.contextmanager
def catch_interrupt() -> Iterator[threading.Event]:
    """Inside, Ctrl-C stops Ray Tune's loop gracefully and sets the event yielded."""
    interrupted = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield interrupted  # signals reach the main thread only: nothing to catch here
        return

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        ray_listens = signal.getsignal(signal.SIGUSR1) not in (signal.SIG_DFL, signal.SIG_IGN, None)
        if interrupted.is_set() or not ray_listens:
            raise KeyboardInterrupt
        interrupted.set()
        signal.raise_signal(signal.SIGUSR1)

    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGUSR1)}
    switch = os.environ.get(_RAY_SIGINT_SWITCH)
    os.environ[_RAY_SIGINT_SWITCH] = "1"
    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield interrupted
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        if switch is None:
            os.environ.pop(_RAY_SIGINT_SWITCH, None)
        else:
            os.environ[_RAY_SIGINT_SWITCH] = switch
