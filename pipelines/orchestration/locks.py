"""One lock per (env, job): a second run of a job that is still running exits at once.

The lock is ``fcntl.flock`` on ``outputs/locks/<env>-<job>.lock``, non-blocking. The kernel
releases it when the holder's process ends, however it ends (SIGKILL, OOM, reboot), so a lock
left by a killed run is simply taken by the next one: there is no stale-lock heuristic. The
holder writes its pid, host, start time and run id into the file, for the message the next
run prints and so that the next holder can tell which run was abandoned.

A notebook run by hand (a JupyterLab kernel, not the runner) takes the same lock with
:func:`hold` (``from pipelines.orchestration.notebook import job_lock``) in its first code cell:
it holds the lock until ``lock.release()`` or the kernel ends, and raises
:class:`JobLockedError` naming the holder (pid, host, since when, by what: cron, manual, a hand
run) when a run holds it. Under the runner the kernel's lock is the runner's: the runner tells
its kernel which lock it holds (``$TARMAC_RUN_LOCK``) and :func:`hold` sees that its holder is
the kernel's parent, so the notebook runs unchanged under ``run``, cron, ``submit`` and by hand.
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

import psutil

from pipelines.core.config import outputs_dir
from pipelines.core.exceptions import JobLockedError

RUN_LOCK_ENV = "TARMAC_RUN_LOCK"  # set by the runner for its kernel: the lock file it holds


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
            by = f" by {holder['trigger']}" if holder.get("trigger") else ""
            raise JobLockedError(
                f"job {self.job} (env {self.env}) is already running: pid "
                f"{holder.get('pid', '?')} on {holder.get('host', '?')} since {since}{by} "
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


# --- a notebook run by hand ---------------------------------------------------------------------
HAND_TRIGGER = "a hand run (notebook kernel)"


@dataclass
class HeldLock:
    """What :func:`hold` returns: the job's lock, held by this process (``owner`` ``"this
    process"``) or by the runner that executes this kernel (``owner`` names it). ``release()``
    (the notebook's last cell) frees a lock this process holds; usable as a context manager."""

    path: Path
    job: str
    env: str
    owner: str
    _lock: JobLock | None = field(default=None, repr=False)

    def release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            _HELD.pop(self.path, None)
            self._lock = None

    def __enter__(self) -> HeldLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


_HELD: dict[Path, HeldLock] = {}  # the locks this process holds by hold(): a re-run cell reuses


def _runner_holds(path: Path) -> dict[str, Any] | None:
    """The holder of ``path`` when it is a parent of this process (the runner of this kernel)."""
    holder = read_holder(path)
    try:
        parents = {p.pid for p in psutil.Process().parents()}
    except psutil.Error:
        return None
    if holder.get("pid") in parents and holder.get("host") == socket.gethostname():
        return holder
    return None


def hold(job: str, env: str | None = None, *, locks_dir: Path | None = None) -> HeldLock:
    """Take job ``job``'s lock of ``env`` (default ``$TARMAC_ENV`` or ``local``) for a notebook
    run by hand, as the runner takes it for ``run`` and cron: ``outputs/locks/<env>-<job>.lock``.

    - free: held by this process until :meth:`HeldLock.release` or the process (the kernel) ends;
      a run started meanwhile (cron) exits at once, its ledger line saying "a hand run" holds it;
    - held by the runner that executes this notebook (``run``, cron): nothing to take;
    - held by another run: :class:`JobLockedError` saying which (pid, host, since, by whom).

    Calling it again in the same kernel returns the lock it already holds.
    """
    env = env or os.environ.get("TARMAC_ENV") or "local"
    path = lock_path(locks_dir or outputs_dir() / "locks", env, job)
    run_lock = os.environ.get(RUN_LOCK_ENV)
    if locks_dir is None and run_lock and Path(run_lock).name == path.name:
        path = Path(run_lock)  # the runner's own outputs folder (tests, sandboxes)
    if path in _HELD:
        return _HELD[path]
    lock = JobLock(path, job=job, env=env, info={"run_id": f"hand-{os.getpid()}",
                                                 "trigger": HAND_TRIGGER})  # fmt: skip
    try:
        lock.acquire()
    except JobLockedError as exc:
        told = run_lock is not None and Path(run_lock) == path  # by the runner of this kernel
        if told and (holder := _runner_holds(path)) is not None:
            owner = f"the runner (pid {holder.get('pid')}, run {holder.get('run_id', '?')})"
            return HeldLock(path, job, env, owner)
        raise JobLockedError(
            f"{exc}. This notebook was not run: wait for that run to end (tarmac "
            f"runs --job {job} --env {env}), then run it again"
        ) from None
    held = _HELD[path] = HeldLock(path, job, env, "this process", lock)
    return held
