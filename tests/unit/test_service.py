"""Services without a service: the registry's service specs, the backoff, the pid-file lock, the
processes of a service found by their tag, and SIGTERM / SIGHUP taken as Ctrl-C by the CLI
(real child processes, no Kafka, MongoDB or Spark)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from pipelines.core.exceptions import ConfigError
from pipelines.jobs import registry
from pipelines.jobs.registry import JOBS, ServiceSpec
from pipelines.orchestration import service, supervisor

REPO = Path(__file__).resolve().parents[2]


def test_the_stream_is_the_registry_s_service_and_its_parameters_are_valid() -> None:
    services = {name for name, spec in JOBS.items() if spec.service is not None}
    assert services == {"flights_stream", "alerts"}
    for name in services:  # every service's parameters pass its job's model
        spec = JOBS[name]
        assert spec.service is not None and spec.module is not None
        spec.validate({"env": "ci", **spec.service.params})
        assert 0 < spec.service.backoff_s[0] <= spec.service.backoff_s[1]
    spec = registry.get_service("flights_stream")
    own = {"trigger": "10s", "board_trigger": "500ms"}
    assert spec.service is not None and spec.service.params == own
    assert service.service_params(spec, "ci", None) == own
    assert service.service_params(spec, "ci", {"trigger": "2s"}) == {**own, "trigger": "2s"}
    with pytest.raises(ConfigError, match="unknown parameter 'trigers'"):
        service.service_params(spec, "ci", {"trigers": "2s"})
    with pytest.raises(ConfigError, match="does not run as a service; services: "):
        registry.get_service("weather_hourly")


def test_backoff_doubles_up_to_its_ceiling() -> None:
    spec = ServiceSpec({"trigger": "1s"})
    assert [supervisor.backoff(n, spec) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert ServiceSpec({}, backoff_s=(0.5, 2.0)).describe() == "(defaults)"
    assert spec.describe() == "trigger=1s"


def test_paths_are_per_env_and_job(tmp_path: Path) -> None:
    p = service.paths("ci", "flights_stream", tmp_path)
    assert p.pidfile == tmp_path / "services" / "ci" / "flights_stream.pid"
    assert p.state == tmp_path / "services" / "ci" / "flights_stream.json"
    assert p.log == tmp_path / "logs" / "service-flights_stream-ci.log"
    assert p.tag == str(p.pidfile.resolve())


def test_the_pid_file_lock_admits_one_supervisor(tmp_path: Path) -> None:
    pidfile = tmp_path / "services" / "ci" / "x.pid"
    assert not service.held(pidfile) and service.read_pid(pidfile) is None
    fd = service.acquire(pidfile)
    assert fd is not None
    try:
        assert service.held(pidfile) and service.read_pid(pidfile) == os.getpid()
        assert service.acquire(pidfile, patience_s=0.2) is None  # a second one is refused
    finally:
        os.close(fd)
    assert not service.held(pidfile)  # released when its holder ends: a stale file, not held
    assert pidfile.exists()


def test_a_killed_holder_releases_the_lock(tmp_path: Path) -> None:
    pidfile = tmp_path / "x.pid"
    code = ("import sys, time; from pathlib import Path; from pipelines.orchestration import "
            "service; assert service.acquire(Path(sys.argv[1])); print('held', flush=True); "
            "time.sleep(60)")  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-c", code, str(pidfile)], cwd=REPO,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        assert service.held(pidfile) and service.read_pid(pidfile) == proc.pid
    finally:
        proc.kill()
        proc.wait()
    assert not service.held(pidfile)  # SIGKILL: the kernel released it


def test_leftovers_are_found_by_their_tag_and_killed_with_their_groups(tmp_path: Path) -> None:
    """A process of the service in a session of its own (as PySpark's daemon) and its child:
    found by the tag they inherited, SIGKILLed, nothing else touched."""
    tag = str(tmp_path / "svc.pid")
    env = {**os.environ, service.TAG_ENV: tag}
    code = "import subprocess, time; subprocess.Popen(['sleep', '60']); time.sleep(60)"
    leader = subprocess.Popen([sys.executable, "-c", code], env=env, start_new_session=True)
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        deadline = time.monotonic() + 10
        while len(found := service.leftovers(tag)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert leader.pid in {p.pid for p in found} and len(found) == 2
        assert service.kill_all(tag) >= 1  # the leader's group takes its child with it
        assert service.leftovers(tag) == []
        assert not psutil.pid_exists(leader.pid)  # killed and reaped (it was our child)
        assert bystander.poll() is None
    finally:
        for proc in (leader, bystander):
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_stop_a_job_like_ctrl_c(tmp_path: Path, sig: signal.Signals) -> None:
    """``python -m pipelines job``: the signal becomes KeyboardInterrupt, the job's ``finally``
    runs (a streaming query is stopped there), the command exits 130 like on Ctrl-C."""
    beat = tmp_path / "beat"
    env = {**os.environ, "TARMAC_JOBS_MODULE": "tests.fixtures.jobs",
           "TARMAC_OUTPUTS_DIR": str(tmp_path / "outputs")}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipelines", "job", "ticker", "--env", "ci", "-p", f"beat={beat}"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while _beats(beat) < 1:  # beating: the signal falls inside its loop, not before it
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    seen = _beats(beat)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert int((tmp_path / "beat.stopped").read_text()) >= seen  # its finally ran


def _beats(beat: Path) -> int:
    """The ticker's count of beats so far; -1 before its first is written (a signal sent at
    its first write found 0 beats counted, and the test failed on a clean clone once)."""
    text = beat.read_text() if beat.exists() else ""
    return int(text) if text.strip().isdigit() else -1


def test_status_shows_the_stream_s_own_health_and_its_hot_and_lake_paths() -> None:
    """What ``service status`` prints from the state it is given (a pure function): the
    ``hot`` and ``lake`` sub-documents of ``pipeline_state`` when the stream writes them."""
    from pipelines.cli.commands import _service_details, _service_line

    st = {
        "job": "flights_stream", "env": "local", "running": True, "status": "running",
        "pid": 41, "uptime_s": 3725, "restarts": 2, "log": "outputs/logs/x.log",
        "worker": {"pid": 42, "started_at": "2026-01-01T10:00:00+00:00"},
        "params": {"trigger": "1s"},
        "last_exit": {"text": "killed by SIGKILL", "ran_s": 30, "at": "t", "requested": False},
        "health": {"state": "flights_stream", "updated_s_ago": 3.0, "last_batch_id": 7,
                   "last_batch": {"rows_in": 12}, "newest_event_time": "2013-01-01 10:00",
                   "hot": {"batch_id": 9, "rows": 3, "lag": 0, "seconds": 0.8, "at_s_ago": 2},
                   "lake": {"batch_id": 4, "rows": 40, "at_s_ago": 75}},
    }  # fmt: skip
    line = _service_line(st)
    assert line.startswith("flights_stream (env local): running, pid 41, up 1 h 2 min")
    assert "2 restart(s)" in line
    text = "\n".join(_service_details(st))
    assert "worker     pid 42" in text and "params     trigger=1s" in text
    assert "last exit  killed by SIGKILL after 30 s" in text and "restarted by" in text
    assert "last batch 3 s ago (batch 7, 12 rows in)" in text
    assert "hot        2 s ago, batch_id=9 rows=3 lag=0 seconds=0.8" in text
    assert "lake       1 min 15 s ago, batch_id=4 rows=40" in text
    stopped = {**st, "running": False, "status": "stopped", "health": {"error": "MongoDB down"}}
    assert _service_line(stopped).endswith("stopped; log outputs/logs/x.log")
    assert "health     MongoDB down" in "\n".join(_service_details(stopped))
