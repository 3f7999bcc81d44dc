"""``weather_hourly``: hourly weather files from ``landing/weather/`` -> the lake -> MongoDB.

Values are cleaned into SI units (``cleaning.clean_weather``). The accepted rows are appended
to ``raw/weather``; ``clean/weather`` of the UTC days they fall on is recomputed (the newest
landed row of each origin-hour wins) and published to ``weather_hourly``; refused rows and
nulled values go to ``raw/rejects`` and ``rejects`` with their reasons. Weather that lands after
the flights of its hour reaches them: the local dates of its hours are refreshed from the raw
flight log (``publish.refresh``), flights and KPIs alike. Each file is committed in the landing
manifest only after all of that was written, with counts that reconcile: the rows Spark read
from each file are the rows its check counted (``ingest.set_aside``: a file that does not
reconcile is left out of the run, retried or quarantined, and the run fails once the others are
processed), and in = accepted + rejected.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import PurePosixPath
from typing import Any

import structlog
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from pipelines.clients.mongo import Mongo
from pipelines.core import faults
from pipelines.core.config import Settings
from pipelines.core.domain import LOCAL_TZ
from pipelines.jobs import file_job
from pipelines.jobs.file_job import FileRun
from pipelines.jobs.params import DailyParams
from pipelines.lake import tables
from pipelines.lake.tables import Lake
from pipelines.landing import ingest
from pipelines.landing.manifest import LandedFile
from pipelines.landing.zone import LandingZone
from pipelines.serving import documents, publish, sinks
from pipelines.serving.readmodels import WEATHER_HOURLY
from pipelines.transform import cleaning, rejects

log = structlog.get_logger(__name__)

JOB = "weather_hourly"
SOURCE = "weather"


def latest_per_hour(raw: DataFrame) -> DataFrame:
    """The newest landed row of each (origin, hour): a rewritten file replaces the old one."""
    newest = Window.partitionBy("origin", "hour_utc").orderBy(
        F.col("landed_at").desc(), F.col("source_file").desc()
    )
    return raw.withColumn("_n", F.row_number().over(newest)).where("_n = 1").drop("_n")


def run(settings: Settings, day: date | None = None) -> dict[str, Any]:
    """Process every pending weather file once (only those of ``day``, a UTC date, if given);
    return file and row counts (``file_job.run_file_job``: claim, quarantine, commit, state)."""
    pattern = f"weather_{day:%Y%m%d}T*.csv" if day else "*.csv"
    return file_job.run_file_job(settings, JOB, SOURCE, _header_of, pattern, process)


def process(run: FileRun) -> datetime | None:
    """The good files of a run: read together, cleaned, each file's rows reconciled with its
    check before anything is written (``run.set_aside``), then written downstream
    (:func:`_write`) and committed; return the newest hour (None: every file set aside)."""
    raw = ingest.read_csv(run.spark, run.files, cleaning.WEATHER_HEADER)
    keep = (ingest.RAW_LINE, ingest.CORRUPT)
    cleaned = ingest.with_malformed(cleaning.clean_weather(raw, keep)).persist()
    read = ingest.file_counts(cleaned)  # per file, before anything is written
    aside = run.set_aside(read)
    newest = None
    if run.files:
        newest = _write(run, aside.keep(cleaned), keep)
        run.commit(run.files, read)
    cleaned.unpersist()
    return newest


def _write(run: FileRun, cleaned: DataFrame, keep: tuple[str, ...]) -> datetime:
    """Write the rows of the run's files (``cleaned``) downstream: rejects, ``raw/weather`` (the
    rows a crashed attempt wrote replaced), ``clean/weather``, the refreshed flights and KPIs of
    their hours; return the newest hour."""
    lake, now = run.lake, run.now
    accepted = (
        cleaned.where(F.col("reject_reason").isNull())
        .drop("reject_reason", *keep)
        .withColumn("day", F.date_format("hour_utc", "yyyy-MM-dd"))
        .withColumn("landed_at", F.lit(now))
        .persist()
    )
    run.reject(
        rejects.line_rejects(cleaned, JOB, ["source_file", ingest.RAW_LINE], now).unionByName(
            rejects.value_rejects(accepted, JOB, now)
        )
    )
    days = [r.day for r in accepted.select("day").distinct().collect()]
    raw_rows = accepted.drop("_id", "value_issues")
    if days:  # rows of these files a crashed run appended are replaced, not doubled
        where = _landed_again(run.lz, run.files, days)
        lake.replace_where(raw_rows, tables.RAW_WEATHER, where)
    newest = accepted.agg(F.max("hour_utc")).first()[0]
    horizon = run.settings.serving.board_hours
    tables.retrying(lambda: clean_days(lake, run.store, days, newest, horizon), "clean weather")
    dates = [
        r.d for r in accepted.select(
            F.date_format(F.from_utc_timestamp("hour_utc", LOCAL_TZ), "yyyy-MM-dd").alias("d")
        ).distinct().collect()
    ]  # fmt: skip
    hours = accepted.select("origin", F.col("hour_utc").alias("sched_hour_utc")).distinct()
    steps = publish.refresh(
        lake, run.store, dates, publish.Board(hours), horizon=horizon, first=True
    )  # beside a live stream: see publish's module doc
    faults.point("weather.before_commit")  # tests: rows written, files not moved
    accepted.unpersist()
    log.info("weather_hourly.refreshed", dates=len(dates),
             seconds={k: round(v, 2) for k, v in steps.items()})  # fmt: skip
    return newest


def _header_of(file: LandedFile) -> list[str] | str:
    """The header of a weather file, or why its name is refused (quarantined)."""
    if cleaning.weather_file_hour(file.name) is None:
        return (f"file name {file.name!r} does not follow the landing convention "
                "weather_YYYYMMDDTHHZ.csv (the UTC hour of its rows)")  # fmt: skip
    return cleaning.WEATHER_HEADER


def _landed_again(lz: LandingZone, files: list[LandedFile], days: list[str]) -> str:
    """The raw rows of ``files`` no committed run wrote: a crashed run's (landed after the
    last commit of the same name), as a Delta predicate over ``days``."""
    names = {f.path.name for f in files}
    last: dict[str, str] = {}
    for row in lz.manifest.records(SOURCE):
        name = PurePosixPath(row["name"]).name
        if row["status"] == "processed" and name in names and row["finished_at"]:
            last[name] = max(last.get(name, ""), row["finished_at"])
    fresh = sorted(names - set(last))

    def quoted(values: list[str]) -> str:
        return ", ".join(f"'{v}'" for v in values)  # names passed WEATHER_FILE: no quotes

    parts = [f"source_file IN ({quoted(fresh)})"] if fresh else []
    for name, at in sorted(last.items()):
        stamp = datetime.fromisoformat(at).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        parts.append(f"(source_file = '{name}' AND landed_at > TIMESTAMP'{stamp}')")
    return f"day IN ({quoted(sorted(days))}) AND ({' OR '.join(parts)})"


def clean_days(
    lake: Lake, store: Mongo, days: list[str], newest: datetime, horizon: int | None
) -> None:
    """Recompute ``clean/weather`` of ``days`` from ``raw/weather`` and publish the hours of
    the serving horizon (``horizon`` hours up to ``newest``; None: all)."""
    clean = latest_per_hour(lake.read_where(tables.RAW_WEATHER, "day", days))
    clean = clean.drop("landed_at").persist()
    lake.overwrite(clean, tables.WEATHER, days)
    served = documents.within_horizon(clean, "hour_utc", newest, horizon)
    sinks.write(documents.weather_docs(served), store, WEATHER_HOURLY)
    clean.unpersist()


def main(settings: Settings, params: DailyParams) -> dict[str, Any]:
    """The registry's entry: :func:`run` of the files of ``params.date`` (all pending if None)."""
    return run(settings, params.date)
