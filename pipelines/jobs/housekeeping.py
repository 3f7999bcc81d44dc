"""The ``housekeeping`` job: what grows, pruned daily (cron, 03:30), each step one console line
and its figures in the job's result (the ledger's ``metrics.steps``).

1. ``optimize``: Delta ``OPTIMIZE`` of the append-only tables (a micro-batch or a file run
   appends small files); files compacted, bytes rewritten. Nothing is freed yet: the files it
   replaced are freed by a ``vacuum`` once older than its retention.
2. ``delta_log``: every lake table gets the log's retention and checkpoint interval of the
   settings (``spark.delta_log_retention_days``, 10; ``spark.delta_checkpoint_interval``, 100)
   where it has others: Delta's defaults (30 days, 10) let the stream's ~1,000 commits a day
   of each table keep ~18 GB of log with a year loaded (``bench/lake_growth.py``).
3. ``vacuum``: Delta ``VACUUM ... RETAIN n HOURS`` of every lake table (each ``replaceWhere``
   overwrite of a touched date leaves the files it replaced): ``LITE`` (from the log, ~10x
   cheaper) every day, ``FULL`` (the folders listed: also what a killed job left) on Sundays
   (``vacuum_mode``). What it frees is Delta's own
   measure, from the ``VACUUM START``/``VACUUM END`` commits it writes (files and bytes of the
   data files deleted; Hadoop's ``.crc`` sidecars of a local file system go with them).
4. ``run_records``: ``outputs/runs/<job>/<date>/<run_id>.*`` older than ``run_records_days``,
   except each job's newest failure (from the ledger) and runs still going.
5. ``logs``: ``outputs/logs/*.log`` past ``log_roll_bytes`` rolled, rolled logs not written
   for ``logs_days`` deleted.
6. ``ledger``: ``pipeline_runs`` of this env the page and ``runs`` no longer show
   (:func:`retention.ledger_to_delete`), deleted by ``_id``.
7. ``rejects``: MongoDB ``rejects`` whose ``at`` is older than ``rejects_days`` (the lake's
   ``raw/rejects`` keeps them all). On FerretDB v1.24 the ``{at: {$lt: …}}`` filter scans the
   collection (only ``_id`` is served from an index): acceptable once a day, ~140 µs a document.
8. ``hot``: the live board's buckets (``flights_by_hour_hot``, 3 origins x 24 hours a replayed
   day) whose hour is more than ``hot_days`` before the replay clock
   (``pipeline_state.flights_stream.newest_event_time``) and whose lake bucket knows as much
   (:func:`retention.hot_to_delete`): the page resolves such a pair to the lake's document.
   Without it the collection grows by 72 documents (~0.5 MB of 2013 traffic) a replayed day.

The policy is pure (:mod:`pipelines.jobs.retention`); this module lists, deletes and measures.
Kafka's retention is not a step: topics get ``retention.ms``/``retention.bytes`` when they are
created (:meth:`pipelines.core.config.TopicSettings.configs`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import bson
import structlog

from pipelines.clients import mongo
from pipelines.core.config import Settings, outputs_dir
from pipelines.jobs import retention
from pipelines.jobs.params import HousekeepingParams
from pipelines.jobs.retention import Freed, LogFile, RunFiles
from pipelines.serving import readmodels as RM

if TYPE_CHECKING:  # Spark is imported when a lake step runs, not when the job is listed
    from pipelines.lake.tables import Lake

log = structlog.get_logger(__name__)


# --- the lake ---------------------------------------------------------------------------------
def _commit_infos(lake: Lake, uri: str, after: int) -> list[dict[str, Any]]:
    """The ``commitInfo`` of each commit of the table at ``uri`` after version ``after``,
    read from its ``_delta_log`` through Hadoop's file system (no Spark job)."""
    infos = []
    version = after + 1
    while True:
        try:
            text = lake.files.read_text(f"{uri}/_delta_log/{version:020d}.json")
        except FileNotFoundError:
            return infos
        infos += [json.loads(line)["commitInfo"] for line in text.splitlines()
                  if line.startswith('{"commitInfo"')]  # fmt: skip
        version += 1


def optimize(lake: Lake, names: list[str]) -> Freed:
    """``OPTIMIZE`` each table of ``names`` that exists; its own metrics (files removed and
    added, bytes rewritten) from Delta's result."""
    from pipelines.lake import tables

    freed = Freed("optimize")
    compacted = added = rewritten = 0
    for table in (t for t in tables.TABLES if t.name in names):
        if not lake.exists(table):
            continue
        row = lake.spark.sql(f"OPTIMIZE delta.`{lake.uri(table)}`").collect()[0]
        metrics = row["metrics"]
        compacted += int(metrics["numFilesRemoved"])
        added += int(metrics["numFilesAdded"])
        rewritten += int(metrics["filesRemoved"]["totalSize"] or 0)
    freed.detail = {
        "compacted_files": compacted,
        "written_files": added,
        "rewritten_bytes": rewritten,
        "note": f"{compacted} small files -> {added}; freed by a VACUUM later",
    }
    return freed


def delta_log(lake: Lake, properties: dict[str, str]) -> Freed:
    """Give every lake table the log's ``properties`` (``SparkSettings.delta_table_properties``:
    its retention and checkpoint interval) where it has others: the tables created before
    those settings, or before they changed (a new table gets them from the session). One
    ``ALTER TABLE ... SET TBLPROPERTIES`` commit a table, once; Delta then drops the log older
    than the retention when it next writes a checkpoint (nothing is freed by this step
    itself). A writer that committed meanwhile retries (a metadata change is a conflict: the
    stream's appends are idempotent and retried, a refresh runs again)."""
    from pipelines.lake import tables

    freed = Freed("delta_log")
    changed = []
    for table in tables.TABLES:
        if not lake.exists(table):
            continue
        uri = lake.uri(table)
        current = lake.spark.sql(f"DESCRIBE DETAIL delta.`{uri}`").first()["properties"] or {}
        if all(current.get(k) == v for k, v in properties.items()):
            continue
        values = ", ".join(f"'{k}' = '{v}'" for k, v in sorted(properties.items()))
        sql = f"ALTER TABLE delta.`{uri}` SET TBLPROPERTIES ({values})"
        tables.retrying(lambda q=sql: lake.spark.sql(q), f"{table.name} properties")
        changed.append(table.name)
    note = (f"{len(changed)} tables given the log's retention and checkpoint interval"
            if changed else "every table has the log's settings")  # fmt: skip
    freed.detail = {"tables_changed": changed, "note": note}
    return freed


# the number of tasks of a FULL VACUUM's listing (Spark's default: 10,000; see vacuum)
LISTING_PARALLELISM = "spark.sql.sources.parallelPartitionDiscovery.parallelism"


def full_vacuum_today(mode: str, now: datetime) -> bool:
    """Whether today's run lists every table's folder (``FULL``) rather than reading its log
    (``LITE``): ``full``, ``lite``, or ``weekly`` (FULL on Sundays, UTC)."""
    return mode == "full" or (mode == "weekly" and now.weekday() == 6)


def _vacuum_sql(spark: Any, uri: str, kind: str, hours: float | None) -> None:
    retain = "" if hours is None else f" RETAIN {math.ceil(hours)} HOURS"
    spark.sql(f"VACUUM delta.`{uri}` {kind}{retain}").collect()


def vacuum(lake: Lake, hours: float, full: bool = False, by_table: bool = False) -> Freed:
    """``VACUUM`` every lake table once, with Delta's vacuum logging on: its ``VACUUM START``
    commit records the files and bytes it is about to delete (``numFilesToDelete``,
    ``sizeOfDataToDelete``), its ``VACUUM END`` the files deleted (``numDeletedFiles``).

    ``LITE`` (Delta 3.3+) finds what to delete in the table's log: the files its commits
    removed, since the last ``LITE`` run; ``FULL`` lists the table's folders and also deletes
    files no commit knows (what a job killed mid-write left). A ``LITE`` that Delta refuses
    (its log no longer reaches back to the last one) runs ``FULL``. A ``DRY RUN`` first would
    list the same files at the cost of a second pass.

    ``FULL`` lists the folders in as many Spark tasks as
    ``spark.sql.sources.parallelPartitionDiscovery.parallelism`` says, 10,000 by default, however
    few folders there are (Delta's ``VacuumCommand`` passes it to its listing as is). Set here
    to the session's cores (:data:`LISTING_PARALLELISM`): on a 30-partition table under load,
    ``FULL`` took 120 to 166 s with 10,000 tasks and 2 to 12 s with 2 or 8, ``LITE`` 3 to 16 s.

    ``RETAIN n HOURS`` counts whole hours: Delta rounds ``0.25`` to 0 (measured: its ``VACUUM
    START`` recorded ``specifiedRetentionMillis`` 0, which deletes a file a reader of the
    previous snapshot still needs). An accelerated clock's retention (``clock_speed``, under an
    hour) is therefore each table's ``delta.deletedFileRetentionDuration``, set by the
    ``delta_log`` step (:func:`retention.file_retention`), and ``by_table`` runs ``VACUUM``
    without ``RETAIN``: Delta then keeps what the table says, its safety check satisfied."""
    from pyspark.errors import AnalysisException

    from pipelines.lake import tables

    spark = lake.spark
    spark.conf.set("spark.databricks.delta.vacuum.logging.enabled", "true")
    spark.conf.set(LISTING_PARALLELISM, str(max(spark.sparkContext.defaultParallelism, 1)))
    retain = None if by_table else hours
    freed = Freed("vacuum")
    done, fell_back = 0, 0
    for table in tables.TABLES:
        if not lake.exists(table):
            continue
        uri = lake.uri(table)
        before = lake.version(table)
        try:
            _vacuum_sql(spark, uri, "FULL" if full else "LITE", retain)
        except AnalysisException as exc:
            if full or "VACUUM_LITE" not in str(exc):
                raise
            log.info("housekeeping.vacuum_full", table=table.name, reason=str(exc)[:200])
            fell_back += 1
            _vacuum_sql(spark, uri, "FULL", retain)
        infos = _commit_infos(lake, uri, before)
        start = [i for i in infos if i.get("operation") == "VACUUM START"]
        end = [i for i in infos if i.get("operation") == "VACUUM END"]
        metrics = start[-1].get("operationMetrics", {}) if start else {}
        selected = int(metrics.get("numFilesToDelete", 0))
        deleted = int(end[-1].get("operationMetrics", {}).get("numDeletedFiles", 0)) if end else 0
        freed.selected += selected
        freed.removed += deleted
        freed.files += deleted
        size = int(metrics.get("sizeOfDataToDelete", 0))
        freed.bytes += size if deleted == selected else size * deleted // max(selected, 1)
        done += 1
    kinds = "FULL" if full else "LITE"
    if fell_back:
        kinds += f", {fell_back} FULL (log too short)"
    kept = retention.span(hours * 3600) + " kept"
    if retain is None:
        kept += ", as each table says"
    freed.detail = {"tables": done, "retention_hours": round(hours, 4),
                    "mode": "full" if full else "lite",
                    "note": f"{done} tables, {kinds}, {kept}"}  # fmt: skip
    return freed


# --- files ------------------------------------------------------------------------------------
def list_run_records(runs: Path) -> list[RunFiles]:
    """The runs under ``runs/<job>/<date>/``, their files grouped by run id."""
    grouped: dict[tuple[str, str], list[tuple[str, int]]] = {}
    for path in sorted(runs.glob("*/*/*")):
        if path.is_file():
            key = (path.parent.parent.name, retention.run_id_of(path.name))
            grouped.setdefault(key, []).append((str(path), path.stat().st_size))
    return [RunFiles(job, run_id, tuple(files)) for (job, run_id), files in grouped.items()]


def _unlink(path: Path) -> int | None:
    """Delete ``path``; its size, or None when it could not be deleted (logged)."""
    try:
        size = path.stat().st_size
        path.unlink()
        return size
    except OSError as exc:
        log.warning("housekeeping.unlink_failed", path=str(path), error=str(exc))
        return None


def prune_run_records(
    db: Any, runs: Path, now: datetime, days: float, clock: retention.Clock = retention.PRODUCTION
) -> Freed:
    """Delete the run records :func:`retention.run_records_to_delete` picks (newest failure of
    each job from the ledger, every env of this database: ``outputs/runs`` is shared)."""
    coll = db[RM.RUNS]
    proj = {"job": 1, "status": 1, "start": 1}
    failures = retention.newest_failures(
        coll.find({"status": {"$in": sorted(retention.FAILED)}}, proj)
    )
    running = [d["_id"] for d in coll.find({"status": retention.RUNNING}, {"_id": 1})]
    doomed = retention.run_records_to_delete(
        list_run_records(runs), failures, running, now, clock.days(days)
    )
    freed = Freed("run_records", selected=len(doomed))
    for record in doomed:
        sizes = [_unlink(Path(p)) for p, _ in record.files]
        freed.files += sum(s is not None for s in sizes)
        freed.bytes += sum(s or 0 for s in sizes)
        freed.removed += all(s is not None for s in sizes)
    for folder in sorted(runs.glob("*/*"), reverse=True):  # date folders left empty
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    freed.detail = {"runs": freed.removed, "kept_failures": sorted(failures.values()),
                    "note": f"{freed.removed} runs older than {clock.says(days)}"}  # fmt: skip
    return freed


def _log_files(folder: Path) -> list[LogFile]:
    out = []
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if path.is_file():
            st = path.stat()
            out.append(LogFile(path.name, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC)))
    return out


def prune_logs(
    folder: Path,
    now: datetime,
    days: float,
    roll_bytes: int,
    clock: retention.Clock = retention.PRODUCTION,
) -> Freed:
    """Roll the big live logs, then delete the rolled ones not written for ``days``."""
    rolled = retention.logs_to_roll(_log_files(folder), roll_bytes)
    for f in rolled:
        os.replace(folder / f.name, folder / retention.rolled_name(f.name, now))
    doomed = retention.logs_to_delete(_log_files(folder), now, clock.days(days))
    freed = Freed("logs", selected=len(doomed))
    for f in doomed:
        size = _unlink(folder / f.name)
        if size is not None:
            freed.files += 1
            freed.bytes += size
            freed.removed += 1
    note = f"{len(rolled)} rolled, deleted when not written for {clock.says(days)}"
    freed.detail = {"rolled": [f.name for f in rolled], "note": note}
    return freed


# --- MongoDB ----------------------------------------------------------------------------------
def prune_ledger(
    db: Any,
    env: str,
    now: datetime,
    days: float,
    keep_per_job: int,
    clock: retention.Clock = retention.PRODUCTION,
) -> Freed:
    """Delete the ledger documents of ``env`` :func:`retention.ledger_to_delete` picks, one
    ``_id`` at a time (FerretDB serves ``{_id: value}`` from its index)."""
    from pymongo import DeleteOne

    coll = db[RM.RUNS]
    docs = {d["_id"]: d for d in coll.find({"env": env})}  # a scan: once a day
    doomed = retention.ledger_to_delete(docs.values(), now, clock.days(days), keep_per_job)
    mongo.bulk_write(coll, [DeleteOne({"_id": _id}) for _id in doomed])
    left = {d["_id"] for d in mongo.find_by_ids(coll, doomed, {"_id": 1})}
    gone = [_id for _id in doomed if _id not in left]
    freed = Freed("ledger", selected=len(doomed), removed=len(gone), documents=len(gone))
    freed.bytes = sum(len(bson.encode(docs[_id])) for _id in gone)
    freed.detail = {"kept": len(docs) - len(gone),
                    "note": f"{len(docs) - len(gone)} runs of env {env} kept"}  # fmt: skip
    return freed


def prune_rejects(
    db: Any, now: datetime, days: float, clock: retention.Clock = retention.PRODUCTION
) -> Freed:
    """Delete the ``rejects`` older than ``days`` (by ``at``; a scan on FerretDB v1.24), their
    BSON sizes measured first."""
    coll = db[RM.REJECTS]
    old = {"at": {"$lt": now - timedelta(days=clock.days(days))}}
    sizes = [len(bson.encode(d)) for d in coll.find(old)]
    deleted = coll.delete_many(old).deleted_count
    freed = Freed("rejects", selected=len(sizes), removed=deleted, documents=deleted)
    freed.bytes = sum(sizes) if deleted == len(sizes) else sum(sorted(sizes)[:deleted])
    freed.detail = {"note": f"older than {clock.says(days)}; the lake's raw/rejects keeps all"}
    return freed


def prune_hot(db: Any, days: int) -> Freed:
    """Delete the hot board buckets :func:`retention.hot_to_delete` picks, relative to the
    stream's replay clock; their BSON sizes measured first. The hour filter scans on FerretDB
    v1.24 (once a day, over a few days of buckets once this step runs); the lake's versions are
    read by ``_id``. A late event raising a bucket after it went makes a new hot bucket that
    knows less than the lake's: the page keeps showing the lake's."""
    from pymongo import DeleteOne

    freed = Freed("hot")
    state = db[RM.STATE].find_one({"_id": "flights_stream"}, {"newest_event_time": 1}) or {}
    clock = state.get("newest_event_time")
    if clock is None:
        freed.detail = {"note": "no replay clock yet (the stream has not written a batch)"}
        return freed
    cutoff = clock - timedelta(days=days)
    old = list(db[RM.BOARD_HOT].find({"hour_utc": {"$lt": cutoff}}))
    ids = [d["_id"] for d in old]
    found = mongo.find_by_ids(db[RM.BOARD], ids, {"version": 1})
    lake = {d["_id"]: d.get("version") for d in found}
    buckets = [retention.HotBucket(d["_id"], d["hour_utc"], RM.hot_board(d)["version"],
                                   lake.get(d["_id"])) for d in old]  # fmt: skip
    doomed = retention.hot_to_delete(buckets, clock, days)
    sizes = {d["_id"]: len(bson.encode(d)) for d in old}
    mongo.bulk_write(db[RM.BOARD_HOT], [DeleteOne({"_id": _id}) for _id in doomed])
    left = {d["_id"] for d in mongo.find_by_ids(db[RM.BOARD_HOT], doomed, {"_id": 1})}
    gone = [_id for _id in doomed if _id not in left]
    freed.selected, freed.removed, freed.documents = len(doomed), len(gone), len(gone)
    freed.bytes = sum(sizes[_id] for _id in gone)
    behind = len(old) - len(doomed)
    freed.detail = {
        "clock": clock.isoformat(),
        "kept_lake_behind": behind,
        "note": f"hours older than {days} days before the replay clock {clock:%Y-%m-%d %H:%M}Z"
        + (f"; {behind} kept: the lake's bucket knows less" if behind else ""),
    }
    return freed


# --- the job ----------------------------------------------------------------------------------
def _now() -> datetime:
    return datetime.now(UTC)


def main(settings: Settings, params: HousekeepingParams) -> dict[str, Any]:
    """The registry's entry: every step in turn, one line each, the totals as the result."""
    from pipelines.clients.spark import build_session
    from pipelines.lake.tables import Lake

    now = datetime.now(UTC)  # the run's day (FULL VACUUM on Sundays); each step ages by its own
    outputs = outputs_dir()
    db = mongo.database(settings)
    steps: list[Callable[[], Freed]] = []
    names = [n for n in params.optimize_tables.split(",") if n]
    clock = retention.Clock(params.clock_speed)
    keep_hours = clock.vacuum_hours(params.vacuum_retention_hours)
    properties = settings.spark.delta_table_properties()
    if clock.speed != 1:  # a retention under an hour: the tables' own (see vacuum)
        properties |= retention.file_retention(keep_hours)
    lake = Lake.of(build_session(settings, "housekeeping"), settings)
    if names:
        steps.append(lambda: optimize(lake, names))
    steps += [
        lambda: delta_log(lake, properties),
        lambda: vacuum(
            lake,
            keep_hours,
            full_vacuum_today(params.vacuum_mode, now),
            by_table=clock.speed != 1,
        ),  # fmt: skip
        # each step's ages from its own start: a FULL VACUUM before them took 20 min in the
        # soak, and the run records of those minutes stayed (a 21-min retention at 960x)
        lambda: prune_run_records(db, outputs / "runs", _now(), params.run_records_days, clock),
        lambda: prune_logs(
            outputs / "logs", _now(), params.logs_days, params.log_roll_bytes, clock
        ),  # fmt: skip
        lambda: prune_ledger(
            db, settings.env, _now(), params.ledger_days, params.ledger_keep_per_job, clock
        ),  # fmt: skip
        lambda: prune_rejects(db, _now(), params.rejects_days, clock),
        lambda: prune_hot(db, params.hot_days),
    ]
    done = []
    for step in steps:
        freed = step()
        print(freed.line(), flush=True)
        log.info("housekeeping.step", step=freed.step, **freed.metrics())
        done.append(freed)
    result = retention.summary(done)
    print(f"{'total':<12}  freed {result['freed_files']:,} files, {result['freed_bytes']:,} "
          f"bytes, {result['freed_documents']:,} documents", flush=True)  # fmt: skip
    return result
