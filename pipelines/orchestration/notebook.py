"""One papermill execution of a job notebook, watched: the kernel is interrupted at the job's
timeout and killed (with Spark's JVM) if it does not stop; the error, its cell and traceback are
kept as data for the ledger; the output notebook is rendered to HTML.

A job notebook's first code cell may call :func:`job_lock` (``lock = job_lock("<job>", env)``):
run by hand in JupyterLab it takes the job's lock as the runner does (or refuses, naming the run
that holds it); under the runner it finds the runner's lock (:func:`~.locks.hold`)."""

from __future__ import annotations

import contextlib
import json
import math
import re
import signal
import threading
from pathlib import Path
from typing import Any

import psutil

from pipelines.core import logs
from pipelines.core.config import REPO_ROOT
from pipelines.core.domain import RunStatus
from pipelines.jobs.registry import JobSpec
from pipelines.orchestration.ledger import RunLog
from pipelines.orchestration.locks import HeldLock, hold

KERNEL = "python3"
INTERRUPT_GRACE_S = 10.0  # after the timeout's interrupt, time left before the kernel is killed
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


# --- called from a job notebook ----------------------------------------------------------------
def job_lock(job: str, env: str | None = None) -> HeldLock:
    """The job's lock for this notebook's run (its first code cell): taken by this kernel when
    run by hand (held until ``lock.release()``, the last cell, or the kernel's end), the
    runner's when run by ``run`` or cron; :class:`~pipelines.core.exceptions.JobLockedError`
    naming the holder when another run holds it. Prints which."""
    held = hold(job, env)
    until = " until lock.release() or the kernel stops" if held.owner == "this process" else ""
    print(f"lock {held.path.name}: held by {held.owner}{until}")
    return held


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


def execute(
    spec: JobSpec, nb_path: Path, parameters: dict[str, Any], runlog: RunLog
) -> tuple[RunStatus, dict[str, Any] | None]:
    """Run the notebook once; return (status, error): ``success`` and None, ``timeout`` (past
    the job's timeout: interrupted, killed if it hung), or ``failed`` (it raised, its kernel
    died or never started) with the error as data (type, message, cell, traceback)."""
    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    error: dict[str, Any] | None = None
    with _Watchdog(spec.timeout_s, runlog) as watchdog:
        try:
            # the kernel (and Spark's JVM under it) write their warnings to <run_id>.log
            with logs.quiet_stderr(nb_path.with_suffix(".log")):
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
        return RunStatus.SUCCESS, None
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
        return RunStatus.TIMEOUT, error
    if error["type"] == "DeadKernelError":
        _mark_notebook(nb_path, "the kernel died during this run (out of memory? killed?).")
    return RunStatus.FAILED, error


def read_metrics(path: Path) -> dict[str, Any]:
    try:
        metrics = json.loads(path.read_text())
        return metrics if isinstance(metrics, dict) else {}
    except (OSError, ValueError):
        return {}


def prefetch_renderer() -> None:
    """Import nbconvert's HTML exporter in a thread while the notebook runs (the runner only
    waits on the kernel then): its ~1 s import is then off the run's critical path."""

    def load() -> None:
        with contextlib.suppress(Exception):
            import nbconvert.exporters.html  # noqa: F401

    threading.Thread(target=load, name="tarmac-nbconvert-import", daemon=True).start()


def render_html(nb_path: Path, html_path: Path, runlog: RunLog) -> bool:
    try:
        from nbconvert import HTMLExporter

        body, _ = HTMLExporter().from_filename(str(nb_path))
        html_path.write_text(body)
        return True
    except Exception as exc:  # a report that cannot be rendered must not fail the run
        runlog.event("run.html_failed", level="warning", notebook=str(nb_path), error=str(exc))
        return False
