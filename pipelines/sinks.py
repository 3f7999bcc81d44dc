"""Spark -> MongoDB sinks: idempotent upserts run inside each partition (on the executors)."""

from __future__ import annotations

from collections.abc import Iterator

from pyspark.sql import DataFrame, Row

from .config import Settings


def _replace_partition(rows: Iterator[Row], uri: str, database: str, collection: str) -> None:
    from pymongo import MongoClient

    from .mongo import replace_docs

    docs = [row.asDict(recursive=True) for row in rows]
    if docs:
        with MongoClient(uri, serverSelectionTimeoutMS=10_000) as client:
            replace_docs(client[database][collection], docs)


def upsert(df: DataFrame, settings: Settings, collection: str) -> None:
    """Write every row of ``df`` as the whole document of its ``_id`` (idempotent)."""
    uri, db = settings.mongo.uri, settings.mongo.database
    df.foreachPartition(lambda rows: _replace_partition(rows, uri, db, collection))
