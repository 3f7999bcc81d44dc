"""The read models' keys: the hours of a New York local date and their ``_id``s."""

from __future__ import annotations

from datetime import datetime

from pipelines.serving import readmodels


def test_hours_of_a_local_date_follow_new_york_dst() -> None:
    assert len(readmodels.hours_of_date("2013-01-15")) == 24
    assert len(readmodels.hours_of_date("2013-03-10")) == 23  # spring forward
    assert len(readmodels.hours_of_date("2013-11-03")) == 25  # fall back
    hours = readmodels.hours_of_date("2013-01-15")
    assert hours[0] == datetime(2013, 1, 15, 5) and hours[-1] == datetime(2013, 1, 16, 4)
    keys = readmodels.board_keys(["2013-01-15"])
    assert len(keys) == 72 and keys[0] == "EWR|2013-01-15T05:00Z"


def test_resolve_carries_the_lakes_scores_onto_the_hot_bucket_it_shows() -> None:
    """A model's ``delay_risk`` is written by the lake path only: when the hot bucket knows
    more (a newer event), the page shows it with the lake document's scores, by flight; the
    score is no fact (the versions ignore it)."""
    a = {"flight_key": "k1", "sched_dep_utc": datetime(2013, 1, 1, 10, 15), "status_rank": 1}
    b = {"flight_key": "k2", "sched_dep_utc": datetime(2013, 1, 1, 10, 40), "status_rank": 1}
    lake = {"_id": "EWR|2013-01-01T10:00Z", "version": 6,
            "flights": [{**a, "delay_risk": 0.31}, {**b, "delay_risk": 0.72}]}  # fmt: skip
    assert readmodels.facts(lake["flights"][0]) == readmodels.facts(a)
    departed = {**a, "status_rank": 2, "dep_delay": 40}
    hot = {"_id": lake["_id"], "version": 9, "flights": [departed, b]}
    shown = readmodels.resolve(lake, hot)
    assert shown["version"] == 9
    assert shown["flights"] == [{**departed, "delay_risk": 0.31}, {**b, "delay_risk": 0.72}]
    assert readmodels.resolve(lake, {**hot, "version": 5}) is lake  # the lake's knows more
    unscored = {**lake, "flights": [a, b]}
    assert readmodels.resolve(unscored, hot) == {**unscored, **hot}  # no model: unchanged
    row = {"_id": lake["_id"], "version": 6, "flights": 2}  # an hour's KPI row: a count
    assert readmodels.resolve(row, {**row, "version": 9, "flights": 3})["flights"] == 3


def test_the_live_board_shows_the_risk_a_model_wrote() -> None:
    """The board's frame keeps each flight's ``delay_risk`` (NaN where none was written)."""
    from datetime import UTC

    import pandas as pd

    from pipelines.dashboard import analytics, decode, kpi_frames, live

    clock = datetime(2013, 1, 1, 10, 30, tzinfo=UTC)
    at = datetime(2013, 1, 1, 10, 45)
    bucket = {"_id": "EWR|2013-01-01T10:00Z", "origin": "EWR", "flights": [
        {"flight_key": "a", "carrier": "UA", "flight": 1, "sched_dep_utc": at,
         "status_rank": 1, "delay_risk": 0.42},
        {"flight_key": "b", "carrier": "UA", "flight": 2, "sched_dep_utc": at, "status_rank": 1},
    ]}  # fmt: skip
    frame = decode.board_frame([bucket], clock - live.BOARD_BEFORE, clock + live.BOARD_AFTER)
    board = analytics.live_board(frame, kpi_frames.Scope(), clock)
    risks = dict(zip(board["flight_no"], board["delay_risk"], strict=True))
    assert risks["UA 1"] == 0.42 and pd.isna(risks["UA 2"])


def test_a_dates_buckets_give_its_day_rows() -> None:
    """``day_doc``: hours per bucket, airlines per carrier and origin (an unknown name left
    out, as the lake path writes it), weather per origin and bands over the flights whose
    weather is known (no precipitation known: dry; no wind known: "unknown"), sorted as the
    lake path sorts them; a bucket neither path wrote counts nothing."""
    hour = datetime(2013, 1, 15, 14)
    clear = {"visib_band": "10+ mi", "precip": None, "wind_band": None}
    a = {"flight_key": "a", "sched_dep_utc": hour, "carrier": "UA", "status_rank": 2,
         "dep_time_utc": hour, "dep_delay": 75, "weather": clear}  # fmt: skip
    b = {"flight_key": "b", "sched_dep_utc": hour, "carrier": "AA", "carrier_name": "American",
         "status_rank": 1}  # fmt: skip
    wet = {**clear, "precip": True, "wind_band": "0-10 mph"}
    c = {"flight_key": "c", "sched_dep_utc": hour, "carrier": "UA", "carrier_name": "United",
         "status_rank": 4, "weather": wet}  # fmt: skip
    jfk = {"_id": "JFK|2013-01-15T14:00Z", "origin": "JFK", "hour_utc": hour,
           "date": "2013-01-15", "version": 9, "flights": [a, b]}  # fmt: skip
    ewr = {**jfk, "_id": "EWR|2013-01-15T14:00Z", "origin": "EWR", "version": 4, "flights": [c]}
    doc = readmodels.day_doc("2013-01-15", [jfk, None, ewr])
    assert [h["origin"] for h in doc["hours"]] == ["EWR", "JFK"]
    assert doc["flights"] == 3 and doc["version"] == 13
    assert [(r["carrier"], r["origin"], r.get("carrier_name"), r["flights"], r["delayed_60"],
             r["cancelled"]) for r in doc["carriers"]] == [
        ("AA", "JFK", "American", 1, 0, 0), ("UA", "EWR", "United", 1, 0, 1),
        ("UA", "JFK", None, 1, 1, 0)]  # fmt: skip
    assert "carrier_name" not in doc["carriers"][2]
    assert [(r["origin"], r["precip"], r["wind_band"], r["flights"]) for r in doc["weather"]] == [
        ("EWR", True, "0-10 mph", 1), ("JFK", False, "unknown", 1)]  # fmt: skip
    assert readmodels.day_doc("2013-01-15", [None])["carriers"] == []


def test_a_dates_rows_from_its_buckets_unless_they_count_fewer_flights() -> None:
    derived = {"_id": "2013-01-15", "flights": 3, "carriers": [{"carrier": "ZZ"}]}
    lake = {"_id": "2013-01-15", "flights": 3, "carriers": [{"carrier": "UA"}]}
    assert readmodels.newer_day(lake, derived) is derived  # as many: the buckets' (as new)
    assert readmodels.newer_day(None, derived) is derived  # no document yet
    assert readmodels.newer_day({**lake, "flights": 4}, derived)["carriers"] == [{"carrier": "UA"}]
