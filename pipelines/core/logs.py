"""Logs and the console: a person reads one line per step on stdout, everything else goes to
``outputs/logs/tarmac.log``.

- :func:`configure` sends Tarmac's structured events (key=value lines, JSON with
  ``TARMAC_LOG_FORMAT=json``) to the log file; the console (stderr) gets only warnings and errors,
  or every event with ``--verbose`` (``TARMAC_VERBOSE=1``, inherited by kernels and
  spark-submit). Third-party loggers and Python warnings go to the file.
- :func:`step` prints the line a person wants (``weather_hourly  success  in 1,234 ...``).
- :func:`quiet_stderr` points file descriptor 2 at a log file while a child process starts
  (a papermill kernel, Spark's JVM), so their warnings land in that file for good instead of
  flooding the terminal; Python's own ``sys.stderr`` is back as soon as the block ends.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import structlog

from pipelines.core.config import outputs_dir

LOG_FILE = "tarmac.log"
_CONSOLE_LEVELS = ("warning", "error", "critical", "exception")


def is_verbose() -> bool:
    """True when every log line should reach the console (``--verbose``)."""
    return os.environ.get("TARMAC_VERBOSE") == "1"


def log_path() -> Path:
    return outputs_dir() / "logs" / LOG_FILE


class _LogFile:
    """``outputs/logs/tarmac.log``, opened at the first line written (a command that logs
    nothing, such as one refused for a bad parameter, leaves no file behind)."""

    def __init__(self) -> None:
        self._file: TextIO | None = None
        self.failed = False

    def write(self, text: str) -> bool:
        if self._file is None and not self.failed:
            try:
                path = log_path()
                path.parent.mkdir(parents=True, exist_ok=True)
                self._file = open(path, "a", buffering=1)  # noqa: SIM115 - open for the process
            except OSError:
                self.failed = True  # no log file: the console gets everything
        if self._file is None:
            return False
        with contextlib.suppress(OSError, ValueError):
            self._file.write(text)
            self._file.flush()
        return True

    def flush(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError, ValueError):
                self._file.flush()


class _TeeLogger:
    """structlog's final logger: every line to the file, the console only what a person needs."""

    def __init__(self, file: _LogFile) -> None:
        self.file = file

    def _write(self, level: str, message: str) -> None:
        written = self.file.write(message + "\n")
        if not written or is_verbose() or level in _CONSOLE_LEVELS:
            print(message, file=sys.stderr, flush=True)

    def __getattr__(self, level: str) -> Any:
        return lambda message: self._write(level, message)


def configure(level: str | None = None, verbose: bool | None = None) -> None:
    """Set up logging for this process (``verbose``: also for its children)."""
    if verbose:
        os.environ["TARMAC_VERBOSE"] = "1"
    level = (level or os.environ.get("TARMAC_LOG_LEVEL", "INFO")).upper()
    fmt = os.environ.get("TARMAC_LOG_FORMAT", "kv")
    renderer: structlog.types.Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.processors.KeyValueRenderer(
            key_order=["timestamp", "level", "event"], drop_missing=True
        )
    file = _LogFile()
    tee = _TeeLogger(file)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=lambda *_: tee,
        cache_logger_on_first_use=False,
    )
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(file)  # type: ignore[arg-type]  # write() and flush()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    if is_verbose():
        root.addHandler(logging.StreamHandler(sys.stderr))
    root.setLevel(logging.WARNING)
    logging.captureWarnings(True)  # library warnings: to the file, not the terminal
    # kafka-python logs every refused connection while a broker starts; our probes report it.
    logging.getLogger("kafka").setLevel(logging.CRITICAL)


def step(*parts: object) -> None:
    """One readable line on stdout: what ran and what it did."""
    print("  ".join(str(p) for p in parts if p not in (None, "")), flush=True)


def counts(doc: dict[str, Any]) -> str:
    """``in 1,234 · out 1,200 · rejected 34`` of a run's counts (``-`` when unknown)."""

    def n(key: str) -> str:
        value = doc.get(key)
        return f"{value:,}" if isinstance(value, int) else "-"

    return f"in {n('rows_in')} · out {n('rows_out')} · rejected {n('rows_rejected')}"


@contextlib.contextmanager
def quiet_stderr(path: Path) -> Iterator[None]:
    """While the block runs, file descriptor 2 writes to ``path`` (not with ``--verbose``):
    a child process started inside keeps that file as its stderr for its whole life."""
    if is_verbose():
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(path, "ab") as target:
            os.dup2(target.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
