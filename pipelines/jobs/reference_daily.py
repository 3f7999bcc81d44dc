"""``reference_daily``: airlines / airports / planes snapshots from
``landing/reference/<date>/`` -> the lake (``raw/<table>`` appended, ``clean/<table>`` by
natural key, the newest snapshot winning) -> the ``airlines`` collection the dashboard reads.
An unchanged snapshot (same content as one already processed) is archived as a duplicate
without being read again. Each file's rows as Spark read them must be the rows its check counted
(``ingest.set_aside``): a file that does not reconcile is left out, retried or quarantined, and
the run fails once the others are processed. The flights pick the new reference data up when
their dates are next recomputed (``publish.refresh``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import structlog
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from pipelines.core import reconcile
from pipelines.core.config import Settings
from pipelines.jobs.params import DailyParams
from pipelines.lake import tables
from pipelines.landing import ingest
from pipelines.landing.manifest import LandedFile
from pipelines.serving import publish, sinks
from pipelines.serving.readmodels import AIRLINES
from pipelines.stack.spark import build_session
from pipelines.transform import cleaning, rejects

log = structlog.get_logger(__name__)

JOB = "reference_daily"
SOURCE = "reference"
TABLES: dict[str, tuple[list[str], Callable[..., DataFrame]]] = {
    "airlines": (cleaning.AIRLINES_HEADER, cleaning.clean_airlines),
    "airports": (cleaning.AIRPORTS_HEADER, cleaning.clean_airports),
    "planes": (cleaning.PLANES_HEADER, cleaning.clean_planes),
}
SERVED = {"airlines": AIRLINES}  # what the dashboard reads; the rest stays in the lake


def _table(f: LandedFile) -> str:
    return f.path.stem


def newest_per_key(rows: DataFrame) -> DataFrame:
    """One row per ``_id``: the one of the newest ``snapshot`` (then ``source_file``)."""
    order = Window.partitionBy("_id").orderBy(F.col("snapshot").desc(), F.col("file_key").desc())
    return rows.withColumn("_n", F.row_number().over(order)).where("_n = 1").drop("_n")


def run(settings: Settings, day: date | None = None) -> dict[str, Any]:
    """Process every pending reference snapshot once, oldest date first (only the snapshot of
    ``day`` if given)."""
    t0 = time.monotonic()
    lz = ingest.zone(settings)
    batch = ingest.claim_pending(
        lz,
        SOURCE,
        lambda f: TABLES[_table(f)][0] if _table(f) in TABLES else None,
        JOB,
        f"{day:%Y-%m-%d}/*.csv" if day else "*.csv",
    )
    totals = {"rows_in": 0, "accepted": 0, "rejected": 0}
    now = datetime.now(UTC).replace(tzinfo=None)
    spark = build_session(settings, JOB) if batch.good or batch.rejects else None
    if spark is not None and batch.rejects:
        publish.publish_rejects(settings, rejects.file_rows(spark, batch.rejects, now))
    mismatches: list[reconcile.FileMismatch] = []
    fates: dict[str, str] = {}
    unreconciled: list[ingest.FileReject] = []  # files quarantined: they did not reconcile
    for table, (header, clean) in TABLES.items() if spark is not None else ():
        files = sorted((f for f in batch.good if _table(f) == table), key=lambda f: f.name)
        if not files:
            continue
        raw = ingest.read_csv(spark, files, header).withColumn(
            "file_key", F.concat_ws("/", "source_dir", "source_file")
        )
        keep = ("file_key", "source_dir", "raw_line", ingest.CORRUPT)
        cached = ingest.with_malformed(clean(raw, keep)).persist()
        read = ingest.file_counts(cached, "file_key")  # per file, before anything is written
        aside = ingest.set_aside(lz, batch, read, JOB, files, key=lambda f: f.name)
        mismatches += aside.mismatches
        fates |= aside.fates
        unreconciled += aside.rejects
        files = [f for f in files if f in batch.good]
        if not files:
            cached.unpersist()
            continue
        cleaned = aside.keep(cached, "file_key")
        rows = (
            cleaned.where(F.col("reject_reason").isNull())
            .withColumnRenamed("source_dir", "snapshot")
            .drop("reject_reason", ingest.CORRUPT, "raw_line")
            .withColumn("landed_at", F.lit(now))
        )
        tables.append(rows, settings, tables.RAW_REFERENCE[table])
        tables.retrying(lambda t=table, r=rows: _publish(spark, settings, t, r), f"clean {table}")
        publish.publish_rejects(
            settings, rejects.line_rejects(cleaned, JOB, ["file_key", ingest.RAW_LINE], now)
        )
        done = ingest.commit_all(lz, files, read, key=lambda f: f.name)
        totals = {k: totals[k] + done[k] for k in totals}
        cached.unpersist()
    if spark is not None and unreconciled:
        publish.publish_rejects(settings, rejects.file_rows(spark, unreconciled, now))
    ingest.settle_deferred(lz, batch)
    result = {**batch.summary(), **totals, "unreconciled": len(mismatches),
              "seconds": round(time.monotonic() - t0, 2)}  # fmt: skip
    sinks.set_state(settings, JOB, None, last_run=result)
    log.info("reference_daily.done", **result)
    if mismatches:
        raise reconcile.files_error(SOURCE, mismatches, fates)
    return result


def _publish(spark: SparkSession, settings: Settings, table: str, rows: DataFrame) -> None:
    """``clean/<table>`` = the previous clean table + the new rows, newest snapshot winning."""
    target = tables.REFERENCE[table]
    merged = rows
    if tables.exists(spark, settings, target):
        merged = tables.read(spark, settings, target).unionByName(rows, allowMissingColumns=True)
    # localCheckpoint: the table is overwritten from a frame that reads it
    clean = newest_per_key(merged).localCheckpoint()
    tables.overwrite(clean, settings, target)
    if table in SERVED:
        sinks.write(clean.select("_id", "name"), settings, SERVED[table])


def main(settings: Settings, params: DailyParams) -> dict[str, Any]:
    """The registry's entry: :func:`run` of the snapshot of ``params.date`` (None: all)."""
    return run(settings, params.date)
