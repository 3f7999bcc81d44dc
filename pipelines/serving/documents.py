"""The MongoDB serving documents of ``docs/data-model.md``, shaped by Spark.

Pure ``DataFrame -> DataFrame`` functions: each returns one row per document, with its
``_id``, typed columns and nested arrays of structs (the bucket pattern), ready for
:func:`pipelines.serving.sinks.write` to replace by ``_id`` from the executors. Arrays are sorted
(``sort_array`` over structs whose first fields are the sort keys), so the same lake content
always gives the same document.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from pipelines.core.domain import HOUR_KEY_SPARK, MEASURES
from pipelines.serving.readmodels import FLIGHT_FIELDS, PROFILE_ID, SCORE_FIELDS
from pipelines.transform.rejects import EXCERPT_CHARS

WEATHER_DOC_FIELDS = ("origin", "hour_utc", "temp_c", "dewp_c", "humid", "wind_dir",
                      "wind_speed_kmh", "wind_gust_kmh", "precip_mm", "pressure_hpa",
                      "visib_km", "visib_band", "wind_band", "precip", "source_file")  # fmt: skip


def hour_key(origin: str | Column, hour: str | Column) -> Column:
    """``ORIGIN|YYYY-MM-DDTHH:MMZ`` (``readmodels.hour_key`` in Spark)."""
    return F.concat_ws("|", F.col(origin) if isinstance(origin, str) else origin,
                       F.date_format(hour, HOUR_KEY_SPARK))  # fmt: skip


def _sorted(*fields: str | Column) -> Column:
    return F.sort_array(F.collect_list(F.struct(*fields)))


def within_horizon(
    frame: DataFrame, column: str, newest: datetime | None, hours: int | None
) -> DataFrame:
    """The rows of ``frame`` whose ``column`` (an hour) is at most ``hours`` before ``newest``
    (``hours`` None or ``newest`` unknown: every row)."""
    if hours is None or newest is None:
        return frame
    return frame.where(F.col(column) >= F.lit(newest - timedelta(hours=hours)))


def facts() -> Column:
    """What a clean flight row knows, as a number: its status rank plus its known fields
    (:data:`FLIGHT_FIELDS` not null, weather included). It only grows as events and enrichment
    arrive (the merge is monotone), so a bucket's sum of facts, its ``version``, tells which of
    two documents of the same bucket knows more: the hot path's or the lake path's."""
    known = [F.when(F.col(c).isNotNull(), 1).otherwise(0) for c in FLIGHT_FIELDS]
    return F.coalesce(F.col("status_rank"), F.lit(0)) + sum(known[1:], known[0])


def bucket_versions(flights: DataFrame) -> DataFrame:
    """(origin, hour_utc, version) of every board bucket of ``flights``."""
    return flights.groupBy("origin", F.col("sched_hour_utc").alias("hour_utc")).agg(
        F.sum(facts()).cast("long").alias("version")
    )


def board_docs(flights: DataFrame) -> DataFrame:
    """``flights_by_hour``: one document per (origin, scheduled hour UTC) of ``flights``
    (clean flights), holding every flight of that hour and the bucket's ``version``; a flight
    carries the :data:`~pipelines.serving.readmodels.SCORE_FIELDS` ``flights`` has (a model's
    ``delay_risk``: ``serving.risk``), which ``version`` does not count."""
    scores = [c for c in SCORE_FIELDS if c in flights.columns]
    return (
        flights.groupBy("origin", "sched_hour_utc")
        .agg(
            F.first("date").alias("date"),
            F.count(F.lit(1)).alias("n"),
            _sorted(*FLIGHT_FIELDS, *scores).alias("flights"),
            F.sum(facts()).cast("long").alias("version"),
        )
        .select(
            hour_key("origin", "sched_hour_utc").alias("_id"),
            "origin",
            F.col("sched_hour_utc").alias("hour_utc"),
            "date",
            F.col("n").cast("int").alias("n"),
            "flights",
            "version",
        )
    )


def hourly_docs(hourly: DataFrame, versions: DataFrame) -> DataFrame:
    """``kpi_hourly``: one document per (origin, scheduled hour UTC): the row of
    ``transform.kpis.kpi_hourly`` (``hourly``, with ``updated_at``) and its bucket's
    ``version`` (:func:`bucket_versions` of the same flights)."""
    return hourly.join(versions, ["origin", "hour_utc"], "left").select(
        hour_key("origin", "hour_utc").alias("_id"), "origin", "hour_utc", "date",
        F.col("local_hour").cast("int").alias("local_hour"),
        F.col("weekday").cast("int").alias("weekday"), *MEASURES, "version", "updated_at",
    )  # fmt: skip


def daily_docs(hourly: DataFrame, carriers: DataFrame, weather: DataFrame) -> DataFrame:
    """``kpi_daily``: one document per local date holding its hourly, carrier and weather
    KPI rows (the lake's serving tables of those dates; ``hourly`` carries ``updated_at``)."""
    hours = hourly.groupBy("date").agg(
        F.first("weekday").alias("weekday"),
        F.sum("flights").cast("long").alias("flights"),
        F.max("updated_at").alias("updated_at"),
        _sorted("origin", "hour_utc", "local_hour", *MEASURES).alias("hours"),
    )
    by_carrier = carriers.groupBy(F.col("date").alias("c_date")).agg(
        _sorted("carrier", "origin", "carrier_name", *MEASURES).alias("carriers")
    )
    by_weather = weather.groupBy(F.col("date").alias("w_date")).agg(
        _sorted("origin", "visib_band", "precip", "wind_band", *MEASURES).alias("weather")
    )

    def or_empty(frame: DataFrame, name: str) -> Column:
        kind = frame.schema[name].dataType.simpleString()
        return F.coalesce(F.col(name), F.array().cast(kind)).alias(name)

    return (
        hours.join(by_carrier, hours["date"] == by_carrier["c_date"], "left")
        .join(by_weather, hours["date"] == by_weather["w_date"], "left")
        .select(
            F.col("date").alias("_id"),
            "date",
            F.substring("date", 1, 7).alias("month"),
            F.col("weekday").cast("int").alias("weekday"),
            "flights",
            "hours",
            or_empty(by_carrier, "carriers"),
            or_empty(by_weather, "weather"),
            "updated_at",
        )
    )


def route_month_docs(route_monthly: DataFrame) -> DataFrame:
    """``kpi_route_monthly``: one document per month holding every route of that month."""
    return (
        route_monthly.groupBy("month")
        .agg(
            _sorted("origin", "dest", "dest_name", "dest_lat", "dest_lon", *MEASURES).alias(
                "routes"
            ),
            F.current_timestamp().alias("updated_at"),
        )
        .select(F.col("month").alias("_id"), "month", "routes", "updated_at")
    )


def profile_doc(
    days: DataFrame, weekday_hour: DataFrame, carrier_weekday: DataFrame, weather: DataFrame
) -> DataFrame:
    """``kpi_profile``: the one document of the whole loaded period (the inputs are the
    ``transform.kpis.profile_*`` frames; ``days`` carries ``updated_at``)."""
    parts = [
        days.agg(_sorted("date", "weekday", "flights", "updated_at").alias("days")),
        weekday_hour.agg(
            _sorted("origin", "weekday", "local_hour", *MEASURES).alias("weekday_hour")
        ),  # noqa: E501
        carrier_weekday.agg(
            _sorted("carrier", "origin", "weekday", "carrier_name", *MEASURES).alias(
                "carrier_weekday"
            )  # noqa: E501
        ),
        weather.agg(
            _sorted("origin", "visib_band", "precip", "wind_band", *MEASURES).alias("weather")
        ),
    ]
    doc = parts[0]
    for part in parts[1:]:
        doc = doc.crossJoin(part)
    return doc.select(
        F.lit(PROFILE_ID).alias("_id"), "*", F.current_timestamp().alias("updated_at")
    )


def weather_docs(weather: DataFrame) -> DataFrame:
    """``weather_hourly``: one document per (origin, hour UTC) of clean weather rows."""
    return weather.select(hour_key("origin", "hour_utc").alias("_id"), *WEATHER_DOC_FIELDS)


def reject_docs(rejects: DataFrame) -> DataFrame:
    """``rejects``: reject rows (``transform/rejects``) by ``_id`` = a hash of source + where +
    reason, so a rerun adds no copy."""
    return rejects.select(
        F.substring(F.sha1(F.concat_ws("|", "source", "where", "reason")), 1, 24).alias("_id"),
        "source", "reason", "where", "kind",
        F.substring(F.coalesce("excerpt", F.lit("")), 1, EXCERPT_CHARS).alias("excerpt"),
        "at",
    )  # fmt: skip
