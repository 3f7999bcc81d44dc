"""SIGTERM and SIGHUP taken as Ctrl-C, in every process Tarmac starts from a command line.

``kill``, ``docker stop``, a supervisor stopping its worker, a closed terminal: each then takes
the path Ctrl-C takes (``KeyboardInterrupt``, after whatever the current SIGINT handler does:
PySpark's cancels the running Spark jobs first), so ``finally`` blocks run: an awaited streaming
query is stopped, a run is recorded as interrupted, children are stopped.

Every command of the CLI installs it (``cli.main``); a process that stops by a flag rather than
an exception (the service supervisor) takes the same three signals with :func:`on_stop`, and a
cleanup that must run whole (the demo's, the dashboard's) calls :func:`ignore` first.
"""

from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

TAKEN_AS_CTRL_C = (signal.SIGTERM, signal.SIGHUP)
STOP_SIGNALS = (signal.SIGINT, *TAKEN_AS_CTRL_C)  # what stops a long-lived command


def as_ctrl_c(signum: int, frame: FrameType | None) -> None:
    """A signal handler: what Ctrl-C does now, and a ``KeyboardInterrupt`` in any case."""
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler) and handler is not as_ctrl_c:
        handler(signal.SIGINT, frame)
    raise KeyboardInterrupt


def install() -> None:
    """Take SIGTERM and SIGHUP as Ctrl-C in this process (its main thread)."""
    for sig in TAKEN_AS_CTRL_C:
        signal.signal(sig, as_ctrl_c)


def on_stop(handler: Callable[[int, FrameType | None], Any]) -> None:
    """``handler`` for Ctrl-C, SIGTERM and SIGHUP alike (in this process's main thread)."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, handler)


def ignore() -> None:
    """Ignore Ctrl-C, SIGTERM and SIGHUP from now on: the cleanup under way runs whole."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


_PR_SET_PDEATHSIG = 1
try:  # resolved at import: a child between fork and exec only calls it
    _prctl: Any = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux: leftovers are ended by their service tag
    _prctl = None


def tie_to_parent(parent: int, sig: int = signal.SIGTERM) -> bool:
    """Have this process get ``sig`` when its parent (the thread that started it) dies
    (Linux ``PR_SET_PDEATHSIG``); False when ``parent`` is already gone (died before this took
    effect: the caller should exit)."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, int(sig))
    return os.getppid() == parent
