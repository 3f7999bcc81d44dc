"""Files that readers never see half-written: an atomic write (temp file, fsync, rename), a
folder fsync, and a blocking exclusive lock on a lock file. Used by the replay, the landing
zone, the ledger, the stack and its provisioning."""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path


def fsync_dir(folder: Path) -> None:
    with suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomic(path: Path, data: str | bytes, encoding: str = "utf-8") -> Path:
    """Write ``data`` so readers see no file (or the old one) or the whole new one, never a part.

    The bytes go to a hidden ``.<name>.<random>.tmp`` in the same folder (ignored by the
    landing zone's ``pending``), are fsynced, then renamed onto ``path``. A file that already
    holds exactly these bytes is left alone (a replay run again does not touch what landed, so
    a job listing it meanwhile does not see it change).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode(encoding) if isinstance(data, str) else data
    with suppress(OSError):
        if path.stat().st_size == len(payload) and path.read_bytes() == payload:
            return path
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


@contextlib.contextmanager
def exclusive(lock: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock`` (created with its folder if missing), waiting
    for any other holder; released on exit, or by the kernel if the process dies."""
    lock = Path(lock)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
