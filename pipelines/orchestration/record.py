"""The ledger's document of one run (``pipeline_runs``, ``_id`` = the run id), typed:
:class:`RunRecord`, checked strictly when built, and :meth:`RunRecord.to_document`, the dict the
ledger writes (and ``ledger-pending.jsonl`` keeps) key for key.

Three kinds of run write one, each with its own keys (``updated_at`` is the ledger's own):

- **an attempt of** ``run`` (:meth:`RunRecord.attempt_started`, the runner): ``running`` when
  it starts, replaced by its outcome when it ends; 25 keys, every key but ``supervisor_pid``;
- **a run the job's lock refused** (:meth:`RunRecord.locked_out`, the runner): written once,
  ``skipped_locked``, ``start`` = ``end``; 15 keys, its identity, times and error;
- **a service's worker** (:meth:`RunRecord.worker_started`, the supervisor): ``running`` while
  it runs, then ``success`` / ``failed`` / ``stopped``; 23 keys, the attempt's without
  ``max_attempts``, ``first_run_id`` and ``timeout_s``, with ``supervisor_pid``.

A document holds the keys its record was *given* (pydantic's ``model_fields_set``): each
constructor gives every key of its kind, ``None`` included, and :meth:`RunRecord.replace` keeps
them and adds those it changes. So a record of a kind writes exactly the document that kind
always wrote, and a key never appears on a run that never had it (the page, ``runs`` and
housekeeping read missing keys and ``None`` alike, but the documents stay what they were).
"""

from __future__ import annotations

import os
import socket
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from pipelines.core.domain import RunStatus


class RunRecord(BaseModel):
    """One run's ledger document; the fields in the document's key order (``_id`` first, the
    run id). Frozen: an outcome is a new record (:meth:`replace`), validated like the first."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")

    run_id: str  # ``runner.new_run_id``: ``20261204T221503-ab12cd`` (UTC start, 6 hex)
    job: str
    env: str
    params: dict[str, Any]  # the validated parameters, as JSON values (what papermill got)
    date: str | None = None  # the logical date of a dated job (its ``date_param``), ISO
    status: RunStatus
    start: datetime
    end: datetime | None = None
    duration_s: float | None = None  # wall seconds of the notebook (the worker: its life)
    rows_in: int | None = None  # the counts the notebook reported (``report``)
    rows_out: int | None = None
    rows_rejected: int | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)  # anything else it reported
    notebook: str | None = None  # the output notebook (None once it could not be written)
    html: str | None = None  # its HTML rendering
    log: str | None = None  # the kernel's and Spark's own output (a worker: the service's log)
    # ``type``, ``message`` and, as the failure had them, ``cell``, ``traceback``, ``cause``,
    # ``transient`` (worth a retry: a service not reachable)
    error: dict[str, Any] | None = None
    attempt: int  # 1, 2, ... (a worker: its start number; a refused run: 0)
    max_attempts: int | None = None  # the job's retries + 1
    first_run_id: str | None = None  # the run id of attempt 1 (itself for attempt 1)
    timeout_s: int | float | None = None  # the job's, as the registry has it (600, 1800.0)
    trigger: str  # manual, cron, backfill, demo, service, ...
    host: str
    pid: int  # the process that ran it: the runner, or the service's worker
    supervisor_pid: int | None = None  # a service's worker: its supervisor

    # ------------------------------------------------------------------------- the kinds
    @classmethod
    def attempt_started(
        cls,
        *,
        run_id: str,
        job: str,
        env: str,
        params: dict[str, Any],
        date: str | None,
        start: datetime,
        notebook: Path,
        attempt: int,
        max_attempts: int,
        first_run_id: str,
        timeout_s: float,
        trigger: str,
    ) -> RunRecord:
        """An attempt of ``run`` as it starts: ``running``, its outcome unknown (``None``),
        its output notebook ``notebook`` and the kernel's log beside it (``.log``)."""
        return cls(
            run_id=run_id, job=job, env=env, params=params, date=date,
            status=RunStatus.RUNNING, start=start, end=None, duration_s=None,
            rows_in=None, rows_out=None, rows_rejected=None, metrics={},
            notebook=str(notebook), html=None, log=str(notebook.with_suffix(".log")),
            error=None, attempt=attempt, max_attempts=max_attempts,
            first_run_id=first_run_id, timeout_s=timeout_s, trigger=trigger,
            host=socket.gethostname(), pid=os.getpid(),
        )  # fmt: skip

    @classmethod
    def locked_out(
        cls,
        *,
        run_id: str,
        job: str,
        env: str,
        params: dict[str, Any],
        date: str | None,
        at: datetime,
        message: str,
        trigger: str,
    ) -> RunRecord:
        """A run the job's lock refused at ``at`` (another run holds it; ``message`` names
        it): ``skipped_locked``, attempt 0, nothing ran."""
        return cls(
            run_id=run_id, job=job, env=env, params=params, date=date,
            status=RunStatus.SKIPPED_LOCKED, start=at, end=at, duration_s=0.0,
            error={"type": "JobLockedError", "message": message}, attempt=0,
            trigger=trigger, host=socket.gethostname(), pid=os.getpid(),
        )  # fmt: skip

    @classmethod
    def worker_started(
        cls,
        *,
        run_id: str,
        job: str,
        env: str,
        params: dict[str, Any],
        start: datetime,
        log: Path,
        attempt: int,
        pid: int,
    ) -> RunRecord:
        """A service's worker (process ``pid``) as its supervisor (this process) starts it:
        ``running``, no notebook, its output in the service's ``log``, trigger ``service``."""
        return cls(
            run_id=run_id, job=job, env=env, params=params, date=None,
            status=RunStatus.RUNNING, start=start, end=None, duration_s=None,
            rows_in=None, rows_out=None, rows_rejected=None, metrics={},
            notebook=None, html=None, log=str(log), error=None, attempt=attempt,
            trigger="service", host=socket.gethostname(), pid=pid,
            supervisor_pid=os.getpid(),
        )  # fmt: skip

    # ---------------------------------------------------------------------------- use
    def replace(self, **changes: Any) -> RunRecord:
        """This record with ``changes`` (an outcome), validated as strictly as a new one: it
        keeps the keys this one has and gains those changed."""
        given = {name: getattr(self, name) for name in self.model_fields_set}
        return type(self)(**{**given, **changes})

    def to_document(self) -> dict[str, Any]:
        """The ledger's document: ``_id`` (the run id), then the keys this record was given,
        in the fields' order, the status as its plain string."""
        doc: dict[str, Any] = {"_id": self.run_id}
        for name in type(self).model_fields:
            if name in self.model_fields_set:
                doc[name] = getattr(self, name)
        doc["status"] = self.status.value
        return doc

    @property
    def transient(self) -> bool:
        """Its failure was a service not reachable (worth a retry: ``error.transient``)."""
        return bool((self.error or {}).get("transient"))
