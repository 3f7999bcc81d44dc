"""The MongoDB edge against the real FerretDB: chunked bulk writes and whole-document replace."""

from __future__ import annotations

import pymongo
import pytest
from pymongo import UpdateOne

from pipelines.clients import mongo

pytestmark = pytest.mark.integration


def test_one_update_command_of_300_statements_returns(stack, unique) -> None:
    """The fix of ``provision.FERRETDB_PATCHES`` (2): FerretDB v1.24 kept every statement's
    rows and pool connection until its ``update`` command ended, so 100 statements on existing
    documents (or two commands of 50 at once) held the database's whole pool and never
    returned, with every later request on that database. Without the fix this command times
    out (measured: 300 statements, no answer in 15 s); with it, 0.1 s. A database of its own:
    a hang would not take the session's with it."""
    client = pymongo.MongoClient(stack.mongo.uri, socketTimeoutMS=60_000)
    try:
        coll = client[f"t_update_{unique}"]["docs"]
        coll.insert_many([{"_id": f"k{i}", "v": 0} for i in range(300)])
        ops = [UpdateOne({"_id": f"k{i}"}, {"$max": {"v": i}}) for i in range(300)]
        done = coll.bulk_write(ops, ordered=False)
        assert (done.matched_count, done.modified_count) == (300, 299)
        assert coll.find_one({"_id": "k299"})["v"] == 299  # the server still answers
    finally:
        client.drop_database(f"t_update_{unique}")
        client.close()


def test_bulk_updates_of_many_existing_documents_return(db, unique) -> None:
    """bulk_write() sends updates in chunks of ``BULK_CHUNK`` (50): 250 return, every one
    applied."""
    coll = db[f"bulk_{unique}"]
    coll.insert_many([{"_id": i, "v": 0} for i in range(250)])
    mongo.bulk_write(coll, [UpdateOne({"_id": i}, {"$set": {"v": i}}) for i in range(250)])
    assert sum(d["v"] for d in coll.find()) == sum(range(250))  # every update applied
    coll.drop()
