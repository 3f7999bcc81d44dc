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
