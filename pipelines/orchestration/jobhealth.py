"""Each job's health, kept where the ledger is written: ``pipeline_health``, one small document
per job (``_id`` = the job), so the page reads what it shows by ``_id`` whatever the ledger's
size.

Why: FerretDB v1.24 answers only ``{_id: value}`` from an index and scans for any other
filter. The page used to read 8 days of ``pipeline_runs`` (``start >= now - 8 days``) on every
refresh: with 8 days of one run a minute (11,720 documents) that read alone took 1.6 s, and it
grew with the ledger. The document below is written at every ledger write and read by ``_id``
(``bench/job_health.py``, FerretDB, 2 cores under load 5 to 11: the former read 3.0 s after 8
days of one run a minute and 9.4 s after 30 days, 43,200 runs, as it scans the whole ledger;
the three documents by ``_id`` 5 to 17 ms at every size; a ledger write with its health 23 ms).

The document of a job::

    {"_id": "weather_hourly", "job": "weather_hourly", "seq": 812,
     "last":         {"run_id", "status", "start", "end", "error", "updated_at"},
     "last_success": {...the same fields...},
     "last_failure": {...the same fields...},
     "failures":     [{"run_id", "start", "updated_at"}, ...],
     "updated_at":   <wall clock of the write>}

- ``last``: the run with the newest ``start`` (what the page's pill shows); ``error`` is the
  message of the run's error (a string) or absent;
- ``failures``: the failed runs started in the :data:`WINDOW` (24 h) before ``last.start``,
  newest first, at most :data:`FAILURES_KEPT` (a failure a minute for a day is 1,440): the page
  counts those of the 24 h before its own ``now``, which is never earlier than ``last.start``,
  so the count is the one it made from the ledger itself;
- ``seq``: a counter the write compares and sets, so two writers never lose each other's run.

:func:`fold` is pure and idempotent: folding a run document twice, or an older version of a
run after a newer one (a ledger write replayed from the pending file), changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

from pipelines.core.domain import RunStatus, run_failed
from pipelines.serving.readmodels import HEALTH

log = structlog.get_logger(__name__)

COLLECTION = HEALTH
WINDOW = timedelta(hours=24)  # the page's "failed in 24 h"
FAILURES_KEPT = 2_000
WRITE_ATTEMPTS = 5  # compare-and-set rounds before giving up (another writer each time)


failed = run_failed  # a run status that counts as a failure on the page (core/domain.py)


def utc(value: Any) -> datetime | None:
    """A datetime as aware UTC (a naive one is UTC: pymongo without ``tz_aware``)."""
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _stamp(value: Any) -> float:
    when = utc(value)
    return when.timestamp() if when is not None else float("-inf")


def entry(run: Mapping[str, Any]) -> dict[str, Any]:
    """What the health document keeps of a ledger document (unknown values absent)."""
    error = run.get("error")
    message = error.get("message") if isinstance(error, Mapping) else error
    out = {
        "run_id": run.get("run_id") or run.get("_id"),
        "status": run.get("status"),
        "start": utc(run.get("start")),
        "end": utc(run.get("end")),
        "error": message,
        "updated_at": utc(run.get("updated_at")),
    }
    return {k: v for k, v in out.items() if v is not None}


def _replaces(new: Mapping[str, Any], current: Mapping[str, Any] | None) -> bool:
    """``new`` takes ``current``'s place: nothing there, a newer version of the same run, or
    another run started no earlier."""
    if current is None:
        return True
    if new.get("run_id") == current.get("run_id"):
        return _stamp(new.get("updated_at")) >= _stamp(current.get("updated_at"))
    return _stamp(new.get("start")) >= _stamp(current.get("start"))


def _known(health: Mapping[str, Any], run_id: Any) -> dict[str, Any] | None:
    """The newest version of run ``run_id`` the document holds, if any."""
    held = [health.get(k) for k in ("last", "last_success", "last_failure")]
    held += list(health.get("failures") or [])
    versions = [h for h in held if isinstance(h, Mapping) and h.get("run_id") == run_id]
    return dict(max(versions, key=lambda h: _stamp(h.get("updated_at")))) if versions else None


def fold(health: Mapping[str, Any] | None, run: Mapping[str, Any]) -> dict[str, Any]:
    """``health`` (a job's document, or None) with the ledger document ``run`` of that job
    folded in; ``health`` itself is not changed."""
    new = entry(run)
    job = run["job"]
    out: dict[str, Any] = {"_id": job, "job": job, **{k: v for k, v in (health or {}).items()}}
    out["_id"] = out["job"] = job
    known = _known(out, new.get("run_id"))
    if known is not None and _stamp(new.get("updated_at")) < _stamp(known.get("updated_at")):
        return out  # an older version of a run it knows newer: nothing to learn
    if _replaces(new, out.get("last")):
        out["last"] = new
    status = new.get("status")
    slot = "last_success" if status == RunStatus.SUCCESS else None
    if failed(status):
        slot = "last_failure"
    for key in ("last_success", "last_failure"):
        held = out.get(key)
        if held is not None and held.get("run_id") == new.get("run_id") and key != slot:
            out.pop(key)  # the run is no longer what that slot says (a newer status)
    if slot is not None and _replaces(new, out.get(slot)):
        out[slot] = new
    failures = [f for f in out.get("failures") or [] if f.get("run_id") != new.get("run_id")]
    if failed(status) and new.get("start") is not None:
        failures.append({k: new[k] for k in ("run_id", "start", "updated_at") if k in new})
    newest = utc((out.get("last") or {}).get("start"))
    if newest is not None:
        failures = [f for f in failures if _stamp(f.get("start")) >= (newest - WINDOW).timestamp()]
    failures.sort(key=lambda f: _stamp(f.get("start")), reverse=True)
    out["failures"] = failures[:FAILURES_KEPT]
    return out


def failures_since(health: Mapping[str, Any] | None, since: datetime) -> int:
    """Failed runs of the document started at or after ``since``."""
    floor = since.timestamp()
    return sum(_stamp(f.get("start")) >= floor for f in (health or {}).get("failures") or [])


def record(collection: Collection, run: Mapping[str, Any], runs: Collection | None = None) -> None:
    """Fold ``run`` into its job's document of ``collection``: read by ``_id``, folded, written
    back only if nobody wrote it meanwhile (``seq`` compared and set; the filter on ``seq``
    scans ``pipeline_health`` on FerretDB, a handful of documents). A job without a document
    yet starts from its runs of the ledger ``runs`` in the window before ``run`` (one scan of
    the ledger, once per job: a ledger kept before this document existed)."""
    job = run["job"]
    for _ in range(WRITE_ATTEMPTS):
        current = collection.find_one({"_id": job})
        base = current
        if current is None and runs is not None:
            base = seed(runs, job, utc(run.get("start")))
        new = fold(base, run)
        seq = (current or {}).get("seq", 0)
        new["seq"] = seq + 1
        new["updated_at"] = datetime.now(UTC)
        if current is None:
            try:
                collection.insert_one(new)
                return
            except DuplicateKeyError:
                continue  # another writer created it: fold into theirs
        if collection.replace_one({"_id": job, "seq": current.get("seq")}, new).matched_count:
            return
    log.warning("jobhealth.write_contended", job=job, run_id=run.get("_id"))


def seed(runs: Collection, job: str, newest: datetime | None) -> dict[str, Any] | None:
    """A job's document folded from its ledger runs started in the window before ``newest``
    (None when it has none)."""
    query: dict[str, Any] = {"job": job}
    if newest is not None:
        query["start"] = {"$gte": newest - WINDOW}
    health = None
    for doc in runs.find(query):
        health = fold(health, doc)
    return health
