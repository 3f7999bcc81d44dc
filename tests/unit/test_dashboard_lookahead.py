"""The look-ahead's and the search's pure builders (``dashboard.ahead``, ``dashboard.search``)
on documents of docs/data-model.md built by ``tests.serving_docs``: the ids they read, exact
values of the next hours against the usual (same weekday, the "any day" fallback, the clock's
day and later left out), the bank's delay risk, the weather trend, what a search or a click
finds and how it is listed."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest

from pipelines.dashboard import ahead as A
from pipelines.dashboard import search as F
from pipelines.dashboard.decode import daily_rows, profile_of
from pipelines.dashboard.kpi_frames import NY, Kpis, NotRead, Scope
from tests import serving_docs as S

# Wednesday 16 Jan 2013, 22:30 New York (03:30Z on the 17th): the next two hours are 22:00,
# 23:00 (Wednesday) and 00:00 (Thursday, which has no complete day: the "any day" usual)
CLOCK = datetime(2013, 1, 16, 22, 30, tzinfo=NY).astimezone(UTC)


def ny(day: str, hour: int, minute: int = 0) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, minute=minute, tzinfo=NY).astimezone(UTC)


def hour(origin: str, day: str, local_hour: int, flights: int, delay_sum: int = 0) -> dict:
    return {"origin": origin, "hour_utc": ny(day, local_hour), "flights": flights,
            "departed": flights, "dep_delay_sum": delay_sum, "dep_delay_n": flights}  # fmt: skip


HOURS = [
    hour("EWR", "2013-01-02", 22, 10, 100),  # Wednesdays before the clock's day
    hour("EWR", "2013-01-09", 22, 20, 400),
    hour("EWR", "2013-01-15", 22, 50, 5000),  # a Tuesday: not the usual of a Wednesday
    hour("EWR", "2013-01-16", 22, 99, 9900),  # the clock's day: left out of the usual
    hour("EWR", "2013-01-02", 0, 4, 40),
    hour("EWR", "2013-01-15", 0, 8, 0),
    hour("EWR", "2013-01-17", 0, 30, 300),  # after the clock's day: left out
    hour("JFK", "2013-01-09", 22, 7, 70),
]


def kpis(hours: list[dict] = HOURS, read: list[str] | None = None) -> Kpis:
    daily = S.daily_docs(hours)
    profile = profile_of(S.profile_doc(daily))
    docs = [d for d in daily if read is None or d["date"] in read]
    return Kpis(profile, daily_rows(docs, [d["date"] for d in docs]))


def flight(key: str, origin: str, sched: datetime, **fields) -> dict:
    return {"flight_key": key, "origin": origin, "sched_dep_utc": sched, **fields}


BOARD = S.board_docs([
    flight("a", "EWR", ny("2013-01-16", 22, 5), status_rank=2, dep_delay=3, delay_risk=0.2),
    flight("b", "EWR", ny("2013-01-16", 22, 40), status_rank=1, delay_risk=0.5),
    flight("c", "EWR", ny("2013-01-16", 22, 50), status_rank=1),
    flight("d", "EWR", ny("2013-01-17", 0, 10), status_rank=4, cancelled=True),
    flight("e", "JFK", ny("2013-01-16", 23, 15), status_rank=1),
])  # fmt: skip


def test_the_ids_read_are_the_next_hours_and_the_last_hours_weather() -> None:
    assert A.ahead_ids(CLOCK, 2) == [
        "EWR|2013-01-17T03:00Z", "JFK|2013-01-17T03:00Z", "LGA|2013-01-17T03:00Z",
        "EWR|2013-01-17T04:00Z", "JFK|2013-01-17T04:00Z", "LGA|2013-01-17T04:00Z",
        "EWR|2013-01-17T05:00Z", "JFK|2013-01-17T05:00Z", "LGA|2013-01-17T05:00Z",
    ]  # fmt: skip
    assert len(A.ahead_ids(CLOCK)) == 3 * (A.AHEAD_MAX + 1) == 21
    assert A.weather_ids(CLOCK, 2, ["EWR"]) == [
        "EWR|2013-01-17T03:00Z", "EWR|2013-01-17T02:00Z", "EWR|2013-01-17T01:00Z"]  # fmt: skip
    assert len(A.weather_ids(CLOCK)) == 12


def test_the_next_hours_against_the_usual_of_their_weekday_and_hour() -> None:
    table = A.ahead_table(BOARD, kpis(), CLOCK, hours=2, airports=("EWR", "JFK"))
    assert list(table["origin"]) == ["EWR"] * 3 + ["JFK"] * 3
    assert list(table["label"]) == ["22:00", "23:00", "00:00"] * 2
    assert list(table["now"]) == [True, False, False] * 2
    assert list(table["weekday"]) == [3, 3, 4] * 2
    assert list(table["scheduled"]) == [3, 0, 1, 0, 1, 0]
    assert list(table["not_departed"]) == [2, 0, 0, 0, 1, 0]
    ewr22, ewr23, ewr00, jfk22, _, _ = table.to_dict("records")
    # two Wednesdays (2nd, 9th): (10 + 20) / 2 flights a day, (100 + 400) / 30 min
    assert (ewr22["usual"], ewr22["usual_days"], ewr22["usual_basis"]) == (15.0, 2, "Wednesday")
    assert ewr22["usual_delay"] == pytest.approx(500 / 30)
    assert ewr22["vs_usual"] == 3 - 15.0
    assert (ewr23["usual"], ewr23["usual_days"]) == (0.0, 2)  # no flight then: 0, not unknown
    assert math.isnan(ewr23["usual_delay"])
    # Thursday has no complete day: every complete day (2nd, 9th, 15th) at midnight
    assert (ewr00["usual"], ewr00["usual_days"], ewr00["usual_basis"]) == (4.0, 3, "any day")
    assert ewr00["usual_delay"] == pytest.approx(40 / 12)
    assert (jfk22["usual"], jfk22["usual_delay"]) == (3.5, 10.0)
    assert set(table["board"]) == {"complete"}  # no lead given: every hour known
    # the bank's delay risk: the mean of the flights that carry one
    assert ewr22["risk"] == pytest.approx(0.35) and ewr22["risk_n"] == 2
    assert math.isnan(jfk22["risk"]) and jfk22["risk_n"] == 0


def test_hours_the_board_cannot_hold_yet_are_not_compared() -> None:
    """Flights reach the board ``lead`` before departure: at 22:30 with 1 h 40 min, 22:00 and
    23:00 are complete (23:59 <= 00:10), 00:00 partial, 01:00 not yet."""
    table = A.ahead_table(BOARD, kpis(), CLOCK, 3, ("EWR",), lead=timedelta(minutes=100))
    assert list(table["board"]) == ["complete", "complete", "partial", "not yet"]
    assert list(table["vs_usual"][:2]) == [3 - 15.0, 0.0]
    assert table["vs_usual"][2:].isna().all()
    assert list(table["usual"]) == [15.0, 0.0, 4.0, 0.0]  # the usual stays shown


def test_no_complete_day_means_no_usual_and_unread_days_are_refused() -> None:
    first = [h for h in HOURS if h["hour_utc"] >= ny("2013-01-16", 0)]
    table = A.ahead_table(BOARD, kpis(first), CLOCK, hours=1, airports=("EWR",))
    assert table["usual"].isna().all() and list(table["usual_days"]) == [0, 0]
    with pytest.raises(NotRead):  # the clock's day must have been read to be left out
        A.ahead_table(BOARD, kpis(read=["2013-01-02"]), CLOCK, hours=1)


def weather(origin: str, at: datetime, **values) -> dict:
    return {"_id": S.hour_id(origin, at), "origin": origin, "hour_utc": at, **values}


def test_the_weather_of_the_last_hours_as_a_trend() -> None:
    top = CLOCK.replace(minute=0)
    docs = [
        weather("EWR", top - timedelta(hours=h), visib_km=v, wind_speed_kmh=w, precip_mm=p)
        for h, v, w, p in ((3, 16.09, 10.0, 0.0), (2, 16.09, 12.0, 0.0), (1, 8.0, 14.0, 0.0),
                           (0, 4.8, 20.0, 0.05))
    ] + [
        weather("JFK", top - timedelta(hours=1), visib_km=16.09, wind_speed_kmh=9.3),
        weather("JFK", top - timedelta(hours=4), visib_km=1.0),  # before the window
    ]  # fmt: skip
    trend = A.weather_trend(docs, CLOCK).set_index("origin")
    ewr, jfk, lga = trend.loc["EWR"], trend.loc["JFK"], trend.loc["LGA"]
    assert ewr["hours_utc"] == [top - timedelta(hours=h) for h in (3, 2, 1, 0)]
    assert ewr["visib_km"] == [16.09, 16.09, 8.0, 4.8]
    assert (ewr["visib_km_arrow"], ewr["visib_km_worse"]) == ("↓", True)
    assert (ewr["wind_speed_kmh_arrow"], ewr["wind_speed_kmh_worse"]) == ("↑", True)
    assert (ewr["precip_mm_arrow"], ewr["precip_mm_worse"]) == ("→", False)  # < 0.1 mm
    assert jfk["visib_km"] == [16.09] and jfk["visib_km_arrow"] == ""  # one hour: no trend
    assert math.isnan(jfk["precip_mm"][0])
    assert lga["hours_utc"] == [] and lga["visib_km"] == []


# ----------------------------------------------------------------------------- the search

FLIGHTS = F.flights_frame(S.board_docs([
    flight("k1", "EWR", ny("2013-01-16", 5, 15), carrier="UA", flight=1545, tailnum="N14228",
           dest="IAH", status="arrived", dep_time_utc=ny("2013-01-16", 5, 17), dep_delay=2),
    flight("k2", "LGA", ny("2013-01-16", 9, 0), carrier="AA", flight=1545, tailnum="N619AA",
           dest="MIA", status="departed", dep_time_utc=ny("2013-01-16", 10, 10), dep_delay=70),
    flight("k3", "JFK", ny("2013-01-16", 9, 30), carrier="B6", flight=15, tailnum="N14228",
           dest="BOS", status="departed", dep_time_utc=ny("2013-01-16", 9, 50), dep_delay=20),
    flight("k4", "JFK", ny("2013-01-16", 12, 0), carrier="B6", flight=16, tailnum="N500JB",
           dest="BOS", status="cancelled", cancelled=True),
    flight("k5", "EWR", ny("2013-01-16", 23, 0), carrier="UA", flight=7, tailnum="N1",
           dest="BOS", status="scheduled"),
]))  # fmt: skip
NOON = ny("2013-01-16", 12, 30)


def keys(frame: pd.DataFrame) -> list[str]:
    return list(frame["flight_key"])


def test_the_flights_of_buckets_carry_their_local_day_and_hour() -> None:
    assert keys(FLIGHTS) == ["k1", "k5", "k3", "k4", "k2"]  # bucket by bucket
    assert list(FLIGHTS["date"]) == ["2013-01-16"] * 5
    assert list(FLIGHTS["local_hour"]) == [5, 23, 9, 12, 9]
    assert list(FLIGHTS["origin"]) == ["EWR", "EWR", "JFK", "JFK", "LGA"]


@pytest.mark.parametrize(("text", "found"), [
    ("UA1545", ["k1"]), ("ua 1545", ["k1"]), ("1545", ["k1", "k2"]), ("01545", ["k1", "k2"]),
    ("N14228", ["k1", "k3"]), ("n14228", ["k1", "k3"]), ("B615", ["k3"]), ("15", ["k3"]),
    ("DL1545", []), ("", []), ("   ", []),
])  # fmt: skip
def test_a_flight_or_tail_number_finds_its_flights(text: str, found: list[str]) -> None:
    assert keys(F.answer(FLIGHTS, F.Ask("search", text), Scope(), NOON)) == found


def test_a_search_keeps_the_airports_filter_not_the_airlines() -> None:
    scope = Scope(airports=("JFK",), carriers=("UA",))
    assert keys(F.answer(FLIGHTS, F.Ask("search", "N14228"), scope, NOON)) == ["k3"]


def test_a_click_lists_the_flights_of_its_slice_as_the_tiles_count_them() -> None:
    def ask(kind: str, value: str, scope: Scope | None = None) -> list[str]:
        return keys(F.answer(FLIGHTS, F.Ask(kind, value), scope or Scope(), NOON))

    assert ask("tile", "flights") == ["k1", "k2", "k3", "k4"]  # up to the clock's hour (12h)
    assert ask("tile", "on_time_pct") == ["k2", "k3"]  # not on time, longest delay first
    assert ask("tile", "avg_dep_delay") == ["k2", "k3", "k1"]
    assert ask("tile", "cancelled") == ["k4"]
    assert ask("tile", "delayed_60") == ["k2"]
    assert ask("tile", "flights", Scope(carriers=("B6",))) == ["k3", "k4"]
    assert ask("carrier", "UA") == ["k1"]
    assert ask("route", "BOS") == ["k3", "k4"]
    assert ask("route", "EWR-BOS") == []
    assert ask("route", "BOS", Scope(airports=("LGA",))) == []
    assert ask("tile", "flights") == keys(F.answer(FLIGHTS, F.Ask("tile", "flights"), Scope(),
                                                   ny("2013-01-16", 22, 59)))  # fmt: skip
    no_clock = F.answer(FLIGHTS, F.Ask("tile", "flights"), Scope(), None)
    assert keys(no_clock) == ["k1", "k2", "k3", "k4", "k5"]  # by scheduled time


def test_the_listing_and_the_days_searched() -> None:
    found = F.answer(FLIGHTS, F.Ask("search", "N14228"), Scope(), NOON)
    assert F.listing(found).to_dict("records") == [
        {"date": "2013-01-16", "sched": "05:15", "flight_no": "UA 1545", "tailnum": "N14228",
         "origin": "EWR", "dest": "IAH", "status": "arrived", "delay": "+2"},
        {"date": "2013-01-16", "sched": "09:30", "flight_no": "B6 15", "tailnum": "N14228",
         "origin": "JFK", "dest": "BOS", "status": "departed", "delay": "+20"},
    ]  # fmt: skip
    assert len(F.listing(FLIGHTS, cap=2)) == 2
    assert F.listing(FLIGHTS)["delay"].tolist()[1] == ""  # k5: not departed
    week = [date(2013, 1, d).isoformat() for d in range(10, 18)]
    assert F.search_days(week, "2013-01-16") == ["2013-01-14", "2013-01-15", "2013-01-16"]
    assert F.search_days(week, "2013-01-16", cap=1) == ["2013-01-16"]
    assert F.search_days([], "2013-01-16") == ["2013-01-16"]
    assert F.search_days(["2013-01-20"], "2013-01-16") == ["2013-01-16"]
    assert F.Ask("route", "BOS").label == "route New York → BOS"
    assert F.Ask("tile", "cancelled").label == "tile: cancelled flights"
