"""MongoDB at the edges: one client per process, a liveness probe, chunked bulk writes, the
jobs' state.

Everything here stays inside what both MongoDB 7 and FerretDB v1 support.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import pymongo
from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import PyMongoError

from pipelines.core.config import Settings
from pipelines.core.exceptions import ServiceUnavailableError


@lru_cache(maxsize=8)
def _client(uri: str, socket_timeout_ms: int | None = None) -> MongoClient:
    return MongoClient(uri, serverSelectionTimeoutMS=5000, appname="tarmac", tz_aware=True,
                       socketTimeoutMS=socket_timeout_ms)  # fmt: skip


def ping(settings: Settings, timeout_ms: int = 1000) -> bool:
    """True when the server answers ``ping`` (a client of its own, closed at once: the
    stack's liveness checks). To use the database after, :func:`database` with its
    ``timeout_ms`` probes and connects in one ping."""
    try:
        with MongoClient(settings.mongo.uri, serverSelectionTimeoutMS=timeout_ms) as client:
            client.admin.command("ping")
        return True
    except PyMongoError:
        return False


@dataclass(frozen=True)
class Mongo:
    """The serving database of one environment (built once, :meth:`of`): what the writers
    take instead of the whole settings. Picklable (strings only), so the executors' sinks
    get it as is and open their own clients."""

    uri: str
    name: str  # the database
    safe_uri: str  # the URI without its password, for messages
    env: str

    @classmethod
    def of(cls, settings: Settings) -> Mongo:
        m = settings.mongo
        return cls(m.uri, m.database, m.safe_uri, settings.env)

    def __repr__(self) -> str:
        return f"Mongo({self.safe_uri!r}, {self.name!r})"

    def database(
        self, timeout_ms: int | None = None, socket_timeout_ms: int | None = None
    ) -> Database:
        """The database (the process's client), once it answered a ``ping``; raises a clear
        error when unreachable. ``timeout_ms``: give up after that rather than the client's
        5 s (a quick probe: the ledger, the page, ``service status``). ``socket_timeout_ms``:
        a client whose every request gives up after that (None: waits; the soak's, so a
        server that stops answering ends it with that error)."""
        client = _client(self.uri, socket_timeout_ms)
        try:
            with pymongo.timeout(timeout_ms / 1000 if timeout_ms is not None else None):
                client.admin.command("ping")
        except PyMongoError as exc:
            raise ServiceUnavailableError(
                f"MongoDB at {self.safe_uri} does not answer ({exc.__class__.__name__}); "
                f"run `make stack-up` (env {self.env}) or fix mongo.uri"
            ) from exc
        return client[self.name]


def database(
    settings: Settings, timeout_ms: int | None = None, socket_timeout_ms: int | None = None
) -> Database:
    """``Mongo.of(settings).database(...)``: for the edges that hold settings only (the
    command line, the page, the ledger)."""
    return Mongo.of(settings).database(timeout_ms, socket_timeout_ms)


# FerretDB v1.24 (SQLite) stopped answering, for good, an update command of 100 operations on
# existing documents, or two of 50 at once: each statement held one of the database's 100 pool
# connections until the command ended (fixed by provision.FERRETDB_PATCHES, 2). Bulk writes
# still go in chunks of BULK_CHUNK, so that one request holds the server a short time only.
BULK_CHUNK = 50


def bulk_write(collection: Collection, ops: list[Any]) -> None:
    """Unordered bulk write of ``ops`` in chunks of BULK_CHUNK. Nothing is returned: the
    callers count what they sent (the sinks: documents written) or read back what is gone
    (housekeeping); the server's matched / modified counts were summed and never read."""
    for i in range(0, len(ops), BULK_CHUNK):
        collection.bulk_write(ops[i : i + BULK_CHUNK], ordered=False)


# FerretDB v1.24 (SQLite) pushes only ``{_id: <string or ObjectId>}`` filters down to SQLite
# (with the index fix of provision.FERRETDB_PATCHES: 0.3-0.7 ms a lookup at any size); every
# other filter, ``$in`` included, is evaluated over the whole collection. So a read of known
# ids asks for them one at a time on FerretDB, with one ``$in`` on MongoDB.
IN_CHUNK = 10_000
_FERRETDB: dict[Any, bool] = {}


def is_ferretdb(collection: Collection) -> bool:
    """True when ``collection`` is served by FerretDB (its buildInfo has ``ferretdbVersion``)."""
    client = collection.database.client
    address = client.address  # selects the server
    if address not in _FERRETDB:
        _FERRETDB[address] = "ferretdbVersion" in client.admin.command("buildInfo")
    return _FERRETDB[address]


READ_THREADS = 4  # lookups by _id in flight at once (FerretDB decodes on several cores)


def find_by_ids(collection: Collection, ids: list[Any], projection: Any = None) -> list[dict]:
    """Documents whose ``_id`` is in ``ids`` (missing ones are skipped), in the order of ids.
    On FerretDB v1 one ``find_one`` each, :data:`READ_THREADS` at a time (the lookup it answers
    from its ``_id`` index; ``$in`` scans the collection); on MongoDB ``$in`` by chunks."""
    if not ids:
        return []
    if is_ferretdb(collection):

        def one(key: Any) -> dict | None:
            return collection.find_one({"_id": key}, projection)

        if len(ids) <= 2:
            found = [one(k) for k in ids]
        else:
            with ThreadPoolExecutor(min(READ_THREADS, len(ids))) as pool:
                found = list(pool.map(one, ids))
        return [doc for doc in found if doc is not None]
    by_id: dict[Any, dict] = {}
    for i in range(0, len(ids), IN_CHUNK):
        by_id.update(
            (d["_id"], d)
            for d in collection.find({"_id": {"$in": ids[i : i + IN_CHUNK]}}, projection)
        )  # noqa: E501
    return [by_id[k] for k in ids if k in by_id]
