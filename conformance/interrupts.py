"""Orderly stops: SIGTERM is handled as Ctrl-C is.

A CI job's time limit (or `timeout`) ends a command with SIGTERM, whose default
action ends the process at once: no worker stopped, no summary written. While a
command runs (`handled`), SIGTERM raises `Terminated`, a KeyboardInterrupt, so that
every path that handles Ctrl-C handles it too: pytest ends the session, the run closes
(workers stopped, the run record ended with what finished, summary.json written).
The command then exits with 128 + the signal's number, as a shell reports a process
ended by it: 130 for SIGINT, 143 for SIGTERM (`exit_status`). A first signal that
comes while the run closes (`finishing`) is only noted: the close is the orderly stop
it asks for; a second one stops at once.
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

STOPPING = (signal.SIGINT, signal.SIGTERM)
_received: list[int] = []  # the signals received while `handled`, first first
_finishing = [0]  # `finishing` blocks in progress


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread as Ctrl-C raises KeyboardInterrupt."""


def _stop(signum, frame):
    _received.append(signum)
    if _finishing[0] and len(_received) == 1:
        return  # the run is closing already: the orderly stop this signal asks for
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


@contextmanager
def handled():
    """For the duration: SIGINT and SIGTERM raise KeyboardInterrupt (`Terminated` for
    SIGTERM) in the main thread and are remembered (`received`). A signal ignored
    when it starts stays ignored (a job started with `nohup`, say); outside the main
    thread, where Python cannot set handlers, nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _received.clear()
    previous = {}
    for signum in STOPPING:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            previous[signum] = signal.signal(signum, _stop)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _received.clear()  # what a later command in this process reads is its own


@contextmanager
def finishing():
    """For the duration (a run closing: workers stopped, results and summary written),
    the first signal to stop the command is noted (`received`) but raises nothing."""
    _finishing[0] += 1
    try:
        yield
    finally:
        _finishing[0] -= 1


def received() -> str | None:
    """The name of the first signal that asked the command to stop ('SIGINT',
    'SIGTERM'), or None."""
    return signal.Signals(_received[0]).name if _received else None


def exit_status() -> int:
    """128 + the number of the signal that stopped the command (130 when a
    KeyboardInterrupt came without one: Ctrl-C outside `handled`)."""
    return 128 + (_received[0] if _received else signal.SIGINT)
