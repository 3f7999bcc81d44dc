"""MongoDB at the edges: one client per process, a liveness probe, idempotent upserts.

Everything here stays inside what both MongoDB 7 and FerretDB v1 support.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pymongo import MongoClient, UpdateOne
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import PyMongoError

from .config import Settings
from .exceptions import ServiceUnavailableError


@lru_cache(maxsize=8)
def _client(uri: str) -> MongoClient:
    return MongoClient(uri, serverSelectionTimeoutMS=5000, appname="tarmac", tz_aware=True)


def ping(settings: Settings, timeout_ms: int = 1000) -> bool:
    """True when the server answers ``ping``."""
    try:
        with MongoClient(settings.mongo.uri, serverSelectionTimeoutMS=timeout_ms) as client:
            client.admin.command("ping")
        return True
    except PyMongoError:
        return False


def database(settings: Settings) -> Database:
    """The serving database of ``settings``; raises a clear error when unreachable."""
    client = _client(settings.mongo.uri)
    try:
        client.admin.command("ping")
    except PyMongoError as exc:
        raise ServiceUnavailableError(
            f"MongoDB at {settings.mongo.uri} does not answer ({exc.__class__.__name__}); "
            f"run `make stack-up` (env {settings.env}) or fix mongo.uri"
        ) from exc
    return client[settings.mongo.database]


# FerretDB v1.24 (SQLite) stops answering an update command of 100 or more operations on
# existing documents (measured: 99 ops take 0.1 s, 100 never return). Every bulk write goes
# through bulk_write() below, in chunks well under that; MongoDB does not mind.
BULK_CHUNK = 50


def bulk_write(collection: Collection, ops: list[Any]) -> BulkStats:
    """Unordered bulk write of ``ops`` in chunks of BULK_CHUNK; return the summed counts."""
    stats = BulkStats()
    for i in range(0, len(ops), BULK_CHUNK):
        res = collection.bulk_write(ops[i : i + BULK_CHUNK], ordered=False)
        stats.matched += res.matched_count
        stats.upserted += res.upserted_count
        stats.modified += res.modified_count
    return stats


# FerretDB v1.24 (SQLite) pushes only ``{_id: value}`` reads down to SQLite: an update,
# replace or delete by ``_id``, and any ``$in``, scans the collection (measured on 33 k flight
# documents: ReplaceOne 0.28 s each, delete_many/find with 5,000 ids in ``$in`` 9-12 s, insert
# of 5,000 documents 1.3 s). So documents are replaced by one big delete + one insert, and read
# back with one big ``$in``: a few scans a batch instead of one per document. On MongoDB these
# are index lookups either way.
IN_CHUNK = 20_000


def find_by_ids(collection: Collection, ids: list[Any], projection: Any = None) -> list[dict]:
    """Documents whose ``_id`` is in ``ids`` (one query per IN_CHUNK ids)."""
    found: list[dict] = []
    for i in range(0, len(ids), IN_CHUNK):
        found += collection.find({"_id": {"$in": ids[i : i + IN_CHUNK]}}, projection)
    return found


def replace_docs(collection: Collection, docs: Iterable[Mapping[str, Any]]) -> int:
    """Replace documents by ``_id`` (insert the new ones): one delete, then one insert.

    Idempotent; not atomic: a reader may miss a document for the instant between the two
    commands, and a crash between them is repaired by re-running the batch (jobs do).
    """
    latest = {d["_id"]: d for d in docs}  # the last version of a key wins
    items = list(latest.values())
    for i in range(0, len(items), IN_CHUNK):
        chunk = items[i : i + IN_CHUNK]
        collection.delete_many({"_id": {"$in": [d["_id"] for d in chunk]}})
        collection.insert_many(chunk, ordered=False)
    return len(items)


@dataclass
class BulkStats:
    matched: int = 0
    upserted: int = 0
    modified: int = 0


def upsert_many(
    db: Database, collection: str, docs: Iterable[Mapping[str, Any]], key: str = "_id"
) -> int:
    """Upsert documents by ``key`` (replace-set semantics); return how many were sent."""
    ops = [
        UpdateOne({key: d[key]}, {"$set": {k: v for k, v in d.items() if k != "_id"}}, upsert=True)
        for d in docs
    ]
    bulk_write(db[collection], ops)
    return len(ops)
