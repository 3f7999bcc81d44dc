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
