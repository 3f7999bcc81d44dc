"""What the ``housekeeping`` job removes, decided by pure functions over listings and a policy
(no service, no file system: ``tests/unit/test_retention.py``); :mod:`pipelines.jobs.housekeeping`
lists, deletes and measures.

- :func:`run_records_to_delete`: the files of each run under ``outputs/runs/`` (notebook, HTML,
  kernel log, metrics: ~280 KB a run) older than the policy's days, except the newest failure
  of each job (what a person opens first when a job goes red) and a run still going;
- :func:`ledger_to_delete`: ``pipeline_runs`` documents the page and ``runs`` no longer show:
  older than the policy's days (the page reads :data:`RUNS_PAGE_DAYS`), beyond the newest
  ``keep_per_job`` of their job (``runs`` shows :data:`RUNS_CLI_LIMIT`), and not the newest
  failure of their job nor a run still going;
- :func:`logs_to_roll` / :func:`logs_to_delete`: a log under ``outputs/logs/`` past a size is
  renamed ``<stem>.<YYYYMMDDTHHMMSS>.log`` (writers that reopen it start a new file; one that
  holds it open keeps writing the rolled one, whose mtime then stays fresh); a rolled log not
  written for the policy's days is deleted;
- :func:`hot_to_delete`: the hot path's board buckets (``flights_by_hour_hot``) whose hour is
  more than the policy's days before the replay clock and whose lake bucket (``flights_by_hour``,
  same ``_id``) knows at least as much (a ``version`` as high): the page resolves such a pair to
  the lake's document (``readmodels.resolve``), so deleting the hot one changes nothing it shows;
- :class:`Clock`: the product's clock over the wall's. Every retention is set in the product's
  time; at 1x (production) that is the wall's. A soak replaying 2013 at 720x passes its speed,
  so 14 days of run records last 28 wall minutes there, as 14 days would in production: the
  prune then happens within the soak, and its disk shows what months at 1x would;
- :class:`Freed`: what one step freed (files, bytes, documents), its console line and metrics.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pipelines.core.domain import RUN_FAILED, RunStatus
from pipelines.serving.alerts.levels import ago

FAILED = RUN_FAILED  # a run's statuses that count as a failure (its newest one is kept)
RUNNING = RunStatus.RUNNING
# the ledger's floor: a job's pipeline_health document is rebuilt from its recent runs (the
# last 24 h) and operators read a week of runs; the page itself reads pipeline_health by _id
RUNS_PAGE_DAYS = 8
RUNS_CLI_LIMIT = 20  # `tarmac runs` shows the newest 20 (its --limit default)
# the hot buckets' floor: a flight's last event (its arrival, or a cancellation) comes hours
# after its scheduled hour, and the live board raises its bucket until then
HOT_MIN_DAYS = 1
DELTA_MIN_RETENTION_HOURS = 168  # Delta's deletedFileRetentionDuration default (7 days)
# at an accelerated clock, VACUUM still keeps a replaced file this long in wall time: the longest
# reader of an older snapshot measured at a soak's load (a lake refresh, 1 to 6 min; a weather
# run, up to 336 s) with a margin of 2.5x
VACUUM_WALL_MIN_HOURS = 0.25
RUN_ID = re.compile(r"^(?P<stamp>\d{8}T\d{6})-[0-9a-f]{6}$")  # runner.new_run_id
ROLLED = re.compile(r"^.+\.\d{8}T\d{6}\.log$")  # a log rolled by housekeeping
# logs another mechanism bounds, or that are not logs: never rolled nor deleted here
KEEP_LOGS = re.compile(r"^(service-.*\.log(\.\d+)?|ledger-pending\.jsonl|.*\.lock)$")


@dataclass(frozen=True)
class Clock:
    """How much faster than the wall the product's clock runs (1: production; a replay's
    speed in a soak). A retention of the product's time lasts ``1 / speed`` of it on the wall,
    the clock that file times, run ids and the ledger's ``start`` are in."""

    speed: float = 1.0

    def days(self, days: float) -> float:
        """Wall days that ``days`` of the product's time last."""
        return days / self.speed

    def vacuum_hours(self, hours: float) -> float:
        """Wall hours ``VACUUM`` keeps a replaced file for ``hours`` of the product's time:
        never under :data:`VACUUM_WALL_MIN_HOURS` (a reader of an older snapshot needs it)."""
        return hours if self.speed == 1 else max(hours / self.speed, VACUUM_WALL_MIN_HOURS)

    def says(self, days: float) -> str:
        """``14 days``, or at an accelerated clock ``14 days (28 min of wall time at 720x)``."""
        text = f"{days:g} days"
        if self.speed == 1:
            return text
        return f"{text} ({span(self.days(days) * 86400)} of wall time at {self.speed:g}x)"


PRODUCTION = Clock()  # the product's clock is the wall's


def file_retention(hours: float) -> dict[str, str]:
    """The table property that keeps a replaced file ``hours`` (whole minutes, rounded up),
    for a ``VACUUM`` without ``RETAIN``: Delta's ``RETAIN`` counts whole hours only."""
    return {"delta.deletedFileRetentionDuration": f"interval {math.ceil(hours * 60)} minutes"}


def span(seconds: float) -> str:
    """``45 s``, ``28 min``, ``3 h``, ``7 d``: as the page and the alerts say an age."""
    return ago(timedelta(seconds=seconds))


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class RunFiles:
    """The files of one run under ``outputs/runs/<job>/<date>/``: ``<run_id>.*`` (its "run
    record" on disk, what the step ``run_records`` prunes; its ledger document is
    :class:`pipelines.orchestration.record.RunRecord`)."""

    job: str
    run_id: str
    files: tuple[tuple[str, int], ...]  # (path, size in bytes)

    @property
    def start(self) -> datetime | None:
        """The run's start, from its id (``20261204T221503-ab12cd``, UTC)."""
        match = RUN_ID.match(self.run_id)
        if not match:
            return None
        return datetime.strptime(match["stamp"], "%Y%m%dT%H%M%S").replace(tzinfo=UTC)

    @property
    def size(self) -> int:
        return sum(size for _, size in self.files)


def run_id_of(filename: str) -> str:
    """``<run_id>.metrics.json`` -> ``<run_id>`` (a run's files share the id before the dot)."""
    return filename.split(".", 1)[0]


def newest_failures(docs: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """``{job: run_id}`` of each job's newest failed (or timed-out) run in ledger ``docs``."""
    newest: dict[str, tuple[datetime, str]] = {}
    for doc in docs:
        if doc.get("status") not in FAILED or not isinstance(doc.get("start"), datetime):
            continue
        start = _utc(doc["start"])
        job = str(doc.get("job"))
        if job not in newest or start > newest[job][0]:
            newest[job] = (start, str(doc["_id"]))
    return {job: run_id for job, (_, run_id) in newest.items()}


def run_records_to_delete(
    records: Iterable[RunFiles],
    failures: Mapping[str, str],
    running: Iterable[str],
    now: datetime,
    days: float,
) -> list[RunFiles]:
    """The records started more than ``days`` before ``now``, except each job's newest failure
    (``failures``: job -> run id, :func:`newest_failures`) and the runs still ``running``. A
    record whose name is not a run id is left alone (not ours)."""
    cutoff = _utc(now) - timedelta(days=days)
    keep = set(failures.values()) | set(running)
    return [r for r in records if r.start is not None and r.start < cutoff and r.run_id not in keep]


def ledger_to_delete(
    docs: Iterable[Mapping[str, Any]], now: datetime, days: float, keep_per_job: int
) -> list[str]:
    """The ``_id`` of the ledger ``docs`` (one env's) that neither the page nor ``runs``
    shows any more: started more than ``days`` before ``now``, not among the newest
    ``keep_per_job`` of their job, not their job's newest failure, not still ``running``."""
    docs = list(docs)
    cutoff = _utc(now) - timedelta(days=days)
    keep = set(newest_failures(docs).values())
    by_job: dict[str, list[Mapping[str, Any]]] = {}
    for doc in docs:
        by_job.setdefault(str(doc.get("job")), []).append(doc)
    for mine in by_job.values():
        mine.sort(key=lambda d: _utc(d["start"]) if isinstance(d.get("start"), datetime)
                  else datetime.min.replace(tzinfo=UTC), reverse=True)  # fmt: skip
        keep.update(str(d["_id"]) for d in mine[:keep_per_job])
    doomed = []
    for doc in docs:
        start = doc.get("start")
        if str(doc["_id"]) in keep or doc.get("status") == RUNNING:
            continue
        if isinstance(start, datetime) and _utc(start) >= cutoff:
            continue
        doomed.append(str(doc["_id"]))  # old, or no start at all (a damaged document)
    return doomed


@dataclass(frozen=True)
class LogFile:
    name: str
    size: int
    mtime: datetime


def logs_to_roll(files: Iterable[LogFile], roll_bytes: int) -> list[LogFile]:
    """Live logs (``*.log``, not rolled yet, not bounded elsewhere) of ``roll_bytes`` or more;
    ``roll_bytes=0`` rolls every non-empty one."""
    return [
        f
        for f in files
        if f.name.endswith(".log") and not ROLLED.match(f.name) and not KEEP_LOGS.match(f.name)
        and f.size > 0 and f.size >= roll_bytes
    ]  # fmt: skip


def rolled_name(name: str, now: datetime) -> str:
    """``runner.log`` -> ``runner.20261204T031500.log``."""
    return f"{name.removesuffix('.log')}.{_utc(now):%Y%m%dT%H%M%S}.log"


def logs_to_delete(files: Iterable[LogFile], now: datetime, days: float) -> list[LogFile]:
    """Rolled logs not written for more than ``days`` (their mtime: a writer holding one open
    keeps it fresh)."""
    cutoff = _utc(now) - timedelta(days=days)
    return [f for f in files if ROLLED.match(f.name) and _utc(f.mtime) < cutoff]


@dataclass(frozen=True)
class HotBucket:
    """A hot board bucket as the ``hot`` step sees it: its hour, what it knows (the
    ``version`` of ``readmodels.hot_board``) and what the lake's bucket of the same ``_id``
    knows (None: the lake path has not written it)."""

    id: str
    hour_utc: datetime
    version: int
    lake_version: int | None


def hot_to_delete(buckets: Iterable[HotBucket], clock: datetime, days: int) -> list[str]:
    """The ``_id`` of the hot ``buckets`` whose hour is more than ``days`` before the replay
    ``clock`` (the stream's newest event time, not the wall clock: a replay runs 2013 at any
    speed) and whose lake bucket knows at least as much: the page shows the lake's then, so
    they go unseen. A bucket the lake path has not caught up with stays (reported)."""
    cutoff = _utc(clock) - timedelta(days=days)
    return [
        b.id
        for b in buckets
        if _utc(b.hour_utc) < cutoff and b.lake_version is not None and b.lake_version >= b.version
    ]


@dataclass
class Freed:
    """What one housekeeping step freed (and what it selected but could not remove)."""

    step: str
    files: int = 0
    bytes: int = 0
    documents: int = 0
    selected: int = 0  # items the policy chose (files, documents, runs)
    removed: int = 0  # of those, removed now
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        return self.selected - self.removed

    def line(self) -> str:
        """``vacuum        freed 12 files, 3.4 MB  (14 tables)``: the step's console line."""
        what = [f"{self.files:,} files", _human(self.bytes)]
        if self.documents:
            what.insert(0, f"{self.documents:,} documents")
        note = self.detail.get("note")
        tail = f"  ({note})" if note else ""
        warn = f"  [{self.failed} could not be removed]" if self.failed else ""
        return f"{self.step:<12}  freed {', '.join(what)}{tail}{warn}"

    def metrics(self) -> dict[str, Any]:
        return {"files": self.files, "bytes": self.bytes, "documents": self.documents,
                "selected": self.selected, "removed": self.removed, **self.detail}  # fmt: skip


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def summary(steps: Iterable[Freed]) -> dict[str, Any]:
    """The job's result: items selected (rows in) = removed (accepted) + not removable
    (rejected), the totals freed, and each step's figures (recorded in the ledger)."""
    steps = list(steps)
    return {
        "rows_in": sum(s.selected for s in steps),
        "accepted": sum(s.removed for s in steps),
        "rejected": sum(s.failed for s in steps),
        "freed_files": sum(s.files for s in steps),
        "freed_bytes": sum(s.bytes for s in steps),
        "freed_documents": sum(s.documents for s in steps),
        "steps": {s.step: s.metrics() for s in steps},
    }
