"""``weather_hourly``: hourly weather files from ``landing/weather/`` -> ``weather_hourly``.

Values are cleaned into SI units (``transform.clean_weather``); refused rows and nulled
values go to ``rejects``. Weather that lands after the flights of its hour is pushed into those
flight documents (found through ``flights_by_hour``), and the KPIs of their dates are
recomputed.
"""

from __future__ import annotations

import time
from datetime import date
from typing import Any

import structlog
from pyspark.sql import functions as F

from . import ingest, mongo, serving, transform
from .config import Settings
from .spark import build_session

log = structlog.get_logger(__name__)

JOB = "weather_hourly"
SOURCE = "weather"


def run(settings: Settings, day: date | None = None) -> dict[str, Any]:
    """Process every pending weather file once (only those of ``day``, a UTC date, if given);
    return file and row counts."""
    t0 = time.monotonic()
    db = mongo.database(settings)
    serving.ensure_indexes(db)
    lz = ingest.zone(settings)
    pattern = f"weather_{day:%Y%m%d}T*.csv" if day else "*.csv"
    batch = ingest.claim_pending(lz, SOURCE, lambda f: transform.WEATHER_HEADER, JOB, pattern)
    serving.write_rejects(db, batch.rejects)
    totals = {"rows_in": 0, "accepted": 0, "rejected": 0}
    newest = None
    if batch.good:
        spark = build_session(settings, JOB)
        raw = ingest.read_csv(spark, batch.good, transform.WEATHER_HEADER)
        keep = ("raw_line", ingest.CORRUPT)
        cleaned = ingest.with_malformed(transform.clean_weather(raw, keep)).persist()
        accepted = cleaned.where(F.col("reject_reason").isNull()).drop("reject_reason", *keep)
        rejects = serving.rejects_from(cleaned, JOB, ["source_file", "raw_line"], "raw_line")
        issues = [
            {"source": JOB, "reason": r["value_issues"], "where": f"{r['source_file']}:{r['_id']}",
             "excerpt": r["_id"], "kind": "value"}
            for r in accepted.where(F.col("value_issues").isNotNull()).collect()
        ]  # fmt: skip
        weather = [r.asDict() for r in accepted.drop("value_issues").collect()]
        with serving.write_lock(settings):
            mongo.replace_docs(db[serving.WEATHER_HOURLY], weather)
            serving.write_rejects(db, rejects + issues)
            dates = serving.set_flight_weather(db, weather)
            kpis = serving.recompute_kpis(spark, settings, dates, routes=False)
        totals = ingest.commit_all(lz, batch.good, ingest.file_counts(cleaned))
        newest = max((w["hour_utc"] for w in weather), default=None)
        cleaned.unpersist()
        log.info("weather_hourly.kpis", docs=kpis)
    ingest.settle_deferred(lz, batch)
    result = {**batch.summary(), **totals, "seconds": round(time.monotonic() - t0, 2)}
    serving.set_state(db, JOB, newest, last_run=result)
    log.info("weather_hourly.done", **result)
    return result
