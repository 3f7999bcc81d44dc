"""The ``hot`` step of housekeeping on the real serving database: the live board's buckets
(``flights_by_hour_hot``) more than ``hot_days`` before the replay clock go once the lake's
bucket of the same hour knows as much, and what the page resolves for every hour is the same
before and after (``readmodels.resolve``); the step reports exactly the documents and bytes
that disappeared."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import bson
import pytest

from pipelines.clients import mongo
from pipelines.jobs import housekeeping
from pipelines.serving import readmodels as RM

pytestmark = pytest.mark.integration

CLOCK = datetime(2013, 1, 20, 12, 30, tzinfo=UTC)  # the stream's newest event time


def hot_bucket(origin: str, hour: datetime, flights: int) -> dict:
    """A hot board bucket as the live board writes it: top fields, a map of known fields."""
    known = {}
    for i in range(flights):
        key = f"{origin}|{hour:%Y-%m-%dT%H}|UA{i}"
        known[RM.slot_key(key)] = {
            "flight_key": key, "sched_dep_utc": hour + timedelta(minutes=5 * i),
            "carrier": "UA", "flight": i, "status_rank": 3, "last_event_time": hour,
        }  # fmt: skip
    return {"_id": RM.hour_key(origin, hour), "origin": origin, "hour_utc": hour,
            "date": f"{hour:%Y-%m-%d}", "flights": known, "updated_at": CLOCK}  # fmt: skip


def test_hot_buckets_past_the_replay_days_go_when_the_lake_knows_as_much(stack, unique) -> None:
    db = mongo.database(stack).client[f"{stack.mongo.database}_hot_{unique}"]
    try:
        db[RM.STATE].insert_one({"_id": "flights_stream", "newest_event_time": CLOCK})
        hours = {  # name -> (hours before the clock, lake's version minus the hot one's)
            "old_equal": (80, 0), "old_ahead": (100, 5), "old_behind": (90, -1),
            "old_no_lake": (75, None), "recent": (5, 0), "recent_no_lake": (1, None),
        }  # fmt: skip
        ids = {}
        for i, (name, (before, lake_delta)) in enumerate(hours.items()):
            hour = (CLOCK - timedelta(hours=before)).replace(minute=0)
            hot = hot_bucket("EWR", hour, flights=2 + i)
            db[RM.BOARD_HOT].insert_one(hot)
            ids[name] = hot["_id"]
            if lake_delta is not None:
                lake = RM.hot_board(hot)
                lake["flights"] = [{**f, "status": "departed"} for f in lake["flights"]]
                db[RM.BOARD].insert_one({**lake, "version": lake["version"] + lake_delta})

        def page() -> dict:
            return {
                _id: RM.resolve(
                    db[RM.BOARD].find_one({"_id": _id}),
                    (h := db[RM.BOARD_HOT].find_one({"_id": _id})) and RM.hot_view(RM.BOARD, h),
                )  # fmt: skip
                for _id in ids.values()
            }

        before = page()
        doomed = [ids["old_equal"], ids["old_ahead"]]
        sizes = sum(len(bson.encode(db[RM.BOARD_HOT].find_one({"_id": i}))) for i in doomed)

        freed = housekeeping.prune_hot(db, days=3)

        left = {d["_id"] for d in db[RM.BOARD_HOT].find({}, {"_id": 1})}
        assert left == set(ids.values()) - set(doomed)
        assert (freed.selected, freed.removed, freed.documents) == (2, 2, 2)
        assert freed.bytes == sizes and freed.files == 0
        assert freed.detail["kept_lake_behind"] == 2  # old_behind, old_no_lake
        assert page() == before  # the page shows exactly what it showed
        assert freed.line().startswith("hot           freed 2 documents, 0 files, ")

        again = housekeeping.prune_hot(db, days=3)  # nothing left to free
        assert (again.selected, again.documents, again.bytes) == (0, 0, 0)
        db[RM.STATE].delete_many({})
        assert housekeeping.prune_hot(db, days=3).detail["note"].startswith("no replay clock")
    finally:
        db.client.drop_database(db.name)
