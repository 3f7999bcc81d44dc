"""Run the registry's jobs the way a scheduler would, without a scheduler server.

``run("smoke", "local", {"messages": "500"})``:

1. validates the parameters against the job's model (unknown name, wrong type ->
   :class:`~pipelines.core.exceptions.ConfigError` listing the allowed ones) before anything starts;
2. takes the job's lock (``outputs/locks/<env>-<job>.lock``); a run already going makes this
   one exit at once with :class:`~pipelines.core.exceptions.JobLockedError`;
3. executes the notebook with papermill (kernel ``python3``, cwd = repository root) into
   ``outputs/runs/<job>/<YYYY-MM-DD>/<run_id>.ipynb`` and renders ``<run_id>.html`` beside it,
   kept whatever the outcome;
4. records every attempt in the ledger (:mod:`pipelines.orchestration.ledger`), as a
   :class:`~pipelines.orchestration.record.RunRecord` with a
   :class:`~pipelines.core.domain.RunStatus`, retries TRANSIENT failures (Kafka / MongoDB
   unreachable) with exponential backoff, and interrupts a run past its timeout (then kills
   its kernel if the interrupt does not stop it).

Notebooks report their row counts with :func:`report`; the runner injects where
(``tarmac_metrics_path``, a papermill parameter) and reads the JSON sidecar afterwards.
Parameters reach the notebook as typed data (papermill writes them as Python literals of the
validated values); nothing a caller passes is ever spliced into code.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.core import config, logs
from pipelines.core.config import Settings, outputs_dir
from pipelines.core.domain import RunStatus
from pipelines.core.exceptions import (
    SPARK_WRAPPERS,
    TRANSIENT_ERRORS,
    ConfigError,
    JobFailedError,
    JobLockedError,
    JobTimeoutError,
)
from pipelines.jobs import registry
from pipelines.jobs.params import JobParams
from pipelines.jobs.registry import METRICS_PARAM, JobSpec
from pipelines.orchestration import notebook
from pipelines.orchestration.ledger import Ledger, RunLog, now
from pipelines.orchestration.locks import RUN_LOCK_ENV, JobLock, lock_path
from pipelines.orchestration.record import RunRecord

MAX_BACKOFF_S = 900.0


# --- results ------------------------------------------------------------------------------------
@dataclass
class RunResult:
    """The records of one run, one per attempt (the last one decides); what :func:`run`
    returns, and what :class:`JobFailedError` carries as ``.result``."""

    records: list[RunRecord] = field(default_factory=list)

    @property
    def attempts(self) -> list[dict[str, Any]]:
        """The ledger documents of the attempts, oldest first."""
        return [record.to_document() for record in self.records]

    @property
    def last(self) -> dict[str, Any]:
        """The ledger document of the last attempt."""
        return self.records[-1].to_document()

    @property
    def status(self) -> RunStatus:
        return self.records[-1].status

    @property
    def run_id(self) -> str:
        return self.records[-1].run_id


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
    """True when a failure means "Kafka or MongoDB not reachable now" (worth a retry): the
    notebook error's ``type`` (its ``ename``) is one of
    :data:`~pipelines.core.exceptions.TRANSIENT_ERRORS`, or a Spark wrapper of an error raised
    in ``foreachBatch`` whose message names one."""
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


@dataclass(frozen=True)
class _Run:
    """What every attempt of one :func:`run` shares."""

    spec: JobSpec
    settings: Settings
    params: dict[str, Any]  # validated, as JSON values
    paths: Paths
    ledger: Ledger
    runlog: RunLog
    trigger: str
    lock: JobLock

    @property
    def date(self) -> str | None:
        """The run's logical date (a dated job's ``date_param``)."""
        return self.params.get(self.spec.date_param) if self.spec.date_param else None


def _attempt(run: _Run, attempt: int, first_run_id: str | None) -> RunRecord:
    """Attempt ``attempt`` of ``run``: recorded ``running``, the notebook executed, recorded
    again with its outcome (Ctrl-C: recorded ``failed``, then raised on)."""
    spec, env, runlog = run.spec, run.settings.env, run.runlog
    start = now()
    run_id = new_run_id(start)
    run.lock.update(run_id=run_id)
    folder = run.paths.runs / spec.name / start.strftime("%Y-%m-%d")
    folder.mkdir(parents=True, exist_ok=True)
    nb_path = folder / f"{run_id}.ipynb"
    html_path = folder / f"{run_id}.html"
    metrics_path = folder / f"{run_id}.metrics.json"
    record = RunRecord.attempt_started(
        run_id=run_id, job=spec.name, env=env, params=run.params, date=run.date, start=start,
        notebook=nb_path, attempt=attempt, max_attempts=spec.retries + 1,
        first_run_id=first_run_id or run_id, timeout_s=spec.timeout_s, trigger=run.trigger,
    )  # fmt: skip
    run.ledger.write(record.to_document())
    runlog.event("run.start", run_id=run_id, job=spec.name, env=env, attempt=attempt,
                 params=run.params)  # fmt: skip
    t0 = time.monotonic()
    notebook.prefetch_renderer()
    try:
        with _kernel_env({RUN_LOCK_ENV: str(run.lock.path)}):  # the notebook's job_lock: ours
            status, error = notebook.execute(
                spec, nb_path, {**run.params, METRICS_PARAM: str(metrics_path)}, runlog
            )
    except KeyboardInterrupt:  # Ctrl-C of a run by hand: record it, then let the CLI exit 130
        record = record.replace(
            status=RunStatus.FAILED,
            end=now(),
            duration_s=round(time.monotonic() - t0, 3),
            error={"type": "KeyboardInterrupt", "message": "interrupted", "transient": False},
        )
        run.ledger.write(record.to_document())
        runlog.event("run.interrupted", level="warning", run_id=run_id, job=spec.name)
        raise
    duration = round(time.monotonic() - t0, 3)
    metrics = notebook.read_metrics(metrics_path)
    html = nb_path.exists() and notebook.render_html(nb_path, html_path, runlog)
    if error is not None:
        error["transient"] = status == RunStatus.FAILED and is_transient(error)
    record = record.replace(
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
    run.ledger.write(record.to_document())
    runlog.event(
        "run.end",
        level="info" if status == RunStatus.SUCCESS else "error",
        run_id=run_id,
        job=spec.name,
        env=env,
        attempt=attempt,
        status=status.value,  # the plain string (the console's key=value lines use repr())
        duration_s=duration,
        rows_in=record.rows_in,
        rows_out=record.rows_out,
        rows_rejected=record.rows_rejected,
        notebook=record.notebook,
        error=error,
    )
    return record


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
    """The error of a run that did not succeed: what failed (and in which cell), where its
    notebook and report are, its run id; it carries ``result``."""
    last = result.records[-1]
    error = last.error or {}
    cell = error.get("cell") or {}
    where = ""
    if cell.get("index") is not None:
        first_line = (cell.get("source") or "").strip().splitlines()[:1]
        where = f"\n  cell:     {cell['index']}" + (
            f" `{first_line[0][:80]}`" if first_line else ""
        )
    attempts = len(result.records)
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    timed_out = last.status == RunStatus.TIMEOUT
    message = (
        f"job {spec.name} (env {settings.env}) {'timed out' if timed_out else 'failed'}{tries}: "
        f"{error.get('type')}: {error.get('message')}{where}\n"
        f"  notebook: {display_path(last.notebook)}\n"
        f"  html:     {display_path(last.html)}\n"
        f"  run id:   {last.run_id} (tarmac runs --env {settings.env})"
    )
    return (JobTimeoutError if timed_out else JobFailedError)(message, result)


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
    :class:`JobLockedError` (already running: recorded ``skipped_locked``),
    :class:`JobFailedError` / :class:`JobTimeoutError` (``.result``: the run's
    :class:`RunResult`).
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
    ctx = _Run(spec, settings, typed, paths, ledger, runlog, trigger, lock)
    try:
        lock.acquire()
    except JobLockedError as exc:
        stamp = now()
        refused = RunRecord.locked_out(
            run_id=new_run_id(stamp), job=spec.name, env=settings.env, params=typed,
            date=ctx.date, at=stamp, message=str(exc), trigger=trigger,
        )  # fmt: skip
        ledger.write(refused.to_document())
        runlog.event("run.skipped_locked", level="warning", run_id=refused.run_id,
                     job=spec.name, env=settings.env)  # fmt: skip
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
            first = result.records[0].run_id if result.records else None
            record = _attempt(ctx, attempt, first)
            result.records.append(record)
            if record.status == RunStatus.SUCCESS:
                return result
            retry = record.status == RunStatus.FAILED and record.transient
            if retry and attempt <= spec.retries:
                wait = min(spec.retry_backoff_s * 2 ** (attempt - 1), MAX_BACKOFF_S)
                error = record.error or {}
                runlog.event(
                    "run.retry", level="warning", job=spec.name, env=settings.env,
                    run_id=record.run_id, attempt=attempt, wait_s=wait,
                    error=f"{error.get('type')}: {error.get('message')}",
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
