"""The MongoDB edge against the real FerretDB: chunked bulk writes and whole-document replace."""

from __future__ import annotations

import pytest
from pymongo import UpdateOne

from pipelines.stack import mongo

pytestmark = pytest.mark.integration


def test_bulk_updates_of_many_existing_documents_return(db, unique) -> None:
    """FerretDB v1.24 never answers an update command of >= 100 ops on existing documents;
    bulk_write() chunks them, so 250 return."""
    coll = db[f"bulk_{unique}"]
    coll.insert_many([{"_id": i, "v": 0} for i in range(250)])
    mongo.bulk_write(coll, [UpdateOne({"_id": i}, {"$set": {"v": i}}) for i in range(250)])
    assert sum(d["v"] for d in coll.find()) == sum(range(250))  # every update applied
    coll.drop()
