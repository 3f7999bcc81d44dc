"""Spark -> MongoDB sinks: idempotent upserts run inside each partition (on the executors)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pyspark.sql import DataFrame, Row

from .config import Settings


def _upsert_partition(
    rows: Iterator[Row], uri: str, database: str, collection: str, key: str, batch: int
) -> None:
    from pymongo import MongoClient, UpdateOne

    from .mongo import bulk_write

    with MongoClient(uri, serverSelectionTimeoutMS=10_000) as client:
        coll = client[database][collection]
        ops: list[Any] = []
        for row in rows:
            doc = row.asDict(recursive=True)
            ops.append(
                UpdateOne(
                    {key: doc[key]},
                    {"$set": {k: v for k, v in doc.items() if k != "_id"}},
                    upsert=True,
                )
            )
            if len(ops) >= batch:
                bulk_write(coll, ops)
                ops = []
        bulk_write(coll, ops)


def upsert(
    df: DataFrame, settings: Settings, collection: str, key: str = "_id", batch: int = 1000
) -> None:
    """Upsert every row of ``df`` into ``collection`` keyed by ``key`` (idempotent)."""
    uri, db = settings.mongo.uri, settings.mongo.database
    df.foreachPartition(lambda rows: _upsert_partition(rows, uri, db, collection, key, batch))
