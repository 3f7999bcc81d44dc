"""Run the registry's jobs the way a scheduler would, without a scheduler server.

``run("smoke", "local", {"messages": "500"})``:

1. validates the parameters against the job's model (unknown name, wrong type ->
   :class:`~pipelines.core.exceptions.ConfigError` listing the allowed ones) before anything starts;
2. takes the job's lock (``outputs/locks/<env>-<job>.lock``); a run already going makes this
   one exit at once with :class:`~pipelines.core.exceptions.JobLockedError`;
3. executes the notebook with papermill (kernel ``python3``, cwd = repository root) into
   ``outputs/runs/<job>/<YYYY-MM-DD>/<run_id>.ipynb`` and renders ``<run_id>.html`` beside it,
   kept whatever the outcome;
4. records every attempt in the ledger (:mod:`pipelines.orchestration.ledger`), retries
   TRANSIENT failures (Kafka / MongoDB unreachable) with exponential backoff, and interrupts a
   run past its timeout (then kills its kernel if the interrupt does not stop it).

Notebooks report their row counts with :func:`report`; the runner injects where
(``tarmac_metrics_path``, a papermill parameter) and reads the JSON sidecar afterwards.
Parameters reach the notebook as typed data (papermill writes them as Python literals of the
validated values); nothing a caller passes is ever spliced into code.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.core import config, logs
from pipelines.core.config import Settings, outputs_dir
from pipelines.core.exceptions import ConfigError, JobFailedError, JobLockedError, JobTimeoutError
from pipelines.jobs import registry
from pipelines.jobs.params import JobParams
from pipelines.jobs.registry import METRICS_PARAM, JobSpec
from pipelines.orchestration import notebook
from pipelines.orchestration.ledger import Ledger, RunLog, now
from pipelines.orchestration.locks import RUN_LOCK_ENV, JobLock, lock_path

MAX_BACKOFF_S = 900.0

# Error names (the notebook error's ``ename``) that mean "a service is not reachable right now":
# only these are retried. Spark wraps errors raised in foreachBatch; those count when the
# wrapped message names one of them.
TRANSIENT_ERRORS = frozenset(
    {
        "ServiceUnavailableError",  # ours: Kafka or MongoDB does not answer
        "ServerSelectionTimeoutError",  # pymongo
        "AutoReconnect",
        "NetworkTimeout",
        "ConnectionFailure",
        "NoBrokersAvailable",  # kafka-python
        "KafkaTimeoutError",
        "KafkaConnectionError",
    }
)
SPARK_WRAPPERS = frozenset(
    {"StreamingQueryException", "Py4JJavaError", "PythonException", "SparkException"}
)


# --- called from notebooks ----------------------------------------------------------------------
# --- results ------------------------------------------------------------------------------------
@dataclass
class RunResult:
    """Ledger documents of one run, one per attempt (the last one decides)."""

    attempts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def last(self) -> dict[str, Any]:
        return self.attempts[-1]

    @property
    def status(self) -> str:
        return self.last["status"]

    @property
    def run_id(self) -> str:
        return self.last["run_id"]


@dataclass
class Paths:
    root: Path

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def locks(self) -> Path:
        return self.root / "locks"


def display_path(path: str | Path | None) -> str:
    if not path:
        return "-"
    path = Path(path)
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def summary_line(doc: dict[str, Any]) -> str:
    """One console line of a run: job (env), status, counts, seconds, its HTML report."""
    tries = f" (attempt {doc['attempt']})" if doc.get("attempt", 1) > 1 else ""
    secs = doc.get("duration_s")
    return "  ".join([
        f"{doc['job']} ({doc['env']})".ljust(24),
        f"{doc['status']}{tries}".ljust(9),
        logs.counts(doc),
        f"{secs:.1f} s" if isinstance(secs, int | float) else "",
        display_path(doc.get("html") or doc.get("notebook")),
    ])  # fmt: skip


def new_run_id(start: dt.datetime) -> str:
    return f"{start:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


def is_transient(error: Mapping[str, Any] | None) -> bool:
    """True when a failure means "Kafka or MongoDB not reachable now" (worth a retry)."""
    if not error:
        return False
    ename = str(error.get("type") or "")
    if ename in TRANSIENT_ERRORS:
        return True
    message = str(error.get("message") or "")
    return ename in SPARK_WRAPPERS and any(name in message for name in TRANSIENT_ERRORS)


# --- parameters ---------------------------------------------------------------------------------


def validate(spec: JobSpec, env: str, params: Mapping[str, Any] | None) -> JobParams:
    """The job's typed parameters; ``env`` comes from ``--env`` (a different ``env`` is refused)."""
    raw = dict(params or {})
    if METRICS_PARAM in raw:
        raise ConfigError(f"parameter '{METRICS_PARAM}' is set by the runner, not by callers")
    if "env" in raw and str(raw["env"]) != env:
        raise ConfigError(f"parameter env={raw['env']!r} contradicts --env {env}; use --env")
    raw["env"] = env
    return spec.validate(raw)


def check_notebook(spec: JobSpec) -> None:
    if not spec.notebook_path.is_file():
        raise ConfigError(
            f"job {spec.name}: its notebook {display_path(spec.notebook_path)} does not exist "
            f"(yet); write it, or fix its entry in pipelines/jobs/registry.py"
        )


def _attempt(
    spec: JobSpec,
    settings: Settings,
    params: dict[str, Any],
    attempt: int,
    first_run_id: str | None,
    paths: Paths,
    ledger: Ledger,
    runlog: RunLog,
    trigger: str,
    lock: JobLock,
) -> dict[str, Any]:
    start = now()
    run_id = new_run_id(start)
    lock.update(run_id=run_id)
    folder = paths.runs / spec.name / start.strftime("%Y-%m-%d")
    folder.mkdir(parents=True, exist_ok=True)
    nb_path = folder / f"{run_id}.ipynb"
    html_path = folder / f"{run_id}.html"
    metrics_path = folder / f"{run_id}.metrics.json"
    doc: dict[str, Any] = {
        "_id": run_id,
        "run_id": run_id,
        "job": spec.name,
        "env": settings.env,
        "params": params,
        "date": params.get(spec.date_param) if spec.date_param else None,
        "status": "running",
        "start": start,
        "end": None,
        "duration_s": None,
        "rows_in": None,
        "rows_out": None,
        "rows_rejected": None,
        "metrics": {},
        "notebook": str(nb_path),
        "html": None,
        "log": str(nb_path.with_suffix(".log")),  # the kernel's and Spark's own output
        "error": None,
        "attempt": attempt,
        "max_attempts": spec.retries + 1,
        "first_run_id": first_run_id or run_id,
        "timeout_s": spec.timeout_s,
        "trigger": trigger,
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }
    ledger.write(doc)
    runlog.event(
        "run.start", run_id=run_id, job=spec.name, env=settings.env, attempt=attempt, params=params
    )
    t0 = time.monotonic()
    notebook.prefetch_renderer()
    try:
        with _kernel_env({RUN_LOCK_ENV: str(lock.path)}):  # the notebook's job_lock: ours
            status, error = notebook.execute(
                spec, nb_path, {**params, METRICS_PARAM: str(metrics_path)}, runlog
            )
    except KeyboardInterrupt:  # Ctrl-C of a run by hand: record it, then let the CLI exit 130
        doc.update(
            status="failed",
            end=now(),
            duration_s=round(time.monotonic() - t0, 3),
            error={"type": "KeyboardInterrupt", "message": "interrupted", "transient": False},
        )
        ledger.write(doc)
        runlog.event("run.interrupted", level="warning", run_id=run_id, job=spec.name)
        raise
    duration = round(time.monotonic() - t0, 3)
    metrics = notebook.read_metrics(metrics_path)
    html = nb_path.exists() and notebook.render_html(nb_path, html_path, runlog)
    if error is not None:
        error["transient"] = status == "failed" and is_transient(error)
    doc.update(
        status=status,
        end=now(),
        duration_s=duration,
        rows_in=metrics.pop("rows_in", None),
        rows_out=metrics.pop("rows_out", None),
        rows_rejected=metrics.pop("rows_rejected", None),
        metrics=metrics,
        notebook=str(nb_path) if nb_path.exists() else None,
        html=str(html_path) if html else None,
        error=error,
    )
    ledger.write(doc)
    runlog.event(
        "run.end",
        level="info" if status == "success" else "error",
        run_id=run_id,
        job=spec.name,
        env=settings.env,
        attempt=attempt,
        status=status,
        duration_s=duration,
        rows_in=doc["rows_in"],
        rows_out=doc["rows_out"],
        rows_rejected=doc["rows_rejected"],
        notebook=doc["notebook"],
        error=error,
    )
    return doc


@contextlib.contextmanager
def _kernel_env(values: Mapping[str, str]) -> Iterator[None]:
    """``values`` in this process's environment while the kernel starts (it inherits them)."""
    before = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in before.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def _failure(spec: JobSpec, settings: Settings, result: RunResult) -> JobFailedError:
    doc = result.last
    error = doc.get("error") or {}
    cell = error.get("cell") or {}
    where = ""
    if cell.get("index") is not None:
        first_line = (cell.get("source") or "").strip().splitlines()[:1]
        where = f"\n  cell:     {cell['index']}" + (
            f" `{first_line[0][:80]}`" if first_line else ""
        )
    tries = f" after {len(result.attempts)} attempts" if len(result.attempts) > 1 else ""
    verb = "timed out" if doc["status"] == "timeout" else "failed"
    message = (
        f"job {spec.name} (env {settings.env}) {verb}{tries}: "
        f"{error.get('type')}: {error.get('message')}{where}\n"
        f"  notebook: {display_path(doc.get('notebook'))}\n"
        f"  html:     {display_path(doc.get('html'))}\n"
        f"  run id:   {doc['run_id']} (tarmac runs --env {settings.env})"
    )
    exc_type = JobTimeoutError if doc["status"] == "timeout" else JobFailedError
    exc = exc_type(message)
    exc.result = result  # type: ignore[attr-defined]
    return exc


# --- public API ---------------------------------------------------------------------------------
def run(
    job: str | JobSpec,
    env: str | None = None,
    params: Mapping[str, Any] | None = None,
    *,
    trigger: str = "manual",
    outputs: Path | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> RunResult:
    """Run ``job`` in ``env`` with ``params``; return its :class:`RunResult` on success.

    Raises :class:`ConfigError` (bad parameters, missing notebook: nothing started),
    :class:`JobLockedError` (already running), :class:`JobFailedError` /
    :class:`JobTimeoutError` (``.result`` holds the ledger documents).
    """
    spec = job if isinstance(job, JobSpec) else registry.get(job)
    settings = config.load(env)
    typed = validate(spec, settings.env, params).model_dump(mode="json")
    check_notebook(spec)

    paths = Paths(outputs or outputs_dir())
    runlog = RunLog(paths.logs)
    ledger = Ledger(settings, paths.logs, runlog)
    lock = JobLock(
        lock_path(paths.locks, settings.env, spec.name),
        job=spec.name,
        env=settings.env,
        info={"trigger": trigger},  # who holds it, in the message of a run it refuses
    )
    try:
        lock.acquire()
    except JobLockedError as exc:
        stamp = now()
        run_id = new_run_id(stamp)
        ledger.write(
            {
                "_id": run_id,
                "run_id": run_id,
                "job": spec.name,
                "env": settings.env,
                "params": typed,
                "date": typed.get(spec.date_param) if spec.date_param else None,
                "status": "skipped_locked",
                "start": stamp,
                "end": stamp,
                "duration_s": 0.0,
                "error": {"type": "JobLockedError", "message": str(exc)},
                "attempt": 0,
                "trigger": trigger,
                "host": socket.gethostname(),
                "pid": os.getpid(),
            }
        )
        runlog.event(
            "run.skipped_locked", level="warning", run_id=run_id, job=spec.name, env=settings.env
        )
        raise
    result = RunResult()
    try:
        if lock.took_over_stale:
            runlog.event(
                "lock.stale_taken_over", job=spec.name, env=settings.env, previous=lock.previous
            )
            if lock.previous.get("run_id"):
                ledger.mark_abandoned(lock.previous["run_id"], lock.previous)
        ledger.flush_pending()
        for attempt in range(1, spec.retries + 2):
            if attempt > 1:
                ledger.flush_pending()  # why the last attempt failed, once the ledger is back
            doc = _attempt(
                spec, settings, typed, attempt,
                result.attempts[0]["run_id"] if result.attempts else None,
                paths, ledger, runlog, trigger, lock,
            )  # fmt: skip
            result.attempts.append(doc)
            if doc["status"] == "success":
                return result
            if doc["status"] == "failed" and doc["error"]["transient"] and attempt <= spec.retries:
                wait = min(spec.retry_backoff_s * 2 ** (attempt - 1), MAX_BACKOFF_S)
                runlog.event(
                    "run.retry", level="warning", job=spec.name, env=settings.env,
                    run_id=doc["run_id"], attempt=attempt, wait_s=wait,
                    error=f"{doc['error']['type']}: {doc['error']['message']}",
                )  # fmt: skip
                sleep(wait)
                continue
            break
        raise _failure(spec, settings, result)
    finally:
        lock.release()


__all__ = [
    "RunResult", "display_path", "is_transient", "outputs_dir", "run", "summary_line", "validate",
]  # fmt: skip
