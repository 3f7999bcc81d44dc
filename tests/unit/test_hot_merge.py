"""The hot path's pure pieces: the row-by-row merge of a flight's events (``merge_row``), which
must be the same join as the lake path's Spark merge, whatever the order, duplicates or
batches; the live board's fold of events into ``$max`` paths (``flights_board.fold``), the
same join; an hour's KPI row derived from its board bucket (``readmodels.hour_row``); which of
a bucket's two writers a reader sees (``readmodels.resolve``); and the MongoDB operation each
writer sends (by ``_id`` only)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from functools import reduce

from hypothesis import given, settings
from hypothesis import strategies as st
from pymongo import ReplaceOne, UpdateOne

from pipelines.core.domain import STATUS_RANK
from pipelines.jobs import flights_board
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
    hot = {"_id": lake["_id"], "n": 3, "flights": ["a", "b", "c"], "version": 14}
    assert readmodels.resolve(lake, hot)["n"] == 3
    assert readmodels.resolve(lake, {**hot, "version": 9}) == lake
    assert readmodels.resolve(lake, {**hot, "version": 10}) == lake  # a tie: the lake
    assert readmodels.resolve(None, hot) == hot and readmodels.resolve(lake, None) == lake
    assert readmodels.resolve(None, None) is None


def _board_rows(events: list[dict]) -> list[dict]:
    """The events as ``flights_board.board_events`` rows (without the enrichment)."""
    bucket = {"_id": "EWR|2013-03-04T12:00Z", "origin": "EWR", "hour_utc": T0,
              "date": "2013-03-04"}  # fmt: skip
    return [{**bucket, **{k: v for k, v in e.items() if k != "event_time"},
             "last_event_time": e["event_time"]} for e in events]  # fmt: skip


def _raise(doc: dict, maxes: dict) -> dict:
    """``maxes`` (``fold``'s paths) raised into ``doc`` as ``$max`` does (a new path is set)."""
    doc = {k: dict(v) if isinstance(v, dict) else v for k, v in doc.items()}
    for path, value in maxes.items():
        if doc.get(path) is None or value > doc[path]:
            doc[path] = value
    return doc


@settings(max_examples=200, deadline=None)
@given(st.randoms(use_true_random=False), st.integers(0, 6), st.integers(1, 4))
def test_the_live_boards_max_is_the_lake_paths_merge(rnd: random.Random, dups: int,
                                                     batches: int) -> None:  # fmt: skip
    """Whatever the order, duplicates and batches, the fields ``$max`` raises from
    ``flights_board.fold`` are the flights ``merge_row`` (the lake path's join) merges, and
    ``readmodels.hot_board`` reads them back as the lake path's board flights."""
    events = EVENTS + [rnd.choice(EVENTS) for _ in range(dups)]
    rnd.shuffle(events)
    cuts = sorted(rnd.sample(range(len(events) + 1), k=min(batches, len(events) + 1)))
    raised: dict = {}
    for lo, hi in zip([0, *cuts], [*cuts, len(events)], strict=True):  # one batch at a time
        for _id, (top, maxes) in flights_board.fold(_board_rows(events[lo:hi])).items():
            assert _id == "EWR|2013-03-04T12:00Z" and top["origin"] == "EWR"
            raised = _raise(raised, maxes)
    flights: dict[str, dict] = {}
    for path, value in raised.items():
        _, key, field = path.split(".", 2)
        flights.setdefault(key, {})[field] = value
    merged = _fold(EVENTS)
    assert {readmodels.slot_key(k) for k in merged} == set(flights)
    board = readmodels.hot_board({"_id": "EWR|2013-03-04T12:00Z", "flights": flights})
    expected = sorted((readmodels.board_flight(m) for m in merged.values()),
                      key=lambda f: (f["sched_dep_utc"], f["flight_key"]))  # fmt: skip
    assert board["flights"] == expected and board["n"] == 3
    assert board["version"] == sum(map(readmodels.facts, expected))
    assert expected[0]["status"] in STATUS_RANK and "cancelled" in expected[0]


def test_an_hours_row_is_the_measures_of_its_bucket_s_flights() -> None:
    """The measures of ``transform.kpis.measures`` over the bucket's flights: UA departed 12
    min late and arrived 7 late, AA 4 early and 9 early, B6 cancelled (never departed)."""
    flights = {readmodels.slot_key(k): {**readmodels.board_flight(m), "local_hour": 7,
                                         "weekday": 1}
               for k, m in _fold(EVENTS).items()}  # fmt: skip
    top = {"_id": "EWR|2013-03-04T12:00Z", "origin": "EWR", "hour_utc": T0, "date": "2013-03-04",
           "updated_at": T0}  # fmt: skip
    row = readmodels.hot_view(readmodels.KPI_HOURLY, {**top, "flights": flights})
    assert row == {
        **top,
        "local_hour": 7,
        "weekday": 1,
        "flights": 3,
        "departed": 2,
        "cancelled": 1,
        "on_time": 2,
        "delayed_60": 0,
        "dep_delay_sum": 8,
        "dep_delay_n": 2,
        "arr_delay_sum": -2,
        "arr_delay_n": 2,
        "version": readmodels.hot_board({**top, "flights": flights})["version"],
    }
    late = {**flights[readmodels.slot_key("2013-03-04|AA|11|EWR")], "dep_delay": 75}
    row = readmodels.hour_row(readmodels.hot_board({**top, "flights": {**flights, "x": late}}))
    assert (row["flights"], row["on_time"], row["delayed_60"]) == (4, 2, 1)
    assert readmodels.HOT_OF[readmodels.KPI_HOURLY] == readmodels.BOARD_HOT


def test_a_flight_key_is_a_safe_field_name() -> None:
    keys = ["2013-03-04|UA|1545|EWR|0515", "a.b", "$x", "50%.x", "50%2Ex"]
    safe = [readmodels.slot_key(k) for k in keys]
    assert not any("." in k or k.startswith("$") for k in safe)
    assert len(set(safe)) == len(keys) and safe[0] == keys[0]


def test_each_writer_sends_an_update_by_id_only() -> None:
    doc = {"_id": "EWR|2013-03-04T12:00Z", "origin": "EWR", "hour_utc": T0, "date": "2013-03-04",
           "n": 1, "flights": [], "version": 3}  # fmt: skip
    whole = sinks.operation(doc)
    assert isinstance(whole, ReplaceOne) and whole._filter == {"_id": doc["_id"]}  # noqa: SLF001
    ops = flights_board.operations(flights_board.fold(_board_rows(EVENTS)), T0)
    assert len(ops) == 1 and isinstance(ops[0], UpdateOne)
    assert ops[0]._filter == {"_id": doc["_id"]} and ops[0]._upsert  # noqa: SLF001
    update = ops[0]._doc  # noqa: SLF001
    assert set(update) == {"$set", "$max"} and update["$set"] == {
        "origin": "EWR", "hour_utc": T0, "date": "2013-03-04"}  # fmt: skip
    assert update["$max"]["updated_at"] == T0
    assert all(v is not None for v in update["$max"].values())  # never erases a known field
