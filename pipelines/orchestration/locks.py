"""One lock per (env, job): a second run of a job that is still running exits at once.

The lock is ``fcntl.flock`` on ``outputs/locks/<env>-<job>.lock``, non-blocking. The kernel
releases it when the holder's process ends, however it ends (SIGKILL, OOM, reboot), so a lock
left by a killed run is simply taken by the next one: there is no stale-lock heuristic. The
holder writes its pid, host, start time and run id into the file, for the message the next
run prints and so that the next holder can tell which run was abandoned.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipelines.core.exceptions import JobLockedError


def lock_path(locks_dir: Path, env: str, job: str) -> Path:
    return locks_dir / f"{env}-{job}.lock"


def _read_holder(fd: int) -> dict[str, Any]:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = b""
    while chunk := os.read(fd, 65536):
        raw += chunk
    try:
        holder = json.loads(raw.decode() or "{}")
    except (ValueError, UnicodeDecodeError):
        return {}
    return holder if isinstance(holder, dict) else {}


def read_holder(path: Path) -> dict[str, Any]:
    """What the lock file says about its (last) holder; ``{}`` when empty or unreadable."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return {}
    try:
        return _read_holder(fd)
    finally:
        os.close(fd)


@dataclass
class JobLock:
    """``with JobLock(path, job=..., env=...) as lock:``; raises :class:`JobLockedError`."""

    path: Path
    job: str
    env: str
    info: dict[str, Any] = field(default_factory=dict)  # extra holder fields, e.g. run_id
    previous: dict[str, Any] = field(default_factory=dict)  # holder found in the file, if any
    _fd: int | None = field(default=None, repr=False)

    def acquire(self) -> JobLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            since = holder.get("start", "?")
            raise JobLockedError(
                f"job {self.job} (env {self.env}) is already running: pid "
                f"{holder.get('pid', '?')} on {holder.get('host', '?')} since {since} "
                f"(run {holder.get('run_id', '?')}, lock {self.path}); this run does nothing"
            ) from None
        # Ours now. What the file still holds is a run that ended without releasing cleanly
        # (killed) or one that ended normally (content cleared on release).
        self.previous = _read_holder(fd)
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "start": datetime.now(UTC).isoformat(timespec="seconds"),
            "job": self.job,
            "env": self.env,
            **self.info,
        }
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(holder).encode())
        os.fsync(fd)
        self._fd = fd
        return self

    def update(self, **info: Any) -> None:
        """Rewrite the holder information (e.g. the run id of a new attempt)."""
        if self._fd is None:
            return
        holder = {**_read_holder(self._fd), **info}
        os.ftruncate(self._fd, 0)
        os.lseek(self._fd, 0, os.SEEK_SET)
        os.write(self._fd, json.dumps(holder).encode())

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)  # a clean end leaves no holder behind
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    @property
    def took_over_stale(self) -> bool:
        """True when the file named a holder that never released it (a killed run)."""
        return bool(self.previous.get("pid"))

    def __enter__(self) -> JobLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
