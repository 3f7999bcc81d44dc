"""Run catalog jobs the way a scheduler would, without a scheduler server.

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
import json
import logging
import math
import os
import re
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from pipelines.core import config
from pipelines.core.config import REPO_ROOT, Settings
from pipelines.core.exceptions import ConfigError, JobFailedError, JobLockedError, JobTimeoutError
from pipelines.jobs import registry
from pipelines.jobs.registry import METRICS_PARAM, JobParams, JobSpec, parse_assignments
from pipelines.orchestration.ledger import Ledger, RunLog, now
from pipelines.orchestration.locks import JobLock, lock_path
from pipelines.orchestration.reconcile import reconciliation

KERNEL = "python3"
INTERRUPT_GRACE_S = 10.0  # after the timeout's interrupt, time left before the kernel is killed
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
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def outputs_dir() -> Path:
    """Root of runs/, logs/ and locks/ (``$TARMAC_OUTPUTS_DIR``, default ``outputs/``)."""
    return Path(os.environ.get("TARMAC_OUTPUTS_DIR") or REPO_ROOT / "outputs")


# --- called from notebooks ----------------------------------------------------------------------
def report(
    rows_in: int | None = None,
    rows_out: int | None = None,
    rows_rejected: int | None = None,
    path: str | os.PathLike[str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Record a notebook's metrics for the runner: ``report(rows_in=.., path=tarmac_metrics_path)``.

    Writes a JSON sidecar at ``path`` (the runner's ``tarmac_metrics_path`` parameter; ``None``
    when the notebook runs by hand: nothing is written). ``extra`` values must be JSON-able.
    Returns the metrics, so that the notebook shows them.
    """
    metrics: dict[str, Any] = {}
    for name, value in (
        ("rows_in", rows_in),
        ("rows_out", rows_out),
        ("rows_rejected", rows_rejected),
    ):
        if value is not None and (not isinstance(value, int) or value < 0):
            raise ValueError(f"{name} must be a count (int >= 0), got {value!r}")
        metrics[name] = None if value is None else int(value)
    metrics.update(extra)
    if path:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(metrics, default=str))
        tmp.replace(target)
    return metrics


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
class _Paths:
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


def report_job(result: dict[str, Any], path: str | os.PathLike[str] | None = None) -> dict:
    """:func:`report` of a processing job's result (``rows_in``, ``accepted``, ``rejected``
    and any other counts): rows out are the accepted rows. Prints :func:`reconciliation` (so
    the output notebook shows in = accepted + rejected) and fails the run if it does not hold."""
    print(reconciliation(result))
    extra = {k: v for k, v in result.items() if k not in ("rows_in", "accepted", "rejected")}
    return report(result["rows_in"], result["accepted"], result["rejected"], path, **extra)


def display_path(path: str | Path | None) -> str:
    if not path:
        return "-"
    path = Path(path)
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


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


def _check_notebook(spec: JobSpec) -> None:
    if not spec.notebook_path.is_file():
        raise ConfigError(
            f"job {spec.name}: its notebook {display_path(spec.notebook_path)} does not exist "
            f"(yet); write it, or fix the catalog entry in pipelines/jobs/registry.py"
        )


# --- timeout ------------------------------------------------------------------------------------
def _kernels() -> list[psutil.Process]:
    """Jupyter kernels started by this process (papermill's, one at a time)."""
    found = []
    for child in psutil.Process().children():
        try:
            if "ipykernel" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:
            continue
    return found


class _Watchdog:
    """At the deadline: SIGINT the kernel (the notebook shows where it was), and if it has not
    stopped ``grace`` seconds later, kill the kernel and everything it started (Spark's JVM)."""

    def __init__(self, timeout_s: float, runlog: RunLog, grace_s: float = INTERRUPT_GRACE_S):
        self.timeout_s, self.grace_s, self.runlog = timeout_s, grace_s, runlog
        self.fired = False
        self.killed = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True, name="tarmac-timeout")

    def __enter__(self) -> _Watchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(timeout=5)

    def _watch(self) -> None:
        if self._done.wait(self.timeout_s):
            return
        self.fired = True
        kernels = _kernels()
        self.runlog.event(
            "run.timeout",
            level="warning",
            timeout_s=self.timeout_s,
            kernels=[k.pid for k in kernels],
        )
        for kernel in kernels:
            with contextlib.suppress(psutil.Error):
                kernel.send_signal(signal.SIGINT)
        if self._done.wait(self.grace_s):
            return
        self.killed = True
        for kernel in kernels:
            try:
                procs = [*kernel.children(recursive=True), kernel]
            except psutil.Error:
                continue
            for proc in procs:
                with contextlib.suppress(psutil.Error):
                    proc.kill()
        self.runlog.event("run.timeout_killed", level="warning", kernels=[k.pid for k in kernels])


# --- one attempt --------------------------------------------------------------------------------
def _cell_info(cell: Any, index: int | None) -> dict[str, Any]:
    source = "".join(cell.get("source", "")) if cell is not None else ""
    return {
        "index": index,
        "execution_count": cell.get("execution_count") if cell is not None else None,
        "source": source[:2000],
    }


def _last_started_cell(nb_path: Path) -> dict[str, Any] | None:
    """The cell that was running when the kernel stopped answering (papermill's metadata)."""
    import nbformat

    try:
        nb = nbformat.read(nb_path, as_version=4)
    except (OSError, ValueError):
        return None
    started = [
        (i, c)
        for i, c in enumerate(nb.cells)
        if c.get("metadata", {}).get("papermill", {}).get("start_time")
    ]
    return _cell_info(started[-1][1], started[-1][0]) if started else None


def _mark_notebook(nb_path: Path, text: str) -> None:
    """Put a visible note at the top of the output notebook (timeouts, dead kernels)."""
    import nbformat

    try:
        nb = nbformat.read(nb_path, as_version=4)
        cell = nbformat.v4.new_markdown_cell(f'<span style="color:red">**Tarmac:** {text}</span>')
        cell.metadata["tags"] = ["tarmac-error"]
        nb.cells.insert(0, cell)
        nbformat.write(nb, nb_path)
    except (OSError, ValueError):
        pass


def _execute(
    spec: JobSpec, nb_path: Path, parameters: dict[str, Any], runlog: RunLog
) -> tuple[str, dict[str, Any] | None]:
    """Run the notebook once; return (status, error)."""
    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    error: dict[str, Any] | None = None
    with _Watchdog(spec.timeout_s, runlog) as watchdog:
        try:
            papermill.execute_notebook(
                str(spec.notebook_path),
                str(nb_path),
                parameters=parameters,
                kernel_name=KERNEL,
                cwd=str(REPO_ROOT),
                execution_timeout=int(math.ceil(spec.timeout_s)),
                start_timeout=60,
                progress_bar=False,
                log_output=False,
            )
        except PapermillExecutionError as exc:
            traceback = [_ANSI.sub("", line) for line in exc.traceback or []]
            error = {
                "type": exc.ename,
                "message": str(exc.evalue)[:2000],
                "cell": {
                    "index": exc.cell_index,
                    "execution_count": exc.exec_count,
                    "source": (exc.source or "")[:2000],
                },
                # the last 4,000 characters, as a list of lines of at most 2,000 each
                "traceback": [ln[:2000] for ln in "\n".join(traceback)[-4000:].splitlines()],
            }
        except (CellTimeoutError, DeadKernelError) as exc:
            error = {
                "type": exc.__class__.__name__,
                "message": str(exc).strip().splitlines()[0] if str(exc).strip() else "",
                "cell": _last_started_cell(nb_path),
            }
        except Exception as exc:  # kernel did not start, notebook unreadable, ...
            error = {"type": exc.__class__.__name__, "message": str(exc)[:2000], "cell": None}
    if error is None:
        return "success", None
    if watchdog.fired or error["type"] == "CellTimeoutError":
        cell = error.get("cell") or {}
        error = {
            "type": "JobTimeout",
            "message": f"ran past its timeout of {spec.timeout_s:g} s"
            + (" and was killed" if watchdog.killed else " and was interrupted")
            + (f" in cell {cell.get('index')}" if cell.get("index") is not None else ""),
            "cell": error.get("cell"),
            "cause": f"{error['type']}: {error['message']}",
        }
        _mark_notebook(nb_path, f"this run {error['message']}.")
        return "timeout", error
    if error["type"] == "DeadKernelError":
        _mark_notebook(nb_path, "the kernel died during this run (out of memory? killed?).")
    return "failed", error


def _read_metrics(path: Path) -> dict[str, Any]:
    try:
        metrics = json.loads(path.read_text())
        return metrics if isinstance(metrics, dict) else {}
    except (OSError, ValueError):
        return {}


def _prefetch_renderer() -> None:
    """Import nbconvert's HTML exporter in a thread while the notebook runs (the runner only
    waits on the kernel then): its ~1 s import is then off the run's critical path."""

    def load() -> None:
        with contextlib.suppress(Exception):
            import nbconvert.exporters.html  # noqa: F401

    threading.Thread(target=load, name="tarmac-nbconvert-import", daemon=True).start()


def _render_html(nb_path: Path, html_path: Path, runlog: RunLog) -> bool:
    try:
        from nbconvert import HTMLExporter

        body, _ = HTMLExporter().from_filename(str(nb_path))
        html_path.write_text(body)
        return True
    except Exception as exc:  # a report that cannot be rendered must not fail the run
        runlog.event("run.html_failed", level="warning", notebook=str(nb_path), error=str(exc))
        return False


def _attempt(
    spec: JobSpec,
    settings: Settings,
    params: dict[str, Any],
    attempt: int,
    first_run_id: str | None,
    paths: _Paths,
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
    _prefetch_renderer()
    try:
        status, error = _execute(
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
    metrics = _read_metrics(metrics_path)
    html = nb_path.exists() and _render_html(nb_path, html_path, runlog)
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
        f"  run id:   {doc['run_id']} (python -m pipelines runs --env {settings.env})"
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
    _check_notebook(spec)

    paths = _Paths(outputs or outputs_dir())
    runlog = RunLog(paths.logs)
    ledger = Ledger(settings, paths.logs, runlog)
    lock = JobLock(lock_path(paths.locks, settings.env, spec.name), job=spec.name, env=settings.env)
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


@dataclass
class BackfillOutcome:
    date: dt.date
    status: str  # success | skipped (already succeeded) | failed | timeout | skipped_locked
    run_id: str | None = None


def backfill(
    job: str | JobSpec,
    date_from: dt.date,
    date_to: dt.date,
    env: str | None = None,
    params: Mapping[str, Any] | None = None,
    *,
    outputs: Path | None = None,
    sleep: Callable[[float], None] = time.sleep,
    on_outcome: Callable[[BackfillOutcome], None] | None = None,
) -> list[BackfillOutcome]:
    """Run ``job`` for each date of ``[date_from, date_to]`` in order, skipping the dates whose
    latest ledger status is ``success``. Stops at the first failure (later dates often build on
    earlier ones); the raised error carries ``.outcomes``."""
    spec = job if isinstance(job, JobSpec) else registry.get(job)
    if not spec.date_param:
        dated = sorted(name for name, s in registry.jobs().items() if s.date_param)
        raise ConfigError(f"job {spec.name} takes no date; backfill works for {dated}")
    if date_to < date_from:
        raise ConfigError(f"--to {date_to} is before --from {date_from}")
    settings = config.load(env)
    params = dict(params or {})
    if spec.date_param in params:
        raise ConfigError(f"backfill sets '{spec.date_param}' itself; use --from/--to")
    days = [date_from + dt.timedelta(days=i) for i in range((date_to - date_from).days + 1)]
    for day in days:  # every date's parameters are valid, or nothing runs
        validate(spec, settings.env, {**params, spec.date_param: day.isoformat()})
    _check_notebook(spec)

    paths = _Paths(outputs or outputs_dir())
    runlog = RunLog(paths.logs)
    ledger = Ledger(settings, paths.logs, runlog)
    outcomes: list[BackfillOutcome] = []

    def note(outcome: BackfillOutcome) -> None:
        outcomes.append(outcome)
        if on_outcome:
            on_outcome(outcome)

    for day in days:
        if ledger.last_status(spec.name, spec.date_param, day) == "success":
            runlog.event("backfill.skip", job=spec.name, env=settings.env, date=day.isoformat())
            note(BackfillOutcome(day, "skipped"))
            continue
        try:
            result = run(
                spec,
                settings.env,
                {**params, spec.date_param: day.isoformat()},
                trigger="backfill",
                outputs=paths.root,
                sleep=sleep,
            )
        except (JobFailedError, JobLockedError) as exc:
            res = getattr(exc, "result", None)
            status = res.status if res else "skipped_locked"
            note(BackfillOutcome(day, status, res.run_id if res else None))
            exc.outcomes = outcomes  # type: ignore[attr-defined]
            raise
        note(BackfillOutcome(day, result.status, result.run_id))
    return outcomes


def recent_runs(env: str | None = None, job: str | None = None, limit: int = 20) -> list[dict]:
    """The latest ledger documents of ``env`` (MongoDB, plus the pending file when it lags)."""
    settings = config.load(env)
    paths = _Paths(outputs_dir())
    return Ledger(settings, paths.logs, RunLog(paths.logs)).recent(job, limit)


# papermill warns about every parameter the notebook's `parameters` cell does not declare; the
# metrics path is ours, injected into every job notebook on purpose.
logging.getLogger("papermill").addFilter(lambda record: METRICS_PARAM not in record.getMessage())

__all__ = [
    "BackfillOutcome",
    "RunResult",
    "backfill",
    "is_transient",
    "parse_assignments",
    "recent_runs",
    "report",
    "run",
    "validate",
]
