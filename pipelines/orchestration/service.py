"""Long-lived jobs as supervised services: ``tarmac service start|stop|status|run|
ensure <job> --env E``. Which jobs are services, and with which parameters, is the registry's
``JobSpec.service`` (:class:`~pipelines.jobs.registry.ServiceSpec`); the supervisor itself (the
foreground ``run``) is :mod:`pipelines.orchestration.supervisor`.

Per (env, job), under the outputs folder:

- ``services/<env>/<job>.pid``: the supervisor's pid. The supervisor holds an exclusive
  ``flock`` on it for its whole life, so "running" is "the lock is held": the kernel releases it
  however the supervisor ends, a pid file left by a killed supervisor is stale by construction
  (never a reused pid), and a second supervisor cannot start (it is refused at the lock).
- ``services/<env>/<job>.json``: what the supervisor last said (its :class:`ServiceStatus`,
  worker pid, starts, last exit, backoff), rewritten atomically at each event: ``status``
  reads it.
- ``logs/service-<job>-<env>.log``: the supervisor's lines and its worker's output, rotated at
  10 MB (3 old files kept).

Every process of a service (supervisor, worker, Spark's JVM, PySpark's worker daemon, which runs
in a process group of its own) carries ``TARMAC_SERVICE=<pid file>`` in its environment, which
children inherit: :func:`leftovers` finds them all, even once re-parented after a SIGKILL, and
``stop`` and the next ``start`` end them. ``start`` returns once the worker runs; ``stop`` sends
the supervisor SIGTERM (it forwards it to the worker, whose ``job`` command takes it as Ctrl-C),
waits, then SIGKILLs whatever is left. ``ensure`` is cron's watchdog: start when not running.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import psutil
import structlog

from pipelines.core import files
from pipelines.core.config import REPO_ROOT, Settings, outputs_dir
from pipelines.core.exceptions import ServiceStartError, ServiceUnavailableError
from pipelines.jobs import registry
from pipelines.jobs.registry import JobSpec

log = structlog.get_logger(__name__)

TAG_ENV = "TARMAC_SERVICE"  # every process of a service: the path of its pid file
START_TIMEOUT_S = 120.0  # `start`: the worker is up within this, or the start failed


class ServiceStatus(StrEnum):
    """What a supervisor does, as its state file says (``status`` of
    ``services/<env>/<job>.json``, of ``service status``); a member is its string. Not a run's
    status: each worker it starts is a run of the ledger (a
    :class:`~pipelines.core.domain.RunStatus`)."""

    STARTING = "starting"  # the supervisor is up, no worker yet
    WAITING_FOR_JOB_LOCK = "waiting_for_job_lock"  # a `run` of the job holds its lock
    RUNNING = "running"  # its worker runs
    BACKOFF = "backoff"  # its worker ended: waiting before the next start
    STOPPING = "stopping"
    STOPPED = "stopped"  # no supervisor (or one that stopped cleanly)


@dataclass(frozen=True)
class ServicePaths:
    """Where one service (env, job) keeps its pid file, its state and its log."""

    env: str
    job: str
    root: Path  # the outputs folder

    @property
    def pidfile(self) -> Path:
        return self.root / "services" / self.env / f"{self.job}.pid"

    @property
    def state(self) -> Path:
        return self.pidfile.with_suffix(".json")

    @property
    def log(self) -> Path:
        return self.root / "logs" / f"service-{self.job}-{self.env}.log"

    @property
    def tag(self) -> str:
        return str(self.pidfile.resolve())


def paths(env: str, job: str, root: Path | None = None) -> ServicePaths:
    return ServicePaths(env, job, root or outputs_dir())


def service_params(spec: JobSpec, env: str, overrides: Mapping[str, str] | None) -> dict[str, str]:
    """The worker's ``-p`` parameters: the service's own, then ``overrides``; checked against
    the job's model (a :class:`ConfigError` before anything starts)."""
    assert spec.service is not None
    params = {**spec.service.params, **(overrides or {})}
    spec.validate({"env": env, **params})
    return params


# ------------------------------------------------------------------------ the pid file lock
def held(pidfile: Path) -> bool:
    """True when a supervisor holds ``pidfile``'s lock (probed with a shared lock, released at
    once: a supervisor starting meanwhile retries its exclusive lock for a moment)."""
    try:
        fd = os.open(pidfile, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases a lock we took
    return False


def acquire(pidfile: Path, patience_s: float = 2.0) -> int | None:
    """The exclusive lock of ``pidfile`` with this process's pid written in it: its fd (keep it
    open for life), or None when another supervisor holds it."""
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(pidfile, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + patience_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                return None
            time.sleep(0.05)  # a `status` probing the lock holds it for microseconds
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None


def read_state(p: ServicePaths) -> dict[str, Any]:
    try:
        state = json.loads(p.state.read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def write_state(p: ServicePaths, state: Mapping[str, Any]) -> None:
    files.write_atomic(p.state, json.dumps(state, indent=1, default=str) + "\n")


# ---------------------------------------------------------------------------- processes
def leftovers(tag: str) -> list[psutil.Process]:
    """Live processes carrying ``TARMAC_SERVICE=tag`` (not this process nor its ancestors)."""
    mine = {os.getpid(), *(p.pid for p in psutil.Process().parents())}
    found = []
    for proc in psutil.process_iter():
        if proc.pid in mine:
            continue
        with contextlib.suppress(psutil.Error):
            if proc.status() != psutil.STATUS_ZOMBIE and proc.environ().get(TAG_ENV) == tag:
                found.append(proc)
    return found


def kill_all(tag: str, timeout_s: float = 15.0) -> int:
    """SIGKILL every process of ``tag`` and the process groups they lead (a group leader that
    carries the tag: the worker's, the PySpark daemon's); wait until none is left. How many."""
    killed: set[int] = set()
    deadline = time.monotonic() + timeout_s
    while procs := leftovers(tag):
        for proc in procs:
            with contextlib.suppress(ProcessLookupError, PermissionError, psutil.Error):
                if os.getpgid(proc.pid) == proc.pid and proc.pid != os.getpgid(0):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.kill()
                killed.add(proc.pid)
        psutil.wait_procs(procs, timeout=1)  # a child of ours stays a zombie for its Popen
        if time.monotonic() > deadline:
            left = ", ".join(f"{p.pid} {p.name()}" for p in leftovers(tag))
            raise ServiceStartError(f"processes of {tag} survive SIGKILL: {left}")
    if killed:
        log.warning("service.leftovers_killed", tag=tag, pids=sorted(killed))
    return len(killed)


def end_leftovers(tag: str, grace_s: float = 10.0) -> int:
    """SIGTERM what a dead supervisor left running (its worker stops like on Ctrl-C), then
    SIGKILL whatever is still there after ``grace_s``. How many were found."""
    procs = leftovers(tag)
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    psutil.wait_procs(procs, timeout=grace_s)
    kill_all(tag)
    return len(procs)


# ----------------------------------------------------------------------------- commands
def is_running(settings: Settings, job: str, root: Path | None = None) -> bool:
    return held(paths(settings.env, job, root).pidfile)


def start(
    settings: Settings,
    job: str,
    overrides: Mapping[str, str] | None = None,
    root: Path | None = None,
    timeout_s: float = START_TIMEOUT_S,
) -> tuple[bool, dict[str, Any]]:
    """Start ``job``'s supervisor in the background (its own session) unless one runs; return
    (started now, :func:`status`) once its worker runs. Raises :class:`ServiceStartError`
    (with the log's tail) when the supervisor ends or the worker does not come up."""
    spec = registry.get_service(job)
    params = service_params(spec, settings.env, overrides)
    p = paths(settings.env, job, root)
    if held(p.pidfile):
        return False, status(settings, job, root, with_health=False)
    p.log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pipelines", "service", "run", job, "--env", settings.env,
           "--detached", *(a for k, v in params.items() for a in ("-p", f"{k}={v}"))]  # fmt: skip
    env = {**os.environ, TAG_ENV: p.tag}
    if root is not None:
        env["TARMAC_OUTPUTS_DIR"] = str(root)
    with open(p.log, "ab") as err:  # a supervisor that cannot even log says why here
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=err,
                                start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = read_state(p)
        ours = state.get("supervisor", {}).get("pid") == proc.pid
        # running, or waiting for a `run` of the job to end
        up = state.get("status") in (ServiceStatus.RUNNING, ServiceStatus.WAITING_FOR_JOB_LOCK)
        if ours and up and held(p.pidfile):
            _check_first_worker(p, settings.env, job)
            return True, status(settings, job, root, with_health=False)
        if proc.poll() is not None:
            if held(p.pidfile):  # another start won the lock: that one runs
                return False, status(settings, job, root, with_health=False)
            raise ServiceStartError(
                f"the {job} supervisor (env {settings.env}) exited with {proc.returncode} "
                f"while starting; see {p.log}:\n{tail(p.log)}"
            )
        time.sleep(0.2)
    raise ServiceStartError(
        f"{job} (env {settings.env}): no worker up within {timeout_s:.0f} s; see {p.log}:\n"
        f"{tail(p.log)}"
    )


def _check_first_worker(p: ServicePaths, env: str, job: str, watch_s: float = 2.0) -> None:
    """A worker that dies at once (a broken install, a bad parameter file) fails ``start``
    with its log, instead of a "started" followed by restarts in the background."""
    deadline = time.monotonic() + watch_s
    while time.monotonic() < deadline:
        last = read_state(p).get("last_exit")
        if last:
            raise ServiceStartError(
                f"{job} (env {env}): its worker ended at once ({last.get('text')}); the "
                f"supervisor keeps restarting it with backoff (`service stop {job}` to stop "
                f"it); see {p.log}:\n{tail(p.log)}"
            )
        time.sleep(0.2)


def stop(settings: Settings, job: str, root: Path | None = None) -> bool:
    """Stop ``job``'s service: SIGTERM to its supervisor (which stops its worker like Ctrl-C,
    then SIGKILLs the worker's processes after the service's grace), then SIGKILL of anything of
    the service still there. True if a supervisor was running."""
    spec = registry.get_service(job)
    assert spec.service is not None
    p = paths(settings.env, job, root)
    pid = read_pid(p.pidfile)
    running = held(p.pidfile) and pid is not None
    if running:
        assert pid is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + spec.service.stop_grace_s + 15
        while held(p.pidfile) and time.monotonic() < deadline:
            time.sleep(0.2)
        if held(p.pidfile):
            log.warning("service.supervisor_killed", job=job, pid=pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, 0)  # the demo's own child: reaped, not a zombie
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).wait(10)  # lock released: it is on its way out
    kill_all(p.tag)
    if not held(p.pidfile):
        p.pidfile.unlink(missing_ok=True)
    return running


def tail(path: Path, lines: int = 20) -> str:
    if not path.exists():
        return "(no log yet)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _age(stamp: Any, now: datetime) -> float | None:
    if isinstance(stamp, str):
        with contextlib.suppress(ValueError):
            stamp = datetime.fromisoformat(stamp)
    if not isinstance(stamp, datetime):
        return None
    stamp = stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
    return round((now - stamp).total_seconds(), 1)


def health(settings: Settings, spec: JobSpec) -> dict[str, Any]:
    """The job's own word on its health: its ``pipeline_state`` document (age of its last
    batch, newest event, and the ``hot`` / ``lake`` sub-documents when the stream writes them),
    ``{"error": ...}`` when MongoDB does not answer."""
    from pipelines.clients import mongo
    from pipelines.serving.readmodels import STATE

    try:
        db = mongo.database(settings, timeout_ms=1500)
    except ServiceUnavailableError:
        return {"error": f"MongoDB at {settings.mongo.safe_uri} does not answer"}
    state_id = (spec.service and spec.service.state_id) or spec.name
    doc = db[STATE].find_one({"_id": state_id}) or {}
    now = datetime.now(UTC)
    out: dict[str, Any] = {"state": state_id, "updated_s_ago": _age(doc.get("updated_at"), now)}
    for key in ("last_batch_id", "last_batch", "newest_event_time"):
        if key in doc:
            out[key] = doc[key]
    for part in ("hot", "lake"):
        if isinstance(doc.get(part), dict):
            sub = dict(doc[part])
            if "at" in sub:
                sub["at_s_ago"] = _age(sub.pop("at"), now)
            out[part] = sub
    return out


def status(
    settings: Settings, job: str, root: Path | None = None, with_health: bool = True
) -> dict[str, Any]:
    """Running or stopped, supervisor pid and uptime, worker, restarts, last exit, log, and
    (``with_health``) the job's ``pipeline_state``."""
    spec = registry.get_service(job)
    p = paths(settings.env, job, root)
    state = read_state(p)
    running = held(p.pidfile)
    now = datetime.now(UTC)
    sup = state.get("supervisor", {})
    out: dict[str, Any] = {
        "job": job, "env": settings.env, "running": running,
        "status": state.get("status", ServiceStatus.STOPPED) if running else ServiceStatus.STOPPED,
        "pid": read_pid(p.pidfile) if running else None,
        "uptime_s": _age(sup.get("started_at"), now) if running else None,
        "worker": state.get("worker") if running else None,
        "restarts": state.get("restarts", 0), "last_exit": state.get("last_exit"),
        "params": state.get("params") or (spec.service.params if spec.service else {}),
        "log": str(p.log), "pidfile": str(p.pidfile),
    }  # fmt: skip
    said = state.get("status")
    if not running and p.pidfile.exists() and said not in (None, ServiceStatus.STOPPED):
        out["note"] = (f"the last supervisor (pid {sup.get('pid')}) ended without stopping "
                       f"cleanly (killed?); `service start` or `ensure` replaces it")  # fmt: skip
    if with_health:
        out["health"] = health(settings, spec)
    return out
