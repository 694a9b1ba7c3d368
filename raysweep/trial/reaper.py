"""Processes that end a sweep's programs, whatever ends the process that started them.

Run by path (``python -I reaper.py MODE ...``), stdlib only, so it starts fast
and ignores the user's PYTHON* settings; `raysweep.trial.child` and the driver
also import it for `MARK_ENV` and `kill_marked`.

Two modes, both waiting on a "lifeline" pipe whose other end belongs to the
process they guard (the pipe reads end of file once that process closes it or
dies, even of SIGKILL):

- ``run LIFELINE RESULTS GRACE MARK COMMAND...``: the reaper of one program.
  It forks and its first process exits at once (Ray SIGKILLs the children of
  a worker it stops, which would skip the grace period); the reaper proper
  leads a session of its own, starts the program in it and waits.  When the
  lifeline ends it sends SIGTERM to the group and the marked processes,
  SIGKILL to the group after ``GRACE`` seconds.  It writes ``{"exit": status}``
  to the result pipe, lets go of the trial's pipes, then SIGKILLs what the
  program left behind (the marked processes, the group) and itself.
- ``watch LIFELINE GRACE MARK``: the driver's watchdog, one per sweep driver.
  When the driver is gone it ends every process still marked as its own.

A process group does not hold every descendant: a program's helper may start a
session of its own (``setsid``, a daemon).  So each program runs with
``RAYSWEEP_MARK=<driver mark>/<attempt>`` in its environment, which every
descendant inherits at ``exec``; the reaper and the watchdog find marked
processes through ``/proc/<pid>/environ`` (Linux; processes of the same user).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

#: The environment variable marking a program and its descendants as one driver's, one attempt's.
MARK_ENV = "RAYSWEEP_MARK"
_POLL_S = 0.05


def marked(prefix: str) -> list[int]:
    """Pids of live processes (not this one) whose environment has ``RAYSWEEP_MARK=<prefix>...``."""
    needle = f"{MARK_ENV}={prefix}".encode()
    me, found = os.getpid(), []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []  # no /proc: process groups are all there is
    for entry in entries:
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                environ = f.read()
        except OSError:
            continue  # gone, or another user's
        if any(item.startswith(needle) for item in environ.split(b"\0")):
            found.append(int(entry))
    return found


def _signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except OSError:
            pass


def _outside_group(pids: list[int]) -> list[int]:
    """The `pids` not in this process's group (those the group's signal already reached)."""
    own, outside = os.getpgrp(), []
    for pid in pids:
        try:
            if os.getpgid(pid) != own:
                outside.append(pid)
        except OSError:
            pass  # gone already
    return outside


def kill_marked(prefix: str, grace: float, *, stop_early: Callable[[], bool] = lambda: False) -> None:
    """SIGTERM every process marked `prefix`, SIGKILL those still there after `grace` seconds.

    Processes that appear meanwhile (a program forking as it stops) are found
    by the next look; with `grace` 0 everything gets SIGKILL at once.
    """
    deadline = time.monotonic() + grace
    while grace > 0 and time.monotonic() < deadline and not stop_early():
        pids = marked(prefix)
        if not pids:
            return
        _signal_all(pids, signal.SIGTERM)
        time.sleep(_POLL_S * 4)
    for _ in range(100):  # until none is left: a process forks between a look and a kill
        pids = marked(prefix)
        if not pids:
            return
        _signal_all(pids, signal.SIGKILL)
        time.sleep(_POLL_S)


def _run(lifeline: int, results: int, grace: float, mark: str, command: list[str]) -> None:
    if os.fork():
        os._exit(0)  # the trial's child exits: Ray kills a worker's children when it stops the worker
    os.setsid()  # the reaper proper leads a session of its own, with the program in its group
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, lambda *_: None)  # a handler, not SIG_IGN: the program gets the defaults back
    try:
        child = subprocess.Popen(command, pass_fds=(results,))
    except (OSError, ValueError) as exc:
        print(f"raysweep: cannot start {command[:1]}: {exc}", file=sys.stderr, flush=True)
        status = 127
    else:
        done = threading.Event()

        def stop() -> None:
            os.read(lifeline, 1)  # b"" once the trial closes its end or its process dies
            if not done.is_set():
                os.killpg(0, signal.SIGTERM)
                _signal_all(_outside_group(marked(mark)), signal.SIGTERM)  # one SIGTERM each
                if not done.wait(grace):
                    os.killpg(0, signal.SIGKILL)

        threading.Thread(target=stop, daemon=True).start()
        status = child.wait()
        done.set()
    try:
        os.write(results, b'{"exit": %d}\n' % status)
    except OSError:
        pass  # the trial is gone (its worker was killed): no one to tell
    _let_go(results)
    kill_marked(mark, 0)  # what the program left behind, in the group or not
    os.killpg(0, signal.SIGKILL)  # and what is in the group without the mark (its environment replaced)


def _let_go(results: int) -> None:
    """Close this process's ends of the trial's pipes, so the trial goes on while the leftovers are sought.

    The trial reads the result and output pipes to their end: only processes
    the program left behind still holding them keep it waiting, until killed.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    for fd in (1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    os.close(results)


def _watch(lifeline: int, grace: float, mark: str) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C meant for the driver
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the driver's terminal closing
    os.read(lifeline, 1)
    kill_marked(mark + "/", grace)


if __name__ == "__main__":
    if sys.argv[1] == "run":
        _run(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5], sys.argv[6:])
    else:
        _watch(int(sys.argv[2]), float(sys.argv[3]), sys.argv[4])
