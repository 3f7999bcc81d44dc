"""The MongoDB edge against the real FerretDB: chunked bulk writes and whole-document replace."""

from __future__ import annotations

import pytest
from pymongo import UpdateOne

from pipelines import mongo

pytestmark = pytest.mark.integration


def test_bulk_updates_of_many_existing_documents_return(db, unique) -> None:
    """FerretDB v1.24 never answers an update command of >= 100 ops on existing documents;
    bulk_write() chunks them, so 250 return."""
    coll = db[f"bulk_{unique}"]
    coll.insert_many([{"_id": i, "v": 0} for i in range(250)])
    stats = mongo.bulk_write(coll, [UpdateOne({"_id": i}, {"$set": {"v": i}}) for i in range(250)])
    assert stats.matched == 250
    assert sum(d["v"] for d in coll.find()) == sum(range(250))
    coll.drop()


def test_replace_docs_is_idempotent_and_last_version_wins(db, unique) -> None:
    coll = db[f"replace_{unique}"]
    docs = [{"_id": i, "v": i} for i in range(120)]
    assert mongo.replace_docs(coll, docs) == 120
    assert mongo.replace_docs(coll, docs + [{"_id": 5, "v": -5}]) == 120
    assert coll.count_documents({}) == 120
    assert coll.find_one({"_id": 5})["v"] == -5
    assert len(mongo.find_by_ids(coll, [1, 2, 999])) == 2
    coll.drop()


def test_pack_round_trips_rows_and_dates_and_is_canonical() -> None:
    from datetime import UTC, datetime

    rows = [{"b": 1, "a": datetime(2013, 3, 10, 7, tzinfo=UTC), "c": None, "w": {"x": 1.5}}]
    text = mongo.pack(rows)
    assert mongo.unpack(text, ["a"]) == rows
    assert mongo.pack([{"w": {"x": 1.5}, "c": None, "a": rows[0]["a"], "b": 1}]) == text
    naive = [{**rows[0], "a": datetime(2013, 3, 10, 7)}]
    assert mongo.pack(naive) == text  # naive datetimes are UTC
    table = mongo.columns(rows, ["b", "c"])
    assert table == {"b": [1], "c": [None]} and mongo.rows_of(table) == [{"b": 1, "c": None}]
