"""MongoDB at the edges: one client per process, a liveness probe, idempotent upserts.

Everything here stays inside what both MongoDB 7 and FerretDB v1 support.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from pymongo import MongoClient, UpdateOne
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


def upsert_many(
    db: Database, collection: str, docs: Iterable[Mapping[str, Any]], key: str = "_id"
) -> int:
    """Upsert documents by ``key`` (replace-set semantics); return how many were sent."""
    ops = [
        UpdateOne({key: d[key]}, {"$set": {k: v for k, v in d.items() if k != "_id"}}, upsert=True)
        for d in docs
    ]
    if ops:
        db[collection].bulk_write(ops, ordered=False)
    return len(ops)
