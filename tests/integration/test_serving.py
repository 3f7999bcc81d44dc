"""The serving documents as Spark shapes them (pure DataFrame -> DataFrame, no MongoDB)."""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import Row

from pipelines.core.domain import MEASURES
from pipelines.serving import documents, readmodels
from pipelines.serving.sinks import strip_nulls
from pipelines.transform import kpis

HOUR = datetime(2013, 1, 1, 10)


def _flight(key: str, minute: int, **extra) -> Row:
    fields = dict.fromkeys(readmodels.FLIGHT_FIELDS)
    fields.update(flight_key=key, sched_dep_utc=HOUR.replace(minute=minute), carrier="UA",
                  status_rank=2, status="departed", cancelled=False, weather=None)  # fmt: skip
    fields.update(extra)
    return Row(origin="EWR", sched_hour_utc=HOUR, date="2013-01-01", **fields)


def test_a_bucket_holds_its_hour_sorted_by_departure_then_key(spark) -> None:
    schema = "origin string, sched_hour_utc timestamp, date string, " + ", ".join(
        f"{c} {'timestamp' if c.endswith('_utc') or c == 'last_event_time' else 'string'}"
        for c in readmodels.FLIGHT_FIELDS
    )
    schema = schema.replace("status_rank string", "status_rank int").replace(
        "cancelled string", "cancelled boolean").replace(
        "weather string", "weather struct<visib_band:string>")  # fmt: skip
    rows = [_flight("b", 30), _flight("a", 30), _flight("c", 5)]
    doc = documents.board_docs(spark.createDataFrame(rows, schema)).collect()[0]
    assert doc["_id"] == "EWR|2013-01-01T10:00Z" and doc["n"] == 3
    assert [f["flight_key"] for f in doc["flights"]] == ["c", "a", "b"]
    plain = strip_nulls(doc.asDict(recursive=True))
    assert "weather" not in plain["flights"][0] and "tailnum" not in plain["flights"][0]


def test_a_day_without_known_weather_has_an_empty_weather_array(spark) -> None:
    flights = spark.createDataFrame([
        Row(origin="EWR", sched_hour_utc=HOUR, date="2013-01-01", local_hour=5, weekday=2,
            carrier="UA", carrier_name="United", dep_time_utc=HOUR, dep_delay=3, arr_delay=1,
            status_rank=3, visib_band=None, wind_band=None, precip=None)
    ], "origin string, sched_hour_utc timestamp, date string, local_hour int, weekday int, "
       "carrier string, carrier_name string, dep_time_utc timestamp, dep_delay long, "
       "arr_delay long, status_rank int, visib_band string, wind_band string, "
       "precip boolean")  # fmt: skip
    from pyspark.sql import functions as F

    hourly = kpis.kpi_hourly(flights).withColumn("updated_at", F.lit(HOUR))
    doc = documents.daily_docs(
        hourly, kpis.kpi_carrier_daily(flights), kpis.kpi_weather_daily(flights)
    ).collect()[0]
    assert doc["_id"] == "2013-01-01" and doc["month"] == "2013-01" and doc["weather"] == []
    assert doc["flights"] == 1 and [h["flights"] for h in doc["hours"]] == [1]
    assert set(MEASURES) <= set(doc["carriers"][0].asDict())


def test_a_reject_has_the_same_id_on_every_run(spark) -> None:
    frame = spark.createDataFrame(
        [("flights_stream", "bad", "t:0:1", "row", "x" * 900, HOUR)],
        "source string, reason string, where string, kind string, excerpt string, at timestamp",
    )
    first, again = (documents.reject_docs(frame).collect()[0] for _ in range(2))
    assert first["_id"] == again["_id"] and len(first["_id"]) == 24
    assert len(first["excerpt"]) == 500


def test_strip_nulls_keeps_falsy_values() -> None:
    assert strip_nulls({"a": None, "b": 0, "c": [{"d": None, "e": False}]}) == {
        "b": 0, "c": [{"e": False}]}  # fmt: skip


def test_the_serving_horizon_keeps_the_hours_around_the_newest_event(spark) -> None:
    frame = spark.createDataFrame(
        [(datetime(2013, 1, d, 10),) for d in (1, 2, 3)], "sched_hour_utc timestamp"
    )
    newest = datetime(2013, 1, 3, 12)
    kept = documents.within_horizon(frame, "sched_hour_utc", newest, 48).collect()
    assert [r[0].day for r in kept] == [2, 3]
    assert documents.within_horizon(frame, "sched_hour_utc", newest, None).count() == 3
    assert documents.within_horizon(frame, "sched_hour_utc", None, 48).count() == 3
