"""Flight events to flight state: parsing, the order-independent merge, enrichment."""

from __future__ import annotations

from functools import reduce

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipelines.core.domain import (
    EVENT_TYPES,
    LOCAL_TZ,
    ORIGINS,
    SCHEMA_VERSION,
    STATUS_NAME,
    STATUS_RANK,
    WEATHER_FIELDS,
)
from pipelines.transform.columns import reasons, utc

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
        (utc(F.col("e.event_time")).isNull(),
         F.format_string("event_time '%s' is not an ISO-8601 UTC time", F.col("e.event_time"))),
        (utc(F.col("e.sched_dep_utc")).isNull(), "sched_dep_utc is missing or not a time"),
        (F.coalesce(F.col("e.schema_version"), F.lit(-1)) != SCHEMA_VERSION,
         F.format_string("schema_version %s is not %d", F.col("e.schema_version"),
                         F.lit(SCHEMA_VERSION))),
        ((et == "departed") & utc(F.col("e.dep_time_utc")).isNull(),
         "departed event without dep_time_utc"),
        ((et == "arrived") & utc(F.col("e.arr_time_utc")).isNull(),
         "arrived event without arr_time_utc"),
    ]  # fmt: skip
    dep_known = et.isin("departed", "arrived")
    return df.select(
        "raw", "kafka_topic", "kafka_partition", "kafka_offset", "kafka_timestamp",
        F.col("e.event_id").alias("event_id"),
        et.alias("event_type"),
        utc(F.col("e.event_time")).alias("event_time"),
        F.col("e.flight_key").alias("flight_key"),
        # the local date of the scheduled departure (the raw log's partition), derived
        F.date_format(F.from_utc_timestamp(utc(F.col("e.sched_dep_utc")), LOCAL_TZ),
                      "yyyy-MM-dd").alias("date"),
        F.col("e.carrier").alias("carrier"),
        F.col("e.flight").alias("flight"),
        F.col("e.tailnum").alias("tailnum"),
        F.col("e.origin").alias("origin"),
        F.col("e.dest").alias("dest"),
        F.col("e.distance").alias("distance"),
        F.col("e.dest_known").alias("dest_known"),
        utc(F.col("e.sched_dep_utc")).alias("sched_dep_utc"),
        utc(F.col("e.sched_arr_utc")).alias("sched_arr_utc"),
        F.when(dep_known, utc(F.col("e.dep_time_utc"))).alias("dep_time_utc"),
        F.when(dep_known, F.col("e.dep_delay")).alias("dep_delay"),
        F.when(et == "arrived", utc(F.col("e.arr_time_utc"))).alias("arr_time_utc"),
        F.when(et == "arrived", F.col("e.arr_delay")).alias("arr_delay"),
        F.when(et == "arrived", F.col("e.air_time")).alias("air_time"),
        utc(F.col("e.produced_at")).alias("produced_at"),
        reasons(*checks).alias("reject_reason"),
    )  # fmt: skip


# what a flight's events say of it: static fields (the same in every event of the flight: the
# first non-null wins), actual times (known from one event on: the largest known wins), and the
# progress (the highest status rank, the newest event time)
STATIC_FIELDS = ("date", "carrier", "flight", "tailnum", "origin", "dest", "distance",
                 "dest_known", "sched_dep_utc", "sched_arr_utc")  # fmt: skip
ACTUAL_FIELDS = ("dep_time_utc", "dep_delay", "arr_time_utc", "arr_delay", "air_time")
MERGED_FIELDS = ("flight_key", *STATIC_FIELDS, *ACTUAL_FIELDS, "status_rank", "last_event_time")


def with_rank(events: DataFrame) -> DataFrame:
    """``events`` with ``status_rank``: the rank of what each event says (``STATUS_RANK``)."""
    rank = reduce(
        lambda acc, kv: acc.when(F.col("event_type") == kv[0], kv[1]),
        STATUS_RANK.items(),
        F.when(F.lit(False), 0),
    )
    return events.withColumn("status_rank", rank)


def merge_events(events: DataFrame) -> DataFrame:
    """Accepted events -> one row per flight (``flight_key``) of :data:`MERGED_FIELDS`.

    Order-independent (a semilattice join): static fields are the first non-null value (the
    same in every event of a flight), actual times come from the event that knows them (the
    largest known), ``status_rank`` is the highest rank seen, so any permutation, duplication
    or split of the same events gives the same row, and a field once known is never erased.
    :func:`merge_row` is the same join, row by row, in plain Python."""
    return (
        with_rank(events)
        .groupBy("flight_key")
        .agg(
            *[F.first(c, ignorenulls=True).alias(c) for c in STATIC_FIELDS],
            *[F.max(c).alias(c) for c in ACTUAL_FIELDS],
            F.max("status_rank").alias("status_rank"),
            F.max("event_time").alias("last_event_time"),
        )
    )


def merge_row(current: dict | None, event: dict) -> dict:
    """:func:`merge_events` for one more event (a dict with ``status_rank`` and
    ``event_time``) on a flight's merged row (``current``, None for a new flight): the same
    join in plain Python: the specification the live board's ``$max`` fold
    (``jobs/flights_board.fold``) is tested against (``tests/unit/test_hot_merge.py``)."""
    if current is None:
        current = dict.fromkeys(MERGED_FIELDS)
        current["flight_key"] = event["flight_key"]
    merged = dict(current)
    for c in STATIC_FIELDS:
        if merged[c] is None:
            merged[c] = event.get(c)
    for c in (*ACTUAL_FIELDS, "status_rank"):
        merged[c] = known_max(merged[c], event.get(c))
    merged["last_event_time"] = known_max(merged["last_event_time"], event.get("event_time"))
    return merged


def known_max(a, b):  # noqa: ANN001, ANN201 - any comparable value; None is unknown
    """The larger of two values of a field, an unknown one (None) giving way: the join of
    :func:`merge_row`, and of the live board's ``$max`` (``jobs/flights_board.fold``)."""
    return b if a is None else a if b is None else max(a, b)


def derive(merged: DataFrame) -> DataFrame:
    """Merged flights (:data:`MERGED_FIELDS`) -> the clean flight's derived columns: status,
    cancelled, scheduled hour, month, ISO weekday, local hour."""
    status = reduce(
        lambda acc, kv: acc.when(F.col("status_rank") == kv[0], kv[1]),
        STATUS_NAME.items(),
        F.when(F.lit(False), ""),
    )
    local = F.from_utc_timestamp("sched_dep_utc", LOCAL_TZ)
    return (
        merged.withColumn("status", status)
        .withColumn("cancelled", F.col("status_rank") == STATUS_RANK["cancelled"])
        .withColumn("sched_hour_utc", F.date_trunc("hour", "sched_dep_utc"))
        .withColumn("month", F.substring("date", 1, 7))
        .withColumn("weekday", F.dayofweek(F.to_date("date")))
        .withColumn("weekday", ((F.col("weekday") + 5) % 7) + 1)  # ISO: Monday 1 .. Sunday 7
        .withColumn("local_hour", F.hour(local))
    )


def flight_updates(events: DataFrame) -> DataFrame:
    """Accepted events -> one row per flight: :func:`merge_events`, then :func:`derive`."""
    return derive(merge_events(events))


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


def flight_weather(weather: DataFrame) -> DataFrame:
    """Clean weather rows as ``flight_state.enrich`` joins them (origin, hour, the fields a flight
    carries)."""
    return weather.select("origin", "hour_utc", *WEATHER_FIELDS)
