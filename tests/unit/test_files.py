"""``core/files``: atomic writes and the exclusive lock every writer of a shared file takes."""

from __future__ import annotations

import fcntl
import threading
from pathlib import Path

import pytest

from pipelines.core import files


def _held(lock: Path) -> bool:
    """Whether another open file description holds ``lock`` (a non-blocking try fails)."""
    with open(lock, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
        return False


def test_exclusive_creates_its_folder_holds_the_lock_and_releases_it(tmp_path: Path) -> None:
    lock = tmp_path / "a" / "b" / ".lock"
    with files.exclusive(lock):
        assert lock.exists() and _held(lock)
    assert not _held(lock)


def test_exclusive_releases_the_lock_when_the_body_raises(tmp_path: Path) -> None:
    lock = tmp_path / ".lock"
    with pytest.raises(RuntimeError), files.exclusive(lock):
        raise RuntimeError("boom")
    assert not _held(lock)


def test_a_second_holder_waits_for_the_first(tmp_path: Path) -> None:
    lock, order = tmp_path / ".lock", []
    entered = threading.Event()

    def second() -> None:
        with files.exclusive(lock):
            order.append("second")

    with files.exclusive(lock):
        thread = threading.Thread(target=second)
        thread.start()
        entered.wait(0.3)  # the second is blocked on the lock meanwhile
        order.append("first")
    thread.join(10)
    assert order == ["first", "second"]


def test_write_atomic_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = files.write_atomic(tmp_path / "x" / "f.json", "{}")
    assert path.read_text() == "{}"
    assert [p.name for p in path.parent.iterdir()] == ["f.json"]
