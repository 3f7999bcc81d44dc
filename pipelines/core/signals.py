"""SIGTERM and SIGHUP taken as Ctrl-C, in every process Tarmac starts from a command line.

``kill``, ``docker stop``, a supervisor stopping its worker, a closed terminal: each then takes
the path Ctrl-C takes (``KeyboardInterrupt``, after whatever the current SIGINT handler does:
PySpark's cancels the running Spark jobs first), so ``finally`` blocks run: an awaited streaming
query is stopped, a run is recorded as interrupted, children are stopped.
"""

from __future__ import annotations

import signal
from types import FrameType

TAKEN_AS_CTRL_C = (signal.SIGTERM, signal.SIGHUP)


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
