"""Merging flight updates: the result never depends on the order or repetition of updates."""

from __future__ import annotations

import itertools
from datetime import datetime

from pipelines.serving import merge_flight

SCHED = {"_id": "k", "origin": "EWR", "dest": "IAH", "status_rank": 1,
         "last_event_time": datetime(2013, 1, 1, 8, 15), "dep_delay": None}  # fmt: skip
DEP = {"_id": "k", "origin": "EWR", "dep_delay": 2, "dep_time_utc": datetime(2013, 1, 1, 10, 17),
       "status_rank": 2, "last_event_time": datetime(2013, 1, 1, 10, 17)}  # fmt: skip
ARR = {"_id": "k", "arr_delay": 11, "status_rank": 3,
       "last_event_time": datetime(2013, 1, 1, 14, 30)}  # fmt: skip
WEATHER = {"_id": "k", "weather": {"visib_band": "10+ mi"}}


def fold(updates):
    doc = None
    for u in updates:
        doc = merge_flight(doc, u)
    return doc


def test_any_order_and_any_repetition_gives_the_same_document() -> None:
    results = {
        repr(sorted(fold(order).items()))
        for order in itertools.permutations([SCHED, DEP, ARR, WEATHER, DEP])
    }
    assert len(results) == 1
    doc = fold([ARR, SCHED, WEATHER, DEP])
    assert doc["status"] == "arrived" and doc["status_rank"] == 3 and doc["cancelled"] is False
    assert doc["dep_delay"] == 2 and doc["arr_delay"] == 11 and doc["dest"] == "IAH"
    assert doc["last_event_time"] == datetime(2013, 1, 1, 14, 30)
    assert doc["weather"] == {"visib_band": "10+ mi"}


def test_null_fields_never_erase_known_ones() -> None:
    doc = fold([DEP, SCHED])  # the scheduled event knows no delay
    assert doc["dep_delay"] == 2


def test_cancelled() -> None:
    doc = merge_flight(None, {"_id": "k", "status_rank": 4, "last_event_time": None})
    assert doc["status"] == "cancelled" and doc["cancelled"] is True
