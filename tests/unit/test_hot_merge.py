"""The hot path's pure pieces: the row-by-row merge of a bucket's state (``merge_row``), which
must be the same join as the lake path's Spark merge, whatever the order, duplicates or
batches; which of a bucket's two writers a reader sees (``readmodels.resolve``); and the
MongoDB operation each writer sends (``sinks.operation``: by ``_id`` only)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from functools import reduce

from hypothesis import given, settings
from hypothesis import strategies as st
from pymongo import ReplaceOne, UpdateOne

from pipelines.core.domain import STATUS_RANK
from pipelines.serving import readmodels, sinks
from pipelines.transform.flight_state import MERGED_FIELDS, merge_row

T0 = datetime(2013, 3, 4, 12)


def _flight_events(key: str, delay: int | None, cancelled: bool = False) -> list[dict]:
    """The events of one flight, as the replay sends them (each knows what was known then)."""
    static = {"flight_key": key, "date": "2013-03-04", "carrier": "UA", "flight": 1545,
              "tailnum": None if cancelled else "N14228", "origin": "EWR", "dest": "IAH",
              "distance": 1400, "dest_known": True, "sched_dep_utc": T0,
              "sched_arr_utc": T0 + timedelta(hours=3)}  # fmt: skip
    none = dict.fromkeys(("dep_time_utc", "dep_delay", "arr_time_utc", "arr_delay", "air_time"))
    events = [{**static, **none, "status_rank": STATUS_RANK["scheduled"],
               "event_time": T0 - timedelta(hours=2)}]  # fmt: skip
    if cancelled:
        return [*events, {**static, **none, "status_rank": STATUS_RANK["cancelled"],
                          "event_time": T0}]  # fmt: skip
    dep = {"dep_time_utc": T0 + timedelta(minutes=delay), "dep_delay": delay}
    arr = {**dep, "arr_time_utc": T0 + timedelta(hours=3, minutes=delay), "arr_delay": delay - 5,
           "air_time": 170}  # fmt: skip
    return [
        *events,
        {**static, **none, **dep, "status_rank": STATUS_RANK["departed"],
         "event_time": dep["dep_time_utc"]},
        {**static, **none, **arr, "status_rank": STATUS_RANK["arrived"],
         "event_time": arr["arr_time_utc"]},
    ]  # fmt: skip


EVENTS = [
    *_flight_events("2013-03-04|UA|1545|EWR", 12),
    *_flight_events("2013-03-04|AA|11|EWR", -4),
    *_flight_events("2013-03-04|B6|5|EWR", None, cancelled=True),
]


def _fold(events: list[dict]) -> dict[str, dict]:
    state: dict[str, dict] = {}
    for event in events:
        state[event["flight_key"]] = merge_row(state.get(event["flight_key"]), event)
    return state


def test_merge_row_knows_every_fact_of_the_events() -> None:
    state = _fold(EVENTS)
    ua = state["2013-03-04|UA|1545|EWR"]
    assert set(ua) == set(MERGED_FIELDS)
    assert ua["status_rank"] == STATUS_RANK["arrived"] and ua["dep_delay"] == 12
    assert ua["arr_delay"] == 7 and ua["last_event_time"] == T0 + timedelta(hours=3, minutes=12)
    cancelled = state["2013-03-04|B6|5|EWR"]
    assert cancelled["status_rank"] == STATUS_RANK["cancelled"] and cancelled["tailnum"] is None
    assert state["2013-03-04|AA|11|EWR"]["dep_delay"] == -4  # a negative delay is a fact too


@settings(max_examples=200, deadline=None)
@given(st.randoms(use_true_random=False), st.integers(0, 6), st.integers(1, 4))
def test_merge_row_ignores_order_duplicates_and_batches(rnd: random.Random, dups: int,
                                                        batches: int) -> None:  # fmt: skip
    events = EVENTS + [rnd.choice(EVENTS) for _ in range(dups)]
    rnd.shuffle(events)
    cuts = sorted(rnd.sample(range(len(events) + 1), k=min(batches, len(events) + 1)))
    state: dict[str, dict] = {}
    for lo, hi in zip([0, *cuts], [*cuts, len(events)], strict=True):  # one batch at a time
        state = reduce(lambda s, e: {**s, e["flight_key"]: merge_row(s.get(e["flight_key"]), e)},
                       events[lo:hi], state)  # fmt: skip
    assert state == _fold(EVENTS)


def test_a_known_field_is_never_erased_by_an_older_event() -> None:
    arrived = _fold(EVENTS)["2013-03-04|UA|1545|EWR"]
    scheduled = EVENTS[0]
    assert merge_row(arrived, scheduled) == arrived


def test_resolve_shows_the_writer_that_knows_more() -> None:
    lake = {"_id": "EWR|2013-03-04T12:00Z", "origin": "EWR", "n": 2, "flights": ["a", "b"],
            "version": 10}  # fmt: skip
    hot = {"n": 3, "flights": ["a", "b", "c"], "version": 14}
    assert readmodels.resolve({**lake, "hot": hot})["n"] == 3
    assert readmodels.resolve({**lake, "hot": {**hot, "version": 9}}) == lake
    assert readmodels.resolve({**lake, "hot": {**hot, "version": 10}}) == lake  # a tie: the lake
    only_hot = {"_id": lake["_id"], "origin": "EWR", "hot": hot}
    assert readmodels.resolve(only_hot)["flights"] == ["a", "b", "c"]
    assert readmodels.resolve(lake) == lake


def test_each_writer_sends_an_update_by_id_only() -> None:
    doc = {"_id": "EWR|2013-03-04T12:00Z", "origin": "EWR", "hour_utc": T0, "date": "2013-03-04",
           "n": 1, "flights": [], "version": 3}  # fmt: skip
    whole = sinks.operation(doc)
    assert isinstance(whole, ReplaceOne) and whole._filter == {"_id": doc["_id"]}  # noqa: SLF001
    lake = sinks.operation(doc, top=readmodels.BOARD_TOP)
    assert isinstance(lake, UpdateOne) and lake._filter == {"_id": doc["_id"]}  # noqa: SLF001
    assert lake._doc == {"$set": {k: v for k, v in doc.items() if k != "_id"}}  # noqa: SLF001
    hot = sinks.operation(doc, slot=readmodels.HOT, top=readmodels.BOARD_TOP)
    assert hot._filter == {"_id": doc["_id"]}  # noqa: SLF001
    assert hot._doc == {"$set": {"origin": "EWR", "hour_utc": T0, "date": "2013-03-04",  # noqa: SLF001
                                 "hot": {"n": 1, "flights": [], "version": 3}}}  # fmt: skip
