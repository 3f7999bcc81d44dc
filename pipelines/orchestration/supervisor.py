"""The supervisor of a long-lived job (``tarmac service run <job>``): what
``service start`` detaches, docker-compose's ``stream`` service runs in the foreground.

It holds the service's pid-file lock (one supervisor per env and job) and the job's run lock
(``outputs/locks/<env>-<job>.lock``, so a ``run`` of the same job waits for the service and the
service for it), then runs the worker, ``python -m pipelines job <job> --env E -p k=v ...`` with
the service's parameters, as a child in its own process group, and:

- restarts it whenever it ends, after a backoff of ``backoff_s[0]`` doubling up to
  ``backoff_s[1]`` (1 s, 2 s, 4 s ... 60 s), back to the start once a worker ran ``stable_s``;
- records each start and exit: a line in its log, and a document in the run ledger
  (``pipeline_runs``, trigger ``service``): ``running`` while it runs, ``failed`` when it died
  (a crash the dashboard should show), ``stopped`` when it was asked to stop (no alarm);
- copies the worker's output into ``outputs/logs/service-<job>-<env>.log`` (rotated at 10 MB,
  three old files kept), and to stdout in the foreground;
- on SIGTERM, SIGHUP or SIGINT forwards SIGTERM to the worker (the ``job`` command takes it as
  Ctrl-C: a streaming query is stopped cleanly), waits up to ``stop_grace_s``, then SIGKILLs
  every process of the service (the worker's group, Spark's JVM, PySpark's daemon group);
- on Linux the worker gets SIGTERM if the supervisor dies (``PR_SET_PDEATHSIG``); anything a
  killed supervisor left is ended by the next one before its first worker starts.
"""

from __future__ import annotations

import contextlib
import json
import logging
import logging.handlers
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import IO, Any

import structlog

from pipelines.core import signals
from pipelines.core.config import REPO_ROOT, Settings, outputs_dir
from pipelines.core.domain import RunStatus
from pipelines.core.exceptions import JobLockedError
from pipelines.jobs import registry
from pipelines.jobs.registry import ServiceSpec
from pipelines.orchestration import service
from pipelines.orchestration.ledger import Ledger, RunLog, now
from pipelines.orchestration.locks import JobLock, lock_path
from pipelines.orchestration.record import RunRecord
from pipelines.orchestration.runner import Paths, new_run_id
from pipelines.orchestration.service import ServiceStatus

log = structlog.get_logger(__name__)

LOG_MAX_BYTES = 10 * 1024 * 1024
LOG_BACKUPS = 3
POLL_S = 0.2
LOCK_RETRY_S = 5.0  # the job's run lock held by a `run`: try again this often


def backoff(failures: int, spec: ServiceSpec) -> float:
    """Seconds to wait before restart number ``failures`` (1, 2, ...) of a row of quick exits."""
    first, longest = spec.backoff_s
    return min(first * 2 ** max(failures - 1, 0), longest)


def _die_with_parent(parent: int) -> None:
    """In the worker, before exec: SIGTERM when the supervisor dies (Linux)."""
    if not signals.tie_to_parent(parent):  # died before prctl took effect
        os._exit(0)


def _count(value: Any) -> int | None:
    """A count of the worker's result line (the ``job`` command's JSON), or None: any other
    value is not a count (a JSON line of its output that was not its result)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _exit_text(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


class Supervisor:
    """Runs one service in the foreground until SIGTERM/SIGHUP/SIGINT; see the module doc."""

    def __init__(
        self, settings: Settings, job: str, overrides: Mapping[str, str] | None, echo: bool
    ) -> None:
        self.settings, self.spec = settings, registry.get_service(job)
        assert self.spec.service is not None
        self.svc: ServiceSpec = self.spec.service
        self.params = service.service_params(self.spec, settings.env, overrides)
        self.paths = service.paths(settings.env, job)
        self.echo = echo
        self.stopping = False
        self.worker: subprocess.Popen | None = None
        self.term_sent_at: float | None = None
        self.started_at = now()
        self.state: dict[str, Any] = {}
        self.last_json: dict[str, Any] | None = None
        self.run_id: str | None = None
        self.record: RunRecord | None = None  # the ledger's record of the current worker
        self.outputs = Paths(outputs_dir())
        self.ledger = Ledger(settings, self.outputs.logs, RunLog(self.outputs.logs))
        self.out = self._logger()

    # ------------------------------------------------------------------------ logging
    def _logger(self) -> logging.Logger:
        self.paths.log.parent.mkdir(parents=True, exist_ok=True)
        out = logging.getLogger(f"tarmac.service.{self.settings.env}.{self.spec.name}")
        out.propagate = False
        out.setLevel(logging.INFO)
        for h in list(out.handlers):
            out.removeHandler(h)
        handler = logging.handlers.RotatingFileHandler(
            self.paths.log, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS
        )
        handler.setFormatter(logging.Formatter("%(message)s"))
        out.addHandler(handler)
        if self.echo:
            console = logging.StreamHandler(sys.stdout)
            console.setFormatter(logging.Formatter("%(message)s"))
            out.addHandler(console)
        return out

    def say(self, event: str, **fields: Any) -> None:
        """One line of the supervisor in the service's log (and tarmac.log)."""
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"
        text = " ".join(f"{k}={v}" for k, v in fields.items())
        self.out.info(f"{stamp} [service {self.spec.name}] {event} {text}".rstrip())
        log.info(f"service.{event}", job=self.spec.name, env=self.settings.env, **fields)

    def _pump(self, stream: IO[bytes]) -> None:
        """The worker's output, line by line, into the log (a thread)."""
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace").rstrip("\n")
            if line.startswith("{") and line.endswith("}"):  # the job's result (`job` prints it)
                with contextlib.suppress(ValueError):
                    self.last_json = json.loads(line)
            self.out.info(line)
        stream.close()

    # -------------------------------------------------------------------------- state
    def _save(self, **changes: Any) -> None:
        self.state.update(changes)
        service.write_state(self.paths, self.state)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        if not self.stopping:
            self.stopping = True
            self.say("stop_requested", signal=signal.Signals(signum).name)
        self._term_worker()

    def _term_worker(self) -> None:
        if self.worker is not None and self.worker.poll() is None and self.term_sent_at is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.worker.pid, signal.SIGTERM)  # the job's Ctrl-C path
            self.term_sent_at = time.monotonic()

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(min(POLL_S, max(deadline - time.monotonic(), 0)))

    # -------------------------------------------------------------------------- run
    def run(self) -> int:
        fd = service.acquire(self.paths.pidfile)
        if fd is None:
            raise JobLockedError(
                f"{self.spec.name} (env {self.settings.env}) already runs as a service: "
                f"supervisor pid {service.read_pid(self.paths.pidfile)}; see {self.paths.log}"
            )
        os.environ[service.TAG_ENV] = self.paths.tag  # inherited by every child
        signals.on_stop(self._on_signal)  # Ctrl-C, SIGTERM, SIGHUP: a clean stop
        lock = JobLock(lock_path(self.outputs.locks, self.settings.env, self.spec.name),
                       job=self.spec.name, env=self.settings.env,
                       info={"service": True})  # fmt: skip
        self.state = {
            "job": self.spec.name, "env": self.settings.env, "params": self.params,
            "status": ServiceStatus.STARTING, "log": str(self.paths.log), "starts": 0,
            "restarts": 0,
            "supervisor": {"pid": os.getpid(), "host": socket.gethostname(),
                           "started_at": self.started_at.isoformat()},
        }  # fmt: skip
        self._save()
        self.say("supervisor_started", pid=os.getpid(), params=self.params, log=self.paths.log)
        try:
            if found := service.end_leftovers(self.paths.tag):
                self.say("leftovers_ended", processes=found)
            if self._lock(lock):
                self._loop(lock)
        finally:
            self._shutdown(lock)
            with contextlib.suppress(OSError):
                self.paths.pidfile.unlink()
                os.close(fd)
        return 0

    def _lock(self, lock: JobLock) -> bool:
        """Take the job's run lock (waiting while a `run` of the job holds it)."""
        waiting = False
        while not self.stopping:
            try:
                lock.acquire()
            except JobLockedError as exc:
                if not waiting:
                    self.say("waiting_for_job_lock", reason=str(exc))
                    self._save(status=ServiceStatus.WAITING_FOR_JOB_LOCK)
                    waiting = True
                self._sleep(LOCK_RETRY_S)
                continue
            if lock.previous.get("run_id"):  # a killed supervisor's worker, never closed
                self.ledger.mark_abandoned(lock.previous["run_id"], lock.previous)
            return True
        return False

    def _loop(self, lock: JobLock) -> None:
        failures = 0
        while not self.stopping:
            ran_s, code = self._run_worker(lock)
            if self.stopping:
                break
            failures = 1 if ran_s >= self.svc.stable_s else failures + 1
            wait = backoff(failures, self.svc)
            self._close_run(code, ran_s, requested=False, wait=wait)
            self._save(status=ServiceStatus.BACKOFF, next_start_in_s=wait)
            self._sleep(wait)

    def _run_worker(self, lock: JobLock) -> tuple[float, int]:
        """Start the worker, wait until it ends; (seconds it ran, exit code)."""
        args = [a for k, v in self.params.items() for a in ("-p", f"{k}={v}")]
        cmd = [sys.executable, "-m", "pipelines", "job", self.spec.name,
               "--env", self.settings.env, *args]  # fmt: skip
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.last_json, self.term_sent_at = None, None
        parent = os.getpid()
        self.worker = subprocess.Popen(
            cmd, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=lambda: _die_with_parent(parent),  # noqa: PLW1509 - no threads yet
        )  # fmt: skip
        pump = threading.Thread(target=self._pump, args=(self.worker.stdout,), daemon=True)
        pump.start()
        started, t0 = now(), time.monotonic()
        self.run_id = new_run_id(started)
        lock.update(run_id=self.run_id)
        starts = self.state["starts"] + 1
        self._save(status=ServiceStatus.RUNNING, starts=starts, restarts=starts - 1,
                   next_start_in_s=None, run_id=self.run_id,
                   worker={"pid": self.worker.pid, "started_at": started.isoformat()})  # fmt: skip
        self.say("worker_started", pid=self.worker.pid, start=starts, run_id=self.run_id)
        self.record = RunRecord.worker_started(
            run_id=self.run_id, job=self.spec.name, env=self.settings.env,
            params={"env": self.settings.env, **self.params}, start=started,
            log=self.paths.log, attempt=starts, pid=self.worker.pid,
        )  # fmt: skip
        self.ledger.write(self.record.to_document())
        if self.stopping:  # a signal while it started
            self._term_worker()
        while self.worker.poll() is None:
            if self.term_sent_at and time.monotonic() - self.term_sent_at > self.svc.stop_grace_s:
                self.say("worker_kill", pid=self.worker.pid, after_s=self.svc.stop_grace_s)
                service.kill_all(self.paths.tag)
            time.sleep(POLL_S)
        pump.join(5)
        code, ran_s = self.worker.returncode, round(time.monotonic() - t0, 1)
        self._save(last_exit={"code": code, "text": _exit_text(code), "ran_s": ran_s,
                              "at": now().isoformat(), "requested": self.stopping})  # fmt: skip
        self.say("worker_exited", pid=self.worker.pid, code=code, ran_s=ran_s,
                 requested=self.stopping)  # fmt: skip
        return ran_s, code

    def _close_run(self, code: int, ran_s: float, requested: bool, wait: float = 0.0) -> None:
        """The ledger's record of the worker that just ended: ``stopped`` (asked to),
        ``success`` (it ended by itself, e.g. an availableNow pass) or ``failed``, with the
        counts of its result line when it printed one."""
        record = self.record
        if record is None or record.status != RunStatus.RUNNING:
            return
        result = self.last_json or {}
        changes: dict[str, Any] = {
            "end": now(), "duration_s": ran_s, "rows_in": _count(result.get("rows_in")),
            "rows_out": _count(result.get("accepted", result.get("rows_out"))),
            "rows_rejected": _count(result.get("rejected", result.get("rows_rejected"))),
        }  # fmt: skip
        if requested:
            changes["status"] = RunStatus.STOPPED
        elif code == 0:
            changes["status"] = RunStatus.SUCCESS
        else:
            message = (f"{_exit_text(code)} after {ran_s:.0f} s; restarted in {wait:g} s by "
                       f"its supervisor (log {self.paths.log})")  # fmt: skip
            changes["status"] = RunStatus.FAILED
            changes["error"] = {"type": "WorkerExited", "transient": True, "message": message}
        self.record = record.replace(**changes)
        self.ledger.write(self.record.to_document())

    def _shutdown(self, lock: JobLock) -> None:
        """Stop the worker if it runs, leave nothing of the service behind, record it."""
        self.stopping = True
        self._save(status=ServiceStatus.STOPPING)
        if self.worker is not None and self.worker.poll() is None:  # an error in the loop
            self._term_worker()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.worker.wait(self.svc.stop_grace_s)
        service.kill_all(self.paths.tag)
        if self.worker is not None:
            code = self.worker.wait()
            last = self.state.get("last_exit") or {}
            self._close_run(code, last.get("ran_s", 0.0), requested=True)
        lock.release()
        self._save(status=ServiceStatus.STOPPED, worker=None, next_start_in_s=None)
        self.say("supervisor_stopped", pid=os.getpid())


def run(settings: Settings, job: str, overrides: Mapping[str, str] | None, echo: bool) -> int:
    """``service run``: the supervisor in this process until SIGTERM/SIGHUP/Ctrl-C."""
    return Supervisor(settings, job, overrides, echo).run()
