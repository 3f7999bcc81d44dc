"""Recompute what a job touched, from the lake, and publish it: the heart of every job.

:func:`refresh` takes the local dates a job touched (a small key set on the driver) and, all on
the executors:

1. rebuilds ``clean/flights`` of those dates from *all* their raw events
   (``flight_state.flight_updates``: order-independent), enriched with the clean reference and
   weather tables;
2. writes the ``flights_by_hour`` buckets of the touched hours to MongoDB (first: the live
   board is what a duty manager watches), whole (the hot path writes the same buckets seconds
   after an event in ``flights_by_hour_hot``, under the same ``_id``, and an hour's row is
   derived from its bucket when read; ``readmodels.resolve`` shows the one that knows more);
3. overwrites the lake's ``clean/flights`` and KPI partitions of those dates, and the
   route-months of their months;
4. writes the ``kpi_hourly`` rows and ``kpi_daily`` documents of the dates, the
   ``kpi_route_monthly`` documents of the months and the ``kpi_profile`` document.

Every write replaces whole partitions or whole documents, so running it again gives the same
state. Two jobs may refresh the same date at once (late weather re-enriches flights): a Delta
commit conflict redoes the step (``tables.retrying``), and a refresh whose *inputs* moved while it
ran (new events, weather or reference data committed meanwhile: their Delta versions changed) is
redone from the newer data, so the last writer of a date always used the latest inputs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta

import structlog
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipelines.core.config import Settings
from pipelines.lake import tables
from pipelines.serving import documents, risk, sinks
from pipelines.serving.readmodels import (
    BOARD,
    KPI_DAILY,
    KPI_HOURLY,
    KPI_PROFILE,
    KPI_ROUTE_MONTHLY,
    REJECTS,
    days_of_month,
)
from pipelines.transform import flight_state, kpis

log = structlog.get_logger(__name__)

WEATHER_SCHEMA = ("origin string, hour_utc timestamp, temp_c double, visib_km double, "
                  "wind_speed_kmh double, precip_mm double, visib_band string, "
                  "wind_band string, precip boolean, day string")  # fmt: skip
REFERENCE_SCHEMAS = {
    "airlines": "_id string, name string",
    "airports": "_id string, name string, lat double, lon double",
    "planes": "_id string, year int",
}
INPUTS = (tables.FLIGHT_EVENTS, tables.WEATHER, *tables.REFERENCE.values())


_REFERENCE: dict[tuple[object, ...], tuple[DataFrame, ...]] = {}


def reference_frames(spark: SparkSession, settings: Settings) -> tuple[DataFrame, ...]:
    """airlines, airports, planes from the lake (empty, typed, before the first snapshot),
    cached until one of the tables gets a new version (a real-time batch then reads none)."""
    key = (settings.lake_root, versions(spark, settings, tuple(tables.REFERENCE.values())))
    if key not in _REFERENCE:
        for old in [k for k in _REFERENCE if k[0] == settings.lake_root]:
            for frame in _REFERENCE.pop(old):
                frame.unpersist()
        frames = []
        for name, schema in REFERENCE_SCHEMAS.items():
            columns = [c.split()[0] for c in schema.split(", ")]
            table = tables.read(spark, settings, tables.REFERENCE[name], schema).select(*columns)
            frames.append(table.cache())
        _REFERENCE[key] = tuple(frames)
    return _REFERENCE[key]


def weather_days(dates: Iterable[str]) -> list[str]:
    """UTC days holding the hours of the New York ``dates`` (a local day spans two)."""
    days = set()
    for d in dates:
        day = date.fromisoformat(d)
        days.update({day.isoformat(), (day + timedelta(days=1)).isoformat()})
    return sorted(days)


def flights_of(spark: SparkSession, settings: Settings, dates: list[str]) -> DataFrame:
    """The clean flights of ``dates``, recomputed from every raw event of those dates."""
    events = tables.read_where(spark, settings, tables.FLIGHT_EVENTS, "date", dates)
    weather = tables.read_where(spark, settings, tables.WEATHER, "day", weather_days(dates),
                              WEATHER_SCHEMA)  # fmt: skip
    updates = flight_state.flight_updates(events)
    return flight_state.enrich(updates, *reference_frames(spark, settings),
                            documents.flight_weather(weather))  # fmt: skip


def refresh(
    spark: SparkSession,
    settings: Settings,
    dates: Iterable[str],
    hours: DataFrame | None = None,
    newest: datetime | None = None,
    board: bool = True,
    inputs: tuple[tables.Table, ...] = INPUTS,
    profile: bool = True,
    attempts: int = 5,
) -> dict[str, float]:
    """Recompute and publish the local ``dates``: clean flights, KPI tables, their MongoDB
    documents and the profile. ``board``: also rewrite the ``flights_by_hour`` buckets of
    ``hours`` (None = every hour of the dates) up to the serving horizon ending at ``newest``
    (None = the newest event of the dates). ``inputs``: the tables whose moving during the
    refresh makes it run again. ``profile``: also recompute ``kpi_profile`` (the dashboard's
    index of changed days: keep it with every KPI write). Returns step timings."""
    dates = sorted(set(dates))
    if not dates or not tables.exists(spark, settings, tables.FLIGHT_EVENTS):
        return {}
    steps: dict[str, float] = {}
    for attempt in range(1, attempts + 1):
        seen = versions(spark, settings, inputs)
        tables.retrying(
            lambda: _refresh(
                spark, settings, dates, hours if board else False, newest, profile, steps
            ),
            "refresh",
        )
        if versions(spark, settings, inputs) == seen:
            break
        log.info("publish.inputs_moved", attempt=attempt, dates=len(dates))
    return steps


def versions(
    spark: SparkSession, settings: Settings, which: tuple[tables.Table, ...] = INPUTS
) -> tuple[int, ...]:
    return tuple(tables.version(spark, settings, t) for t in which)


def pending_dates(spark: SparkSession, settings: Settings) -> list[str]:
    """Local dates whose raw events were ingested after their KPIs were last computed (or
    never computed): what a stream that died between its fast path and its refresh left."""
    if not tables.exists(spark, settings, tables.FLIGHT_EVENTS):
        return []
    raw = (
        tables.read(spark, settings, tables.FLIGHT_EVENTS)
        .groupBy("date")
        .agg(F.max("ingested_at").alias("ingested"))
    )
    if not tables.exists(spark, settings, tables.KPI_HOURLY):
        return [r.date for r in raw.select("date").collect()]
    done = (
        tables.read(spark, settings, tables.KPI_HOURLY)
        .groupBy("date")
        .agg(F.max("updated_at").alias("computed"))
    )
    stale = raw.join(done, "date", "left").where(
        F.col("computed").isNull() | (F.col("ingested") > F.col("computed"))
    )
    return sorted(r.date for r in stale.select("date").collect())


def _refresh(
    spark: SparkSession,
    settings: Settings,
    dates: list[str],
    hours: DataFrame | None | bool,
    newest: datetime | None,
    profile: bool,
    steps: dict[str, float],
) -> None:
    clock = _Clock(steps)
    now = datetime.now(UTC).replace(tzinfo=None)  # before reading: see pending_dates
    flights = flights_of(spark, settings, dates).persist()
    if hours is not False:
        with clock("board"):
            touched = flights if hours is None else flights.join(
                F.broadcast(hours), ["origin", "sched_hour_utc"], "left_semi")  # fmt: skip
            horizon = settings.serving.board_hours
            if horizon is not None and newest is None:
                newest = flights.agg(F.max("last_event_time")).first()[0]
            touched = documents.within_horizon(touched, "sched_hour_utc", newest, horizon)
            days = weather_days(dates)  # the weather is read only when a model exists
            touched = risk.with_risk(spark, settings, touched, flights, lambda: tables.read_where(
                spark, settings, tables.WEATHER, "day", days, WEATHER_SCHEMA))  # fmt: skip
            sinks.write(documents.board_docs(touched), settings, BOARD)
    hourly = kpis.kpi_hourly(flights).withColumn("updated_at", F.lit(now)).persist()
    carriers = kpis.kpi_carrier_daily(flights).persist()
    weather = kpis.kpi_weather_daily(flights).persist()
    routes = kpis.kpi_route_daily(flights)
    months = sorted({d[:7] for d in dates})
    month_days = [d for m in months for d in days_of_month(m)]
    with clock("lake"):
        # independent tables: their Spark jobs and Delta commits run side by side
        in_parallel(
            *[lambda f=frame, t=table: tables.overwrite(f, settings, t, dates)
              for frame, table in ((flights, tables.FLIGHTS), (hourly, tables.KPI_HOURLY),
                                   (carriers, tables.KPI_CARRIER_DAILY),
                                   (weather, tables.KPI_WEATHER_DAILY),
                                   (routes, tables.KPI_ROUTE_DAILY))]
        )  # fmt: skip
        monthly = kpis.kpi_route_monthly(
            tables.read_where(spark, settings, tables.KPI_ROUTE_DAILY, "date", month_days)
        ).localCheckpoint()
        tables.overwrite(monthly, settings, tables.KPI_ROUTE_MONTHLY, months)
    with clock("kpi_docs"):
        in_parallel(
            lambda: sinks.write(documents.daily_docs(hourly, carriers, weather), settings,
                                KPI_DAILY),
            lambda: sinks.write(documents.hourly_docs(hourly, documents.bucket_versions(flights)),
                                settings, KPI_HOURLY),
            lambda: sinks.write(documents.route_month_docs(monthly), settings, KPI_ROUTE_MONTHLY),
            *([lambda: publish_profile(spark, settings)] if profile else []),
        )  # fmt: skip
    for frame in (flights, hourly, carriers, weather):
        frame.unpersist()


def in_parallel(*steps: Callable[[], object]) -> None:
    """Run independent Spark actions from threads (Spark schedules their jobs side by side);
    the first failure is raised once all have ended."""
    with ThreadPoolExecutor(max_workers=len(steps)) as pool:
        futures = [pool.submit(step) for step in steps]
    for future in futures:
        future.result()


def publish_profile(spark: SparkSession, settings: Settings) -> None:
    """Recompute the ``kpi_profile`` document from the lake's KPI tables (every loaded day)."""
    hourly = tables.read(spark, settings, tables.KPI_HOURLY)
    doc = documents.profile_doc(
        hourly.groupBy("date").agg(
            F.first("weekday").alias("weekday"),
            F.sum("flights").cast("long").alias("flights"),
            F.max("updated_at").alias("updated_at"),
        ),
        kpis.profile_weekday_hour(hourly),
        kpis.profile_carrier_weekday(tables.read(spark, settings, tables.KPI_CARRIER_DAILY)),
        kpis.profile_weather(tables.read(spark, settings, tables.KPI_WEATHER_DAILY)),
    )
    sinks.write(doc, settings, KPI_PROFILE)


def publish_rejects(
    settings: Settings, rejects: DataFrame, txn: tuple[str, int] | None = None
) -> None:
    """The one writer of refused records, for every job: reject rows (``transform/rejects``)
    appended to ``raw/rejects`` (exactly once with ``txn``, Delta's application id and version)
    and written to the ``rejects`` collection by ``_id`` (``documents.reject_docs``)."""
    tables.append(rejects, settings, tables.REJECTS, txn=txn)
    sinks.write(documents.reject_docs(rejects), settings, REJECTS)


class _Clock:
    """``with clock("step"):`` adds the step's wall time to ``steps``."""

    def __init__(self, steps: dict[str, float]) -> None:
        self.steps = steps
        self.name = ""
        self.t0 = 0.0

    def __call__(self, name: str) -> _Clock:
        self.name = name
        return self

    def __enter__(self) -> None:
        self.t0 = time.monotonic()

    def __exit__(self, *exc: object) -> None:
        self.steps[self.name] = self.steps.get(self.name, 0.0) + time.monotonic() - self.t0
