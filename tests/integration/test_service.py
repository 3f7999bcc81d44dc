"""The flight stream as a supervised service, on the real stack, through the command line
(``python -m pipelines service ...`` in child processes, outputs and parameters of their own):
the supervisor starts the worker, a second start is refused politely, a SIGKILLed worker is
restarted after its backoff, a SIGKILLed service (supervisor and worker) is brought back by the
watchdog (``ensure``), ``stop`` leaves no process behind (Spark's JVM and PySpark's daemon
included), and the run ledger tells a crash from a deliberate stop."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest

from pipelines.clients import mongo
from pipelines.core.config import REPO_ROOT, Settings
from pipelines.jobs.path_process import NICE as LAKE_NICE
from pipelines.jobs.registry import JOBS
from pipelines.orchestration import service
from pipelines.orchestration.ledger import Ledger
from pipelines.sources import replay
from tests.conftest import isolate, write_parameters

pytestmark = pytest.mark.integration

JOB = "flights_stream"


def _lake_process(worker: int) -> psutil.Process | None:
    """The lake path's process among the worker's descendants, once it runs."""
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process(worker).children(recursive=True):
            if "pipelines.jobs.path_process" in " ".join(child.cmdline()):
                return child
    return None


def _wait(condition, timeout_s: float, what: str, log: Path | None = None):  # noqa: ANN001, ANN202
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        if time.monotonic() > deadline:
            tail = service.tail(log, 40) if log else ""
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}\n{tail}")
        time.sleep(0.2)
    return value


class Cli:
    """``python -m pipelines service <action> flights_stream --env E`` with the test's own
    parameters and outputs folders."""

    def __init__(self, settings: Settings, tmp: Path) -> None:
        params = tmp / "params"
        write_parameters(settings, params)
        self.root = tmp / "outputs"
        self.env = {**os.environ, "TARMAC_PARAMETERS_DIR": str(params),
                    "TARMAC_OUTPUTS_DIR": str(self.root)}  # fmt: skip
        self.settings = settings
        self.paths = service.paths(settings.env, JOB, self.root)

    def __call__(self, action: str, *extra: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "pipelines", "service", action, JOB,
               "--env", self.settings.env, *extra]  # fmt: skip
        return subprocess.run(cmd, env=self.env, cwd=REPO_ROOT, capture_output=True,
                              text=True, timeout=300)  # fmt: skip

    def state(self) -> dict:
        return service.read_state(self.paths)

    def cleanup(self) -> None:
        with contextlib.suppress(Exception):
            self("stop")
        service.kill_all(self.paths.tag)


@pytest.fixture
def cli(stack: Settings, tmp_path: Path, unique: str):
    settings = isolate(stack, tmp_path, unique)
    settings = settings.model_copy(update={"mongo": settings.mongo.model_copy(
        update={"database": f"{stack.mongo.database}_svc_{unique}"})})  # fmt: skip
    start = datetime(2013, 3, 4, 10, tzinfo=UTC)  # an hour of events: the topics exist
    replay.make(settings, "flights", progress=False, start=start,
                end=start.replace(hour=11), catch_up=True).run()  # fmt: skip
    c = Cli(settings, tmp_path)
    yield c
    c.cleanup()
    db = mongo.database(settings)
    db.client.drop_database(db.name)


def test_the_stream_as_a_service_restarts_comes_back_and_stops_clean(cli: Cli) -> None:
    t0 = time.monotonic()
    started = cli("start", "-p", "trigger=2s")
    assert started.returncode == 0, started.stderr
    assert "flights_stream (env ci): running" in started.stdout and "(started)" in started.stdout
    first = cli.state()
    supervisor, worker = first["supervisor"]["pid"], first["worker"]["pid"]
    assert psutil.Process(worker).ppid() == supervisor
    assert os.getpgid(worker) == worker != os.getpgid(supervisor)  # a group of its own
    print(f"service start {time.monotonic() - t0:.1f} s")

    # the lake path runs in a process of its own under the worker, at a lower priority (the
    # live board's query stays in the worker)
    def niced() -> psutil.Process | None:  # it lowers its own priority first thing
        child = _lake_process(worker)
        with contextlib.suppress(psutil.Error):
            if child and child.nice() >= psutil.Process(worker).nice() + LAKE_NICE:
                return child
        return None

    child = _wait(niced, 180, "the lake process, niced", cli.paths.log)
    assert os.getpgid(child.pid) == worker  # a fault point that kills the job kills it too

    again = cli("start")  # one instance at a time: said politely, exit 0
    assert again.returncode == 0 and "already running: nothing done" in again.stdout
    assert cli.state()["supervisor"]["pid"] == supervisor

    # the worker dies: the supervisor starts another after its backoff (1 s)
    os.kill(worker, signal.SIGKILL)

    def restarted() -> dict | None:
        s = cli.state()
        return s if s.get("restarts") == 1 and s.get("status") == "running" else None

    state = _wait(restarted, 60, "a restart", cli.paths.log)
    assert state["last_exit"]["code"] == -signal.SIGKILL and not state["last_exit"]["requested"]
    exited = datetime.fromisoformat(state["last_exit"]["at"])
    restarted = datetime.fromisoformat(state["worker"]["started_at"])
    assert (restarted - exited).total_seconds() >= 1.0  # backoff
    assert state["worker"]["pid"] != worker and state["supervisor"]["pid"] == supervisor
    status = cli("status")
    assert status.returncode == 0 and "1 restart(s)" in status.stdout, status.stdout
    assert "killed by SIGKILL" in status.stdout

    # the whole service dies (supervisor and worker): status says so, the watchdog restarts it
    worker = state["worker"]["pid"]
    os.kill(supervisor, signal.SIGKILL)
    os.killpg(worker, signal.SIGKILL)
    _wait(lambda: not service.held(cli.paths.pidfile), 10, "the pid file's lock released")
    status = cli("status")
    assert status.returncode == 1 and "ended without stopping cleanly" in status.stdout
    t1 = time.monotonic()
    back = cli("ensure")
    assert back.returncode == 0 and "(started)" in back.stdout, back.stderr
    print(f"watchdog restart {time.monotonic() - t1:.1f} s")
    assert cli.state()["supervisor"]["pid"] != supervisor
    quiet = cli("ensure")  # running: one line, nothing done
    assert quiet.returncode == 0 and len(quiet.stdout.splitlines()) == 1
    assert "running" in quiet.stdout and "(started)" not in quiet.stdout

    # stop: nothing of the service is left
    t2 = time.monotonic()
    stopped = cli("stop")
    assert stopped.returncode == 0 and "stopped in" in stopped.stdout, stopped.stderr
    print(f"service stop {time.monotonic() - t2:.1f} s")
    assert service.leftovers(cli.paths.tag) == []
    assert not cli.paths.pidfile.exists()
    assert cli("status").returncode == 1
    assert cli("stop").stdout.strip().endswith("was not running")

    # the ledger: two crashes, then a deliberate stop (no alarm for it)
    docs = Ledger(cli.settings, cli.root / "logs").recent(JOB)
    runs = sorted(docs, key=lambda d: d["start"])
    assert [d["status"] for d in runs] == ["failed", "failed", "stopped"], runs
    assert runs[0]["error"]["type"] == "WorkerExited"
    assert runs[1]["error"]["type"] == "Abandoned"  # its supervisor was killed with it
    assert {d["trigger"] for d in runs} == {"service"}
    # `start -p` overrode the trigger; the watchdog starts the registry's service parameters
    spec = JOBS[JOB].service
    assert spec is not None
    assert [d["params"]["trigger"] for d in runs] == ["2s", "2s", spec.params["trigger"]]
    assert {d["params"]["board_trigger"] for d in runs} == {spec.params["board_trigger"]}
