"""``python -m pipelines demo`` stopped by SIGTERM leaves nothing running: the replay, Voila, the
flight stream service (its supervisor, worker, Spark JVM and PySpark daemon), the alerts
service, and a file job's run caught mid-way (the runner, its papermill kernel and that kernel's
Spark JVM). Everything the demo starts inherits its environment, so "nothing left" is checked
as: no process carries the test's own ``TARMAC_PARAMETERS_DIR`` once the demo has exited. The
shared ``ci`` stack was running before: the demo leaves it running."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from pipelines.clients import mongo
from pipelines.core.config import REPO_ROOT, Settings
from pipelines.orchestration import service
from pipelines.stack import ports
from pipelines.stack.services import services
from tests.conftest import isolate, write_parameters
from tests.processes import described, ours, running

pytestmark = pytest.mark.integration


def test_sigterm_stops_everything_the_demo_started(
    stack: Settings, tmp_path: Path, unique: str
) -> None:
    settings = isolate(stack, tmp_path, unique)
    settings = settings.model_copy(update={"mongo": settings.mongo.model_copy(
        update={"database": f"{stack.mongo.database}_demo_{unique}"})})  # fmt: skip
    params, outputs = tmp_path / "params", tmp_path / "outputs"
    write_parameters(settings, params)
    marker = str(params)
    env = {**os.environ, "TARMAC_PARAMETERS_DIR": marker, "TARMAC_OUTPUTS_DIR": str(outputs)}
    port = ports.free_port()
    cmd = [sys.executable, "-m", "pipelines", "demo", "--env", settings.env, "--port", str(port),
           "--speed", "600", "--start", "2013-03-04T10:00:00Z"]  # fmt: skip
    stack_before = {s.name: s.pid() for s in services(settings)}
    log = tmp_path / "demo.log"
    with open(log, "ab") as out:
        demo = subprocess.Popen(cmd, env=env, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
    svc = service.paths(settings.env, "flights_stream", outputs)
    alerts = service.paths(settings.env, "alerts", outputs)
    try:

        def busy() -> bool:
            """The stream and alerts services up and a weather run's papermill kernel
            started."""
            cmdlines = [line for _, line in running(ours(marker))]
            kernel = any("ipykernel" in c for c in cmdlines)
            weather = any("run weather_hourly" in c for c in cmdlines)
            return service.held(svc.pidfile) and service.held(alerts.pidfile) and weather and kernel

        deadline = time.monotonic() + 420
        while not busy():
            assert demo.poll() is None, log.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
            time.sleep(0.5)
        ran = described(ours(marker))
        t0 = time.monotonic()
        demo.send_signal(signal.SIGTERM)
        assert demo.wait(240) == 0, log.read_text(errors="replace")[-3000:]
        print(f"demo stopped in {time.monotonic() - t0:.1f} s; it ran {len(ran)} processes")
        deadline = time.monotonic() + 10  # a JVM whose driver is gone exits on its own
        while (left := ours(marker)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not left, "\n".join(["still running:", *described(left), "it ran:", *ran])
        assert not service.held(svc.pidfile) and not service.held(alerts.pidfile)
        assert {s.name: s.pid() for s in services(settings)} == stack_before  # shared: kept
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
        for proc in ours(marker):
            with contextlib.suppress(psutil.Error):
                proc.kill()
        db = mongo.database(settings)
        db.client.drop_database(db.name)
