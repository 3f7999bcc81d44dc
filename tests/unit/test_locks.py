"""One lock per (env, job): held -> JobLockedError at once; a killed holder's lock is taken."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipelines.core.exceptions import JobLockedError
from pipelines.orchestration.locks import JobLock, lock_path, read_holder

REPO = Path(__file__).resolve().parents[2]

HOLDER = """
import sys, time
from pathlib import Path
from pipelines.orchestration.locks import JobLock
lock = JobLock(Path(sys.argv[1]), job="tiny", env="ci", info={"run_id": "killed-run"}).acquire()
print("held", flush=True)
time.sleep(120)
"""


def test_second_holder_is_refused_with_who_holds_it(tmp_path: Path) -> None:
    path = lock_path(tmp_path / "locks", "ci", "tiny")
    assert path == tmp_path / "locks" / "ci-tiny.lock"
    with JobLock(path, job="tiny", env="ci", info={"run_id": "r1"}) as first:
        holder = read_holder(path)
        assert holder["pid"] == os.getpid() and holder["run_id"] == "r1"
        assert holder["job"] == "tiny" and holder["env"] == "ci" and holder["start"]
        started = time.monotonic()
        with pytest.raises(JobLockedError) as err:
            JobLock(path, job="tiny", env="ci").acquire()
        assert time.monotonic() - started < 1  # exits at once, never waits
        message = str(err.value)
        assert "job tiny (env ci) is already running" in message
        assert f"pid {os.getpid()}" in message and "run r1" in message
        assert err.value.exit_code == JobLockedError.exit_code == 8
        first.update(run_id="r2")
        assert read_holder(path)["run_id"] == "r2"
    # released: free again, and a clean release leaves no holder behind
    assert read_holder(path) == {}
    with JobLock(path, job="tiny", env="ci") as again:
        assert not again.took_over_stale


def test_locks_are_per_env_and_job(tmp_path: Path) -> None:
    with (
        JobLock(lock_path(tmp_path, "ci", "tiny"), job="tiny", env="ci"),
        JobLock(lock_path(tmp_path, "local", "tiny"), job="tiny", env="local"),
        JobLock(lock_path(tmp_path, "ci", "smoke"), job="smoke", env="ci"),
    ):
        pass


def test_lock_of_a_sigkilled_holder_is_taken_over(tmp_path: Path) -> None:
    path = lock_path(tmp_path, "ci", "tiny")
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        with pytest.raises(JobLockedError, match=f"pid {proc.pid}"):
            JobLock(path, job="tiny", env="ci").acquire()
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # the kernel released the flock with the process; its holder line is still in the file
    assert read_holder(path)["pid"] == proc.pid
    with JobLock(path, job="tiny", env="ci") as lock:
        assert lock.took_over_stale
        assert lock.previous["pid"] == proc.pid and lock.previous["run_id"] == "killed-run"
        assert read_holder(path)["pid"] == os.getpid()
