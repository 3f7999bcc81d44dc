"""``reference_daily``: airlines / airports / planes snapshots from
``landing/reference/<date>/`` -> the lake (``raw/<table>`` appended, ``clean/<table>`` by
natural key, the newest snapshot winning) -> the ``airlines`` collection the dashboard reads.
An unchanged snapshot (same content as one already processed) is archived as a duplicate
without being read again. Each file's rows as Spark read them must be the rows its check counted
(``ingest.set_aside``): a file that does not reconcile is left out, retried or quarantined, and
the run fails once the others are processed. The flights pick the new reference data up when
their dates are next recomputed (``publish.refresh``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from pipelines.clients.mongo import Mongo
from pipelines.core.config import Settings
from pipelines.jobs import file_job
from pipelines.jobs.file_job import FileRun
from pipelines.jobs.params import DailyParams
from pipelines.lake import tables
from pipelines.lake.tables import Lake
from pipelines.landing import ingest
from pipelines.landing.manifest import LandedFile
from pipelines.serving import sinks
from pipelines.serving.readmodels import AIRLINES
from pipelines.transform import cleaning, rejects

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
    ``day`` if given): ``file_job.run_file_job`` (claim, quarantine, commit, state), with
    :func:`process`."""
    return file_job.run_file_job(
        settings,
        JOB,
        SOURCE,
        lambda f: TABLES[_table(f)][0] if _table(f) in TABLES else None,
        f"{day:%Y-%m-%d}/*.csv" if day else "*.csv",
        process,
    )


def process(run: FileRun) -> None:
    """The good files of a run, table by table, each table's files oldest snapshot first: read,
    cleaned, each file's rows reconciled with its check before anything is written
    (``run.set_aside``), appended to ``raw/<table>``, merged into ``clean/<table>``
    (:func:`_publish`), their refused rows written as rejects, committed. No state time: None."""
    for table, (header, clean) in TABLES.items():
        files = sorted((f for f in run.files if _table(f) == table), key=lambda f: f.name)
        if not files:
            continue
        raw = ingest.read_csv(run.spark, files, header).withColumn(
            "file_key", F.concat_ws("/", "source_dir", "source_file")
        )
        keep = ("file_key", "source_dir", ingest.RAW_LINE, ingest.CORRUPT)
        cached = ingest.with_malformed(clean(raw, keep)).persist()
        read = ingest.file_counts(cached, "file_key")  # per file, before anything is written
        aside = run.set_aside(read, files, key=lambda f: f.name)
        files = [f for f in files if f in run.files]
        if not files:
            cached.unpersist()
            continue
        cleaned = aside.keep(cached, "file_key")
        rows = (
            cleaned.where(F.col("reject_reason").isNull())
            .withColumnRenamed("source_dir", "snapshot")
            .drop("reject_reason", ingest.CORRUPT, ingest.RAW_LINE)
            .withColumn("landed_at", F.lit(run.now))
        )
        run.lake.append(rows, tables.RAW_REFERENCE[table])
        tables.retrying(lambda t=table, r=rows: _publish(run.lake, run.store, t, r),
                        f"clean {table}")  # fmt: skip
        run.reject(rejects.line_rejects(cleaned, JOB, ["file_key", ingest.RAW_LINE], run.now))
        run.commit(files, read, key=lambda f: f.name)
        cached.unpersist()


def _publish(lake: Lake, store: Mongo, table: str, rows: DataFrame) -> None:
    """``clean/<table>`` = the previous clean table + the new rows, newest snapshot winning."""
    target = tables.REFERENCE[table]
    merged = rows
    if lake.exists(target):
        merged = lake.read(target).unionByName(rows, allowMissingColumns=True)
    # localCheckpoint: the table is overwritten from a frame that reads it
    clean = newest_per_key(merged).localCheckpoint()
    lake.overwrite(clean, target)
    if table in SERVED:
        sinks.write(clean.select("_id", "name"), store, SERVED[table])


def main(settings: Settings, params: DailyParams) -> dict[str, Any]:
    """The registry's entry: :func:`run` of the snapshot of ``params.date`` (None: all)."""
    return run(settings, params.date)
