"""Recompute local dates in the lake: lake tables in, lake tables out (no MongoDB here).

:func:`flights_of` rebuilds the clean flights of some dates from *all* their raw events
(``flight_state.flight_updates``: order-independent), enriched with the clean reference and
weather tables; :func:`kpis_of` derives every KPI table of them (pure); :func:`write` overwrites
the lake's partitions of those dates (``clean/flights`` and the daily KPI tables side by side)
and the route-months of their months. Every write replaces whole partitions, so running it again
gives the same lake. ``serving/publish.refresh`` wires these steps with the MongoDB writes and
the retry on a commit conflict or moved inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pipelines.core.domain import days_of_month
from pipelines.lake import tables
from pipelines.transform import flight_state, kpis

WEATHER_SCHEMA = ("origin string, hour_utc timestamp, temp_c double, visib_km double, "
                  "wind_speed_kmh double, precip_mm double, visib_band string, "
                  "wind_band string, precip boolean, day string")  # fmt: skip
REFERENCE_SCHEMAS = {
    "airlines": "_id string, name string",
    "airports": "_id string, name string, lat double, lon double",
    "planes": "_id string, year int",
}
# the tables a recompute reads: one moving while it runs makes it run again
INPUTS = (tables.FLIGHT_EVENTS, tables.WEATHER, *tables.REFERENCE.values())


def reference_frames(lake: tables.Lake) -> tuple[DataFrame, ...]:
    """airlines, airports, planes from the lake (empty, typed, before the first snapshot),
    cached by the lake until one of the tables gets a new version (a real-time batch then
    reads none)."""

    def build() -> list[DataFrame]:
        return [reference_table(lake, name) for name in REFERENCE_SCHEMAS]

    return lake.cached("reference", tables.REFERENCE.values(), build)


def reference_table(lake: tables.Lake, name: str) -> DataFrame:
    """``clean/<name>`` with the columns of :data:`REFERENCE_SCHEMAS` (empty, typed, before the
    first snapshot): what the lake path and the live board's enrichment join."""
    schema = REFERENCE_SCHEMAS[name]
    return lake.read(tables.REFERENCE[name], schema).select(
        *[c.split()[0] for c in schema.split(", ")]
    )


def weather_days(dates: Iterable[str]) -> list[str]:
    """UTC days holding the hours of the New York ``dates`` (a local day spans two)."""
    days = set()
    for d in dates:
        day = date.fromisoformat(d)
        days.update({day.isoformat(), (day + timedelta(days=1)).isoformat()})
    return sorted(days)


def weather_of(lake: tables.Lake, dates: Iterable[str]) -> DataFrame:
    """The clean weather hours of the New York ``dates``."""
    return lake.read_where(tables.WEATHER, "day", weather_days(dates), WEATHER_SCHEMA)


def flights_of(lake: tables.Lake, dates: list[str]) -> DataFrame:
    """The clean flights of ``dates``, recomputed from every raw event of those dates."""
    events = lake.read_where(tables.FLIGHT_EVENTS, "date", dates)
    weather = flight_state.flight_weather(weather_of(lake, dates))
    updates = flight_state.flight_updates(events)
    return flight_state.enrich(updates, *reference_frames(lake), weather)


@dataclass(frozen=True)
class Kpis:
    """The KPI tables of some dates, derived from their clean flights (persisted: each feeds a
    lake write and a MongoDB write)."""

    dates: list[str]
    hourly: DataFrame
    carriers: DataFrame
    weather: DataFrame
    routes: DataFrame

    @property
    def months(self) -> list[str]:
        return sorted({d[:7] for d in self.dates})

    def unpersist(self) -> None:
        for frame in (self.hourly, self.carriers, self.weather):
            frame.unpersist()


def kpis_of(flights: DataFrame, dates: list[str], computed_at: datetime) -> Kpis:
    """Every daily KPI table of ``flights`` (the clean flights of ``dates``); ``kpi_hourly``
    rows carry ``computed_at`` as ``updated_at`` (taken before the raw events were read: see
    :func:`pending_dates`)."""
    return Kpis(
        dates=dates,
        hourly=kpis.kpi_hourly(flights).withColumn("updated_at", F.lit(computed_at)).persist(),
        carriers=kpis.kpi_carrier_daily(flights).persist(),
        weather=kpis.kpi_weather_daily(flights).persist(),
        routes=kpis.kpi_route_daily(flights),
    )


def write(lake: tables.Lake, flights: DataFrame, kpi: Kpis) -> DataFrame:
    """Overwrite the lake partitions of the dates (``clean/flights`` and the daily KPI tables,
    their Spark jobs and Delta commits side by side), then the route-months of their months
    from every route-day of those months. Returns the route-months written (checkpointed)."""
    dates, months = kpi.dates, kpi.months
    in_parallel(
        *[lambda f=frame, t=table: lake.overwrite(f, t, dates)
          for frame, table in ((flights, tables.FLIGHTS), (kpi.hourly, tables.KPI_HOURLY),
                               (kpi.carriers, tables.KPI_CARRIER_DAILY),
                               (kpi.weather, tables.KPI_WEATHER_DAILY),
                               (kpi.routes, tables.KPI_ROUTE_DAILY))]
    )  # fmt: skip
    month_days = [d for m in months for d in days_of_month(m)]
    monthly = kpis.kpi_route_monthly(
        lake.read_where(tables.KPI_ROUTE_DAILY, "date", month_days)
    ).localCheckpoint()
    lake.overwrite(monthly, tables.KPI_ROUTE_MONTHLY, months)
    return monthly


def pending_dates(lake: tables.Lake) -> list[str]:
    """Local dates whose raw events were ingested after their KPIs were last computed (or
    never computed): what a stream that died between its fast path and its refresh left."""
    if not lake.exists(tables.FLIGHT_EVENTS):
        return []
    raw = (
        lake.read(tables.FLIGHT_EVENTS).groupBy("date").agg(F.max("ingested_at").alias("ingested"))
    )
    if not lake.exists(tables.KPI_HOURLY):
        return [r.date for r in raw.select("date").collect()]
    done = lake.read(tables.KPI_HOURLY).groupBy("date").agg(F.max("updated_at").alias("computed"))
    stale = raw.join(done, "date", "left").where(
        F.col("computed").isNull() | (F.col("ingested") > F.col("computed"))
    )
    return sorted(r.date for r in stale.select("date").collect())


def in_parallel(*steps: Callable[[], object]) -> None:
    """Run independent Spark actions from threads (Spark schedules their jobs side by side);
    the first failure is raised once all have ended."""
    with ThreadPoolExecutor(max_workers=len(steps)) as pool:
        futures = [pool.submit(step) for step in steps]
    for future in futures:
        future.result()
