"""KPI measures: additive counts and sums per hour, carrier, route and weather band; the
whole-period profile."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from pipelines.core.domain import (
    MEASURES,
    STATUS_RANK,
)


def measures() -> list[Column]:
    """The additive measures of ``docs/data-model.md`` over flight documents."""
    departed = F.col("dep_time_utc").isNotNull()
    return [
        F.count(F.lit(1)).alias("flights"),
        F.count(F.when(departed, 1)).alias("departed"),
        F.count(F.when(F.col("status_rank") == STATUS_RANK["cancelled"], 1)).alias("cancelled"),
        F.count(F.when(departed & (F.col("dep_delay") <= 15), 1)).alias("on_time"),
        F.count(F.when(departed & (F.col("dep_delay") > 60), 1)).alias("delayed_60"),
        F.coalesce(F.sum("dep_delay"), F.lit(0)).cast("long").alias("dep_delay_sum"),
        F.count("dep_delay").alias("dep_delay_n"),
        F.coalesce(F.sum("arr_delay"), F.lit(0)).cast("long").alias("arr_delay_sum"),
        F.count("arr_delay").alias("arr_delay_n"),
    ]


def kpi_hourly(flights: DataFrame) -> DataFrame:
    """Measures per (origin, scheduled departure hour UTC), with its local date and hour."""
    return flights.groupBy("origin", "sched_hour_utc").agg(
        F.first("date").alias("date"),
        F.first("local_hour").alias("local_hour"),
        F.first("weekday").alias("weekday"),
        *measures(),
    ).select(
        "origin", F.col("sched_hour_utc").alias("hour_utc"), "date", "local_hour", "weekday",
        *MEASURES,
    )  # fmt: skip


def kpi_carrier_daily(flights: DataFrame) -> DataFrame:
    """Measures per (carrier, origin, local date)."""
    return flights.groupBy("carrier", "origin", "date").agg(
        F.first("carrier_name", ignorenulls=True).alias("carrier_name"),
        F.first("weekday").alias("weekday"),
        *measures(),
    ).select("carrier", "carrier_name", "origin", "date", "weekday", *MEASURES)  # fmt: skip


def kpi_route_daily(flights: DataFrame) -> DataFrame:
    """Measures per (origin, destination, local date): the additive partials that
    ``kpi_route_monthly`` rolls up into months."""
    return flights.groupBy("origin", "dest", "date").agg(
        F.first("month").alias("month"),
        F.first("dest_name", ignorenulls=True).alias("dest_name"),
        F.first("dest_lat", ignorenulls=True).alias("dest_lat"),
        F.first("dest_lon", ignorenulls=True).alias("dest_lon"),
        *measures(),
    ).select(
        "origin", "dest", "date", "month", "dest_name", "dest_lat", "dest_lon", *MEASURES,
    )  # fmt: skip


def kpi_route_monthly(daily: DataFrame) -> DataFrame:
    """Route-daily partials summed per (origin, destination, month)."""
    return (
        daily.groupBy("origin", "dest", "month")
        .agg(
            F.first("dest_name", ignorenulls=True).alias("dest_name"),
            F.first("dest_lat", ignorenulls=True).alias("dest_lat"),
            F.first("dest_lon", ignorenulls=True).alias("dest_lon"),
            *[F.sum(m).cast("long").alias(m) for m in MEASURES],
        )
        .select("origin", "dest", "month", "dest_name", "dest_lat", "dest_lon", *MEASURES)
    )


def kpi_weather_daily(flights: DataFrame) -> DataFrame:
    """Measures per (origin, local date, visibility band, precipitation, wind band); only the
    flights whose weather is known (``weather`` struct, or flat ``visib_band`` ... columns)."""
    if "weather" in flights.columns:
        flights = flights.select(
            "*", *[F.col(f"weather.{c}").alias(c) for c in ("visib_band", "wind_band", "precip")]
        ).drop("weather")
    known = flights.where(F.col("visib_band").isNotNull())
    return known.groupBy(
        "origin", "date", "visib_band",
        F.coalesce(F.col("precip"), F.lit(False)).alias("precip"),
        F.coalesce(F.col("wind_band"), F.lit("unknown")).alias("wind_band"),
    ).agg(*measures()).select(
        "origin", "date", "visib_band", "precip", "wind_band", *MEASURES,
    )  # fmt: skip


# ------------------------------------------------------------------- whole-period profile
def _summed(frame: DataFrame, keys: list[str], *extra: Column) -> DataFrame:
    return frame.groupBy(*keys).agg(*extra, *[F.sum(m).cast("long").alias(m) for m in MEASURES])


def profile_weekday_hour(hourly: DataFrame) -> DataFrame:
    """Every loaded day's hourly KPIs summed per (origin, ISO weekday, local hour)."""
    return _summed(hourly, ["origin", "weekday", "local_hour"])


def profile_carrier_weekday(carrier_daily: DataFrame) -> DataFrame:
    """Every loaded day's carrier KPIs summed per (carrier, origin, ISO weekday)."""
    return _summed(carrier_daily, ["carrier", "origin", "weekday"],
                   F.first("carrier_name", ignorenulls=True).alias("carrier_name"))  # fmt: skip


def profile_weather(weather_daily: DataFrame) -> DataFrame:
    """Every loaded day's weather impact summed per (origin, bands)."""
    return _summed(weather_daily, ["origin", "visib_band", "precip", "wind_band"])
