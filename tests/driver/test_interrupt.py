"""Ctrl-C during a sweep: the first one becomes Ray Tune's orderly stop (SIGUSR1), a second one raises."""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType

import pytest

from raysweep.driver.interrupt import _RAY_SIGINT_SWITCH, Interrupted, catch_interrupt


def test_first_ctrl_c_asks_for_rays_stop_a_second_raises_and_handlers_come_back() -> None:
    seen: list[int] = []

    def ray_handler(signum: int, frame: FrameType | None) -> None:  # what Ray Tune installs
        seen.append(signum)

    before = signal.getsignal(signal.SIGINT)
    previous_usr1 = signal.signal(signal.SIGUSR1, ray_handler)
    try:
        with catch_interrupt() as interrupted:
            assert os.environ[_RAY_SIGINT_SWITCH] == "1"  # Ray leaves SIGINT to us
            signal.raise_signal(signal.SIGINT)
            assert interrupted.is_set() and seen == [signal.SIGUSR1]
            with pytest.raises(KeyboardInterrupt):
                signal.raise_signal(signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) is before
        assert signal.getsignal(signal.SIGUSR1) is ray_handler
        assert _RAY_SIGINT_SWITCH not in os.environ
    finally:
        signal.signal(signal.SIGUSR1, previous_usr1)


def test_without_ray_listening_ctrl_c_is_a_plain_keyboard_interrupt() -> None:
    previous_usr1 = signal.signal(signal.SIGUSR1, signal.SIG_DFL)
    try:
        with catch_interrupt() as interrupted, pytest.raises(KeyboardInterrupt) as raised:
            signal.raise_signal(signal.SIGINT)
        # No Ray loop to stop gracefully: the sweep stops at once, its programs killed.
        assert isinstance(raised.value, Interrupted) and interrupted.exit_code == 128 + signal.SIGINT
    finally:
        signal.signal(signal.SIGUSR1, previous_usr1)


def test_outside_the_main_thread_nothing_is_caught() -> None:
    found: dict[str, object] = {}

    def worker() -> None:
        with catch_interrupt() as interrupted:
            found["handler"] = signal.getsignal(signal.SIGINT)
            found["event"] = interrupted

    before = signal.getsignal(signal.SIGINT)
    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert found["handler"] is before and not found["event"].is_set()  # type: ignore[attr-defined]
