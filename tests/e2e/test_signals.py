"""The long-lived commands stop on SIGTERM and SIGHUP as they do on Ctrl-C (the CLI takes both
as Ctrl-C: ``pipelines.core.signals``) and leave nothing running: ``dashboard`` (Voila, the
kernel of a page it served and the preheated ones) and ``schedule`` (its loop). ``demo`` is
``test_demo.py``, a job and its streaming query ``tests/unit/test_service.py``, the stream's
supervisor ``tests/integration/test_service.py``. "Nothing left": no process carries the test's own
``TARMAC_PARAMETERS_DIR`` once the command has exited (everything it starts inherits it)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from pipelines.core.config import REPO_ROOT, Settings
from pipelines.stack import ports, voila
from tests.conftest import write_parameters
from tests.processes import described, kernels, ours

pytestmark = pytest.mark.integration
SIGNALS = [signal.SIGTERM, signal.SIGHUP]


def _spawn(cmd: list[str], marker: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "TARMAC_PARAMETERS_DIR": str(marker),
           "TARMAC_OUTPUTS_DIR": str(marker.parent / "outputs")}  # fmt: skip
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, env=env, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip


def _stops_cleanly(proc: subprocess.Popen, sig: signal.Signals, marker: Path, log: Path) -> None:
    """``sig`` to the command alone (not its group, as ``kill PID`` does): exit 0 and, within
    a few seconds, nothing of what it started still running."""
    running = described(ours(str(marker)))
    try:
        proc.send_signal(sig)
        assert proc.wait(120) == 0, log.read_text(errors="replace")[-3000:]
        deadline = time.monotonic() + 15
        while (left := ours(str(marker))) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not left, "\n".join(["still running:", *described(left), "it ran:", *running])
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for p in ours(str(marker)):
            with contextlib.suppress(Exception):
                p.kill()


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_dashboard_stops_voila_and_its_kernels(
    stack: Settings, tmp_path: Path, sig: signal.Signals
) -> None:
    params, log = tmp_path / "params", tmp_path / "dashboard.log"
    write_parameters(stack, params)
    port = ports.free_port()
    cmd = [sys.executable, "-m", "pipelines", "dashboard", "--env", stack.env, "--port", str(port)]
    proc = _spawn(cmd, params, log)
    try:
        url = voila.wait_ready(proc, port, log)
        with urllib.request.urlopen(url, timeout=180) as page:  # a visit: Voila runs a kernel
            assert "Tarmac" in page.read().decode()
        expected = 1 + stack.dashboard.pool_size  # the visit's kernel and the refilled pool
        deadline = time.monotonic() + 120
        while len(kernels(ours(str(params)))) != expected and time.monotonic() < deadline:
            time.sleep(0.5)
        assert len(kernels(ours(str(params)))) == expected, described(ours(str(params)))
    finally:
        _stops_cleanly(proc, sig, params, log)
    assert f"http://127.0.0.1:{port}/" in log.read_text()


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_schedule_loop_stops(stack: Settings, tmp_path: Path, sig: signal.Signals) -> None:
    params, log = tmp_path / "params", tmp_path / "schedule.log"
    write_parameters(stack, params)
    crontab = tmp_path / "crontab"
    crontab.write_text("0 0 1 1 * echo never\n")  # nothing due while the test runs
    cmd = [sys.executable, "-m", "pipelines", "-v", "schedule", "--crontab", str(crontab)]
    proc = _spawn(cmd, params, log)
    try:
        deadline = time.monotonic() + 60
        while "schedule.loop" not in log.read_text(errors="replace"):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
    finally:
        _stops_cleanly(proc, sig, params, log)
    assert "schedule.stopped" in log.read_text()
