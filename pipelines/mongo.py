"""MongoDB at the edges: one client per process, a liveness probe, idempotent upserts.

Everything here stays inside what both MongoDB 7 and FerretDB v1 support.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import orjson
from pymongo import MongoClient, ReplaceOne
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
            f"MongoDB at {settings.mongo.safe_uri} does not answer ({exc.__class__.__name__}); "
            f"run `make stack-up` (env {settings.env}) or fix mongo.uri"
        ) from exc
    return client[settings.mongo.database]


# FerretDB v1.24 (SQLite) can stop answering, for good, an update command of a few hundred
# operations on existing documents (measured: 100 ops take 0.03 s, 500 never return and the
# server needs a restart). Every bulk write goes through bulk_write() below, in chunks well
# under that; MongoDB does not mind.
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


# FerretDB v1.24 (SQLite) pushes only ``{_id: <string or ObjectId>}`` filters down to SQLite
# (with the index fix of provision.FERRETDB_PATCHES: 0.3-0.7 ms a lookup, replace or delete at
# any collection size). Every other filter, ``$in`` included, is evaluated in FerretDB over the
# whole collection (measured: ~140 us a flight document, so 4.7 s for 33,660). So every hot path
# addresses documents by ``_id`` one at a time; MongoDB gets one ``$in`` query instead.
IN_CHUNK = 10_000


_FERRETDB: dict[Any, bool] = {}


def is_ferretdb(collection: Collection) -> bool:
    """True when ``collection`` is served by FerretDB (its buildInfo has ``ferretdbVersion``)."""
    client = collection.database.client
    address = client.address  # selects the server
    if address not in _FERRETDB:
        _FERRETDB[address] = "ferretdbVersion" in client.admin.command("buildInfo")
    return _FERRETDB[address]


def find_by_ids(collection: Collection, ids: list[Any], projection: Any = None) -> list[dict]:
    """Documents whose ``_id`` is in ``ids`` (missing ones are skipped)."""
    found: list[dict] = []
    if not ids:
        return found
    if is_ferretdb(collection):
        for key in ids:
            doc = collection.find_one({"_id": key}, projection)
            if doc is not None:
                found.append(doc)
        return found
    for i in range(0, len(ids), IN_CHUNK):
        found += collection.find({"_id": {"$in": ids[i : i + IN_CHUNK]}}, projection)
    return found


def replace_docs(collection: Collection, docs: Iterable[Mapping[str, Any]]) -> int:
    """Replace documents by ``_id``, inserting the new ones (the last version of a key wins);
    idempotent. Return how many were written."""
    latest = {d["_id"]: d for d in docs}
    ops = [ReplaceOne({"_id": key}, doc, upsert=True) for key, doc in latest.items()]
    bulk_write(collection, ops)
    return len(ops)


# FerretDB v1 stores a document as typed JSON and decodes every value of it on read: a year of
# dashboard KPIs as 365 documents of arrays reads in 9.7 s, the same values packed as one JSON
# string per document in 0.28 s (measured). Read models that are read whole (the hour board, the
# daily KPI extract) are therefore stored packed.
def pack(value: Any) -> str:
    """``value`` as compact JSON, keys sorted (the same value always packs the same);
    datetimes as ISO UTC (naive ones are UTC)."""
    options = orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z | orjson.OPT_SORT_KEYS
    return orjson.dumps(value, option=options).decode()


def unpack(text: str, datetimes: Iterable[str] = ()) -> Any:
    """Inverse of :func:`pack`: values under the keys ``datetimes`` (single values or lists)
    come back as aware UTC datetimes."""
    return _restore(orjson.loads(text), frozenset(datetimes))


def _restore(value: Any, keys: frozenset[str]) -> Any:
    if isinstance(value, list):
        return [_restore(v, keys) for v in value]
    if isinstance(value, dict):
        return {k: _datetime(v) if k in keys else _restore(v, keys) for k, v in value.items()}
    return value


def _datetime(value: Any) -> Any:
    if isinstance(value, list):
        return [_datetime(v) for v in value]
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def columns(rows: list[Mapping[str, Any]], names: Iterable[str]) -> dict[str, list[Any]]:
    """Rows as ``{column: [values]}`` (the packed tables' layout)."""
    return {n: [r.get(n) for r in rows] for n in names}


def rows_of(table: Mapping[str, list[Any]]) -> list[dict[str, Any]]:
    """Inverse of :func:`columns`."""
    names = list(table)
    return [dict(zip(names, values, strict=True)) for values in zip(*table.values(), strict=True)]


@dataclass
class BulkStats:
    matched: int = 0
    upserted: int = 0
    modified: int = 0
