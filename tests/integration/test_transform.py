"""Pure Spark transformations on small hand-made frames: the real data quirks, one by one."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from pyspark.sql import Row

from pipelines.transform import cleaning, flight_state, kpis

WEATHER_ROW = dict(
    origin="EWR", year="2013", month="1", day="1", hour="5", temp="39.02", dewp="26.06",
    humid="59.37", wind_dir="270", wind_speed="10.35702", wind_gust="NA", precip="0",
    pressure="1012", visib="10", time_hour="2013-01-01T10:00:00Z",
)  # fmt: skip


def weather(spark, **changes):
    rows = [dict(WEATHER_ROW, **c) for c in (changes.get("rows") or [{}])]
    return spark.createDataFrame([Row(**r) for r in rows])


def test_weather_na_values_become_nulls_and_units_are_si(spark) -> None:
    out = cleaning.clean_weather(weather(spark)).collect()[0]
    assert out.reject_reason is None
    assert out._id == "EWR|2013-01-01T10:00Z"
    assert out.hour_utc == datetime(2013, 1, 1, 10)
    assert out.temp_c == pytest.approx(3.9, abs=0.01)
    assert out.wind_speed_kmh == pytest.approx(16.67, abs=0.01)
    assert out.wind_gust_kmh is None  # NA
    assert out.visib_km == pytest.approx(16.09, abs=0.01)
    assert (out.visib_band, out.wind_band, out.precip) == ("10+ mi", "10-20 mph", False)


def test_weather_bad_values_are_refused_with_a_reason_not_a_crash(spark) -> None:
    """Spark 4 is ANSI: a plain cast of 'warm' would kill the job; here it is a reject."""
    rows = [{"temp": "warm"}, {"origin": "XXX"}, {"time_hour": "yesterday"}, {}]
    out = cleaning.clean_weather(weather(spark, rows=rows)).collect()
    reasons = [r.reject_reason for r in out]
    assert "temp is not a double: 'warm'" in reasons[0]
    assert "origin 'XXX' is not one of" in reasons[1]
    assert "time_hour 'yesterday'" in reasons[2]
    assert reasons[3] is None


def test_weather_impossible_wind_is_nulled_and_reported(spark) -> None:
    out = cleaning.clean_weather(weather(spark, rows=[{"wind_speed": "1048.36"}])).collect()[0]
    assert out.reject_reason is None
    assert out.wind_speed_kmh is None and out.wind_band is None
    assert "out of range" in out.value_issues


def test_reference_cleaning_keeps_na_as_null(spark) -> None:
    planes = spark.createDataFrame(
        [Row(tailnum="N10156", year="2004", type="Fixed wing multi engine", manufacturer="EMBRAER",
             model="EMB-145XR", engines="2", seats="55", speed="NA", engine="Turbo-fan"),
         Row(tailnum="NA", year="x", type="NA", manufacturer="NA", model="NA", engines="1",
             seats="1", speed="NA", engine="NA")]
    )  # fmt: skip
    ok, bad = cleaning.clean_planes(planes).collect()
    assert ok.speed is None and ok.year == 2004 and ok.reject_reason is None
    assert "tailnum is missing" in bad.reject_reason and "year is not a int" in bad.reject_reason


# ------------------------------------------------------------------------------------ events
def event(**over) -> dict:
    base = {
        "event_id": "a" * 20, "event_type": "departed", "event_time": "2013-01-01T10:17:00Z",
        "flight_key": "2013-01-01|UA|1545|EWR|0515", "date": "2013-01-01", "carrier": "UA",
        "flight": 1545, "tailnum": "N14228", "origin": "EWR", "dest": "IAH",
        "sched_dep_utc": "2013-01-01T10:15:00Z", "sched_arr_utc": "2013-01-01T14:19:00Z",
        "dep_time_utc": "2013-01-01T10:17:00Z", "arr_time_utc": "2013-01-01T14:30:00Z",
        "dep_delay": 2, "arr_delay": 11, "air_time": 227, "distance": 1400, "dest_known": True,
        "dest_tz": "America/Chicago", "diverted": False, "schema_version": 1,
    }  # fmt: skip
    return base | over


def kafka_rows(spark, payloads):
    return spark.createDataFrame(
        [Row(value=(p if isinstance(p, str) else json.dumps(p)).encode(), topic="t",
             partition=0, offset=i, timestamp=datetime(2013, 1, 1, 12))
         for i, p in enumerate(payloads)]
    )  # fmt: skip


def test_events_refused_with_reasons(spark) -> None:
    payloads = [
        event(),
        "not json at all",
        event(event_type="teleported"),
        event(origin="BOS"),
        event(event_time="yesterday"),
        event(schema_version=2),
        event(event_type="arrived", arr_time_utc=None),
    ]
    out = flight_state.parse_events(kafka_rows(spark, payloads)).orderBy("kafka_offset").collect()
    reasons = [r.reject_reason for r in out]
    assert reasons[0] is None
    assert "not a JSON event" in reasons[1]
    assert "event_type 'teleported'" in reasons[2]
    assert "origin 'BOS'" in reasons[3]
    assert "event_time 'yesterday'" in reasons[4]
    assert "schema_version 2 is not 1" in reasons[5]
    assert "arrived event without arr_time_utc" in reasons[6]


def test_an_event_only_knows_its_own_time(spark) -> None:
    out = flight_state.parse_events(
        kafka_rows(spark, [event(event_type="scheduled", event_time="2013-01-01T08:15:00Z")])
    ).collect()[0]
    assert out.dep_time_utc is None and out.dep_delay is None and out.arr_delay is None


def _updates(spark, payloads):
    events = flight_state.parse_events(kafka_rows(spark, payloads))
    return {r["flight_key"]: r for r in flight_state.flight_updates(events).collect()}


def test_flight_update_merges_a_batch_in_any_order(spark) -> None:
    key = event()["flight_key"]
    sched = event(event_type="scheduled", event_time="2013-01-01T08:15:00Z")
    arrived = event(event_type="arrived", event_time="2013-01-01T14:30:00Z")
    a = _updates(spark, [arrived, event(), sched])[key]
    b = _updates(spark, [sched, event(), arrived, arrived])[key]  # a duplicate too
    assert a.asDict() == b.asDict()
    assert a.status_rank == 3 and a.dep_delay == 2 and a.arr_delay == 11
    assert a.sched_hour_utc == datetime(2013, 1, 1, 10) and a.local_hour == 5
    assert a.weekday == 2  # Tuesday, ISO numbering
    assert a.month == "2013-01" and a.status == "arrived" and a.cancelled is False


def test_cancelled_flight(spark) -> None:
    cancelled = event(
        event_type="cancelled",
        event_time="2013-01-01T10:15:00Z",
        dep_time_utc=None,
        arr_time_utc=None,
        dep_delay=None,
        arr_delay=None,
    )
    u = next(iter(_updates(spark, [cancelled]).values()))
    assert u.status_rank == 4 and u.dep_time_utc is None


def test_diverted_flight_departs_and_never_arrives(spark) -> None:
    diverted = event(arr_time_utc=None, arr_delay=None, air_time=None, diverted=True)
    u = next(iter(_updates(spark, [diverted]).values()))
    assert u.status_rank == 2 and u.arr_time_utc is None and u.arr_delay is None


def test_local_hour_and_date_across_dst(spark) -> None:
    """2013-03-10: New York springs forward; 08:00 local is 12:00Z (EDT), not 13:00Z."""
    e = event(flight_key="2013-03-10|UA|1|EWR|0800", date="2013-03-10",
              sched_dep_utc="2013-03-10T12:00:00Z", event_time="2013-03-10T12:00:00Z",
              dep_time_utc="2013-03-10T12:00:00Z")  # fmt: skip
    u = next(iter(_updates(spark, [e]).values()))
    assert u.local_hour == 8 and u.weekday == 7


# -------------------------------------------------------------------------------------- KPIs
def test_measures_are_additive_sums_and_counts(spark) -> None:
    flights = spark.createDataFrame(
        [Row(origin="EWR", sched_hour_utc=datetime(2013, 1, 1, 10), date="2013-01-01",
             local_hour=5, weekday=2, dep_time_utc=dt, dep_delay=d, arr_delay=a, status_rank=r)
         for dt, d, a, r in [
             (datetime(2013, 1, 1, 10), -3, 5, 3),
             (datetime(2013, 1, 1, 11), 75, None, 2),   # diverted: no arrival delay
             (None, None, None, 4),                     # cancelled
             (None, None, None, 1),                     # still scheduled
             (datetime(2013, 1, 1, 10, 20), 15, 20, 3), # 15 min is on time (FAA)
         ]]
    )  # fmt: skip
    k = kpis.kpi_hourly(flights).collect()[0]
    assert (k.flights, k.departed, k.cancelled, k.on_time, k.delayed_60) == (5, 3, 1, 2, 1)
    assert (k.dep_delay_sum, k.dep_delay_n, k.arr_delay_sum, k.arr_delay_n) == (87, 3, 25, 2)
    assert k.hour_utc == datetime(2013, 1, 1, 10) and k.date == "2013-01-01"
