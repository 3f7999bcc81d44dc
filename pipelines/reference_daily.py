"""``reference_daily``: airlines / airports / planes snapshots from
``landing/reference/<date>/`` -> the ``airlines``, ``airports`` and ``planes`` collections,
upserted by natural key. An unchanged snapshot (same content as one already processed) is
archived as a duplicate without being read again."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date
from typing import Any

import structlog
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from . import ingest, mongo, serving, sinks, transform
from .config import Settings
from .landing import LandedFile
from .spark import build_session

log = structlog.get_logger(__name__)

JOB = "reference_daily"
SOURCE = "reference"
TABLES: dict[str, tuple[list[str], Callable[..., DataFrame]]] = {
    "airlines": (transform.AIRLINES_HEADER, transform.clean_airlines),
    "airports": (transform.AIRPORTS_HEADER, transform.clean_airports),
    "planes": (transform.PLANES_HEADER, transform.clean_planes),
}


def _table(f: LandedFile) -> str:
    return f.path.stem


def run(settings: Settings, day: date | None = None) -> dict[str, Any]:
    """Process every pending reference snapshot once, oldest date first (only the snapshot of
    ``day`` if given)."""
    t0 = time.monotonic()
    db = mongo.database(settings)
    lz = ingest.zone(settings)
    batch = ingest.claim_pending(
        lz,
        SOURCE,
        lambda f: TABLES[_table(f)][0] if _table(f) in TABLES else None,
        JOB,
        f"{day:%Y-%m-%d}/*.csv" if day else "*.csv",
    )
    serving.write_rejects(db, batch.rejects)
    totals = {"rows_in": 0, "accepted": 0, "rejected": 0}
    if batch.good:
        spark = build_session(settings, JOB)
        for table, (header, clean) in TABLES.items():
            files = sorted((f for f in batch.good if _table(f) == table), key=lambda f: f.name)
            if not files:
                continue
            raw = ingest.read_csv(spark, files, header).withColumn(
                "file_key", F.concat_ws("/", "source_dir", "source_file")
            )
            keep = ("file_key", "raw_line", ingest.CORRUPT)
            cleaned = ingest.with_malformed(clean(raw, keep)).persist()
            # oldest snapshot first, newest last: the newest wins for a key in several files
            for f in files:
                rows = cleaned.where(
                    (F.col("file_key") == f.name) & F.col("reject_reason").isNull()
                ).drop("reject_reason", "file_key", ingest.CORRUPT, "raw_line")
                sinks.upsert(rows, settings, table)
            serving.write_rejects(
                db, serving.rejects_from(cleaned, JOB, ["file_key", "raw_line"], "raw_line")
            )
            done = ingest.commit_all(
                lz, files, ingest.file_counts(cleaned, "file_key"), key=lambda f: f.name
            )
            totals = {k: totals[k] + done[k] for k in totals}
            cleaned.unpersist()
    ingest.settle_deferred(lz, batch)
    result = {**batch.summary(), **totals, "seconds": round(time.monotonic() - t0, 2)}
    serving.set_state(db, JOB, None, last_run=result)
    log.info("reference_daily.done", **result)
    return result
