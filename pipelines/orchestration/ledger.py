"""Where runs are recorded: the ``pipeline_runs`` collection, and what never depends on it.

- ``outputs/logs/runner.log``: one JSON object per line for every runner event, always
  written, whatever MongoDB does.
- MongoDB ``pipeline_runs``: one document per attempt (``_id`` = run id, the shape of
  :class:`~pipelines.orchestration.record.RunRecord`), written ``running`` at the start and
  replaced at the end; every write is also folded into the job's
  ``pipeline_health`` document (:mod:`~pipelines.orchestration.jobhealth`), what the page reads
  by ``_id`` instead of the ledger.
- ``outputs/logs/ledger-pending.jsonl``: a ledger write that MongoDB refused (unreachable,
  error) is appended here instead, logged, and never masks the job's own outcome. The next run
  that reaches MongoDB replays the file (a newer document in MongoDB always wins).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import structlog
from pymongo.errors import PyMongoError

from pipelines.clients import mongo
from pipelines.core import files
from pipelines.core.config import Settings
from pipelines.core.domain import RunStatus
from pipelines.core.exceptions import ServiceUnavailableError
from pipelines.orchestration import jobhealth

log = structlog.get_logger(__name__)

COLLECTION = "pipeline_runs"
_DATETIME_KEYS = ("start", "end", "updated_at")


def now() -> datetime:
    return datetime.now(UTC)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    return str(value)


def dumps(obj: Any) -> str:
    return json.dumps(obj, default=_json_default, sort_keys=False)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Exclusive flock on ``path`` + ``.lock`` (appenders and the replay never interleave)."""
    with files.exclusive(path.with_name(path.name + ".lock")):
        yield


class RunLog:
    """``outputs/logs/runner.log``: structured JSON lines, also echoed to stderr via structlog."""

    def __init__(self, logs_dir: Path) -> None:
        self.path = logs_dir / "runner.log"

    def event(self, event: str, level: str = "info", **fields: Any) -> None:
        record = {
            "ts": now().isoformat(timespec="milliseconds"),
            "level": level,
            "event": event,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            **fields,
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as fh:
                fh.write(dumps(record) + "\n")
        except OSError as exc:  # the log must never take a run down
            log.error("runner.log_unwritable", path=str(self.path), error=str(exc))
        echo = {k: v for k, v in fields.items() if k not in ("traceback", "params")}
        if isinstance(echo.get("error"), dict):  # stderr gets the gist, runner.log the detail
            echo["error"] = f"{echo['error'].get('type')}: {echo['error'].get('message')}"
        getattr(log, level if level in ("info", "warning", "error") else "info")(event, **echo)


class Ledger:
    """The run ledger of one env, MongoDB first, ``ledger-pending.jsonl`` when it cannot be."""

    def __init__(self, settings: Settings, logs_dir: Path, runlog: RunLog | None = None) -> None:
        self.settings = settings
        self.pending_path = logs_dir / "ledger-pending.jsonl"
        self.runlog = runlog or RunLog(logs_dir)

    # MongoDB -----------------------------------------------------------------------------
    def _collection(self):
        # A quick probe: an unreachable server costs 1 s here, not the client's 5 s.
        return mongo.database(self.settings, timeout_ms=1000)[COLLECTION]

    @staticmethod
    def _health(coll, doc: dict[str, Any]) -> None:
        """Fold ``doc`` into its job's ``pipeline_health`` document (beside ``coll``)."""
        if doc.get("job"):
            jobhealth.record(coll.database[jobhealth.COLLECTION], doc, runs=coll)

    def write(self, doc: dict[str, Any]) -> bool:
        """Record ``doc`` (replaced by ``_id``) and fold it into its job's health. False when
        it went to the pending file."""
        doc = {**doc, "updated_at": now()}
        try:
            coll = self._collection()
            coll.replace_one({"_id": doc["_id"]}, doc, upsert=True)
            self._health(coll, doc)
            return True
        except (PyMongoError, ServiceUnavailableError) as exc:
            self.runlog.event(
                "ledger.write_failed",
                level="warning",
                run_id=doc.get("_id"),
                status=doc.get("status"),
                error=f"{exc.__class__.__name__}: {exc}",
                pending=str(self.pending_path),
            )
            self._append_pending(doc)
            return False

    def _append_pending(self, doc: dict[str, Any]) -> None:
        try:
            with _locked(self.pending_path), open(self.pending_path, "a") as fh:
                fh.write(dumps(doc) + "\n")
        except OSError as exc:
            self.runlog.event("ledger.pending_unwritable", level="error", error=str(exc))

    def pending(self) -> list[dict[str, Any]]:
        """Documents of the pending file (datetimes restored), oldest first."""
        if not self.pending_path.exists():
            return []
        docs = []
        for line in self.pending_path.read_text().splitlines():
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            for key in _DATETIME_KEYS:
                if isinstance(doc.get(key), str):
                    with contextlib.suppress(ValueError):
                        doc[key] = datetime.fromisoformat(doc[key])
            docs.append(doc)
        return docs

    def flush_pending(self) -> int:
        """Replay the pending file into MongoDB; return how many documents were written."""
        if not self.pending_path.exists() or self.pending_path.stat().st_size == 0:
            return 0
        try:
            coll = self._collection()
        except ServiceUnavailableError:
            return 0
        with _locked(self.pending_path):
            latest: dict[str, dict[str, Any]] = {}
            for doc in self.pending():
                latest[doc["_id"]] = doc  # file order is write order: the last one wins
            written = 0
            try:
                for _id, doc in latest.items():
                    current = coll.find_one({"_id": _id}, {"updated_at": 1})
                    newer = current and current.get("updated_at") and doc.get("updated_at")
                    if not (newer and current["updated_at"] >= doc["updated_at"]):
                        coll.replace_one({"_id": _id}, doc, upsert=True)
                        written += 1
                    self._health(coll, doc)  # idempotent: an older version changes nothing
            except PyMongoError as exc:
                self.runlog.event("ledger.flush_failed", level="warning", error=str(exc))
                return written
            self.pending_path.write_text("")
        self.runlog.event("ledger.flushed", documents=written, pending=len(latest))
        return written

    # queries -------------------------------------------------------------------------------
    def _docs(self, query: dict[str, Any], limit: int) -> list[dict[str, Any]]:
        """Documents matching ``query`` (simple equality) from MongoDB and the pending file."""
        found: dict[str, dict[str, Any]] = {}
        try:
            cursor = self._collection().find(query).sort("start", -1).limit(limit)
            found = {d["_id"]: d for d in cursor}
        except (PyMongoError, ServiceUnavailableError) as exc:
            self.runlog.event("ledger.read_failed", level="warning", error=str(exc))
        for doc in self.pending():
            if all(_get(doc, k) == v for k, v in query.items()):
                found[doc["_id"]] = {**doc, "pending": True}
        docs = sorted(found.values(), key=lambda d: _sort_key(d.get("start")), reverse=True)
        return docs[:limit]

    def recent(self, job: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        query: dict[str, Any] = {"env": self.settings.env}
        if job:
            query["job"] = job
        return self._docs(query, limit)

    def last_status(self, job: str, date_param: str, day: date) -> str | None:
        """Status of the latest run of ``job`` in this env for logical date ``day``."""
        query = {"env": self.settings.env, "job": job, f"params.{date_param}": day.isoformat()}
        docs = self._docs(query, 1)
        return docs[0]["status"] if docs else None

    def mark_abandoned(self, run_id: str, holder: dict[str, Any]) -> None:
        """A run whose process died holding the lock: ``running`` -> ``failed``."""
        message = (
            f"run abandoned: its process (pid {holder.get('pid')} on {holder.get('host')}) "
            f"ended without recording an outcome (killed?); the lock was taken over"
        )
        try:
            coll = self._collection()
            coll.update_one(
                {"_id": run_id, "status": RunStatus.RUNNING.value},
                {
                    "$set": {
                        "status": RunStatus.FAILED.value,
                        "end": now(),
                        "updated_at": now(),
                        "error": {"type": "Abandoned", "message": message},
                    }
                },
            )
            if doc := coll.find_one({"_id": run_id}):
                self._health(coll, doc)
        except (PyMongoError, ServiceUnavailableError) as exc:
            self.runlog.event("ledger.write_failed", level="warning", run_id=run_id, error=str(exc))


def _get(doc: dict[str, Any], dotted: str) -> Any:
    value: Any = doc
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _sort_key(value: Any) -> float:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    return 0.0
