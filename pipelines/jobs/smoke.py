"""Smoke path: kafka-python -> Kafka -> Spark Structured Streaming -> MongoDB upserts.

Proves the whole stack end to end: ``produce`` sends N JSON messages, ``run`` reads them with
Spark's Kafka source (``availableNow``, checkpoint on disk) and upserts them by ``_id``; a second
``run`` reads nothing new and leaves exactly N documents.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import structlog
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipelines.clients import kafka_io, mongo
from pipelines.clients.spark import build_session, read_kafka
from pipelines.core.config import Settings
from pipelines.jobs.params import SmokeParams
from pipelines.serving import sinks

log = structlog.get_logger(__name__)

COLLECTION: str = SmokeParams.model_fields["collection"].default
MESSAGE_SCHEMA = T.StructType(
    [
        T.StructField("id", T.StringType()),
        T.StructField("seq", T.LongType()),
        T.StructField("tag", T.StringType()),
        T.StructField("sent_at", T.DoubleType()),
    ]
)


@dataclass
class SmokeResult:
    batches: int
    rows_read: int
    documents: int


def produce(settings: Settings, n: int, tag: str | None = None, topic: str | None = None) -> str:
    """Send ``n`` messages tagged ``tag`` to the smoke topic (or ``topic``); return the tag."""
    tag = tag or uuid.uuid4().hex[:12]
    if topic is None:
        kafka_io.ensure_topics(settings, ["smoke"])
        topic = settings.kafka.topic("smoke").name
    else:
        kafka_io.create_topic(settings, topic, partitions=2)
    prod = kafka_io.producer(settings)
    for seq in range(n):
        msg_id = message_id(tag, seq)
        prod.send(
            topic, key=msg_id, value={"id": msg_id, "seq": seq, "tag": tag, "sent_at": time.time()}
        )
    prod.flush()
    prod.close()
    log.info("smoke.produced", topic=topic, n=n, tag=tag)
    return tag


def message_id(tag: str, seq: int) -> str:
    return f"{tag}-{seq:06d}"


def landed(settings: Settings, tag: str, n: int, collection: str = COLLECTION) -> int:
    """How many of the ``n`` messages tagged ``tag`` are documents now (read back by ``_id``)."""
    ids = [message_id(tag, seq) for seq in range(n)]
    coll = mongo.database(settings)[collection]
    return len(mongo.find_by_ids(coll, ids, {"_id": 1}))


def parse(raw: DataFrame) -> DataFrame:
    """Kafka rows -> one row per message, keyed ``_id``, with its Kafka coordinates."""
    msg = F.from_json(F.col("value").cast("string"), MESSAGE_SCHEMA)
    return raw.select(msg.alias("m"), "partition", "offset").select(
        F.col("m.id").alias("_id"),
        F.col("m.seq").alias("seq"),
        F.col("m.tag").alias("tag"),
        F.col("m.sent_at").alias("sent_at"),
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
    )


def run(
    settings: Settings,
    topic: str | None = None,
    collection: str = COLLECTION,
    checkpoint: str | Path | None = None,
) -> SmokeResult:
    """Drain the smoke topic into MongoDB once (``availableNow``) and report what was read."""
    spark = build_session(settings, "smoke")
    topic = topic or settings.kafka.topic("smoke").name
    checkpoint = str(checkpoint or f"{settings.checkpoint_root}/smoke")  # a path or any URI
    stats = {"batches": 0, "rows": 0}
    store = mongo.Mongo.of(settings)

    def write_batch(batch: DataFrame, batch_id: int) -> None:
        batch = batch.persist()
        n = batch.count()
        sinks.write(batch.where(F.col("_id").isNotNull()), store, collection)
        batch.unpersist()
        stats["batches"] += 1
        stats["rows"] += n
        log.info("smoke.batch", batch_id=batch_id, rows=n)

    query = (
        parse(read_kafka(spark, settings, topic))
        .writeStream.foreachBatch(write_batch)
        .option("checkpointLocation", str(checkpoint))
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()
    documents = store.database()[collection].count_documents({})
    result = SmokeResult(stats["batches"], stats["rows"], documents)
    log.info("smoke.done", **asdict(result))
    return result


def main(settings: Settings, params: SmokeParams) -> dict[str, Any]:
    """The registry's entry: send ``params.messages`` messages, drain them into MongoDB, and
    count how many of them are documents now (rows in, accepted, rejected, like every job)."""
    tag = produce(settings, params.messages, topic=params.topic)
    log.info("smoke.produced", messages=params.messages, tag=tag,
             bootstrap=settings.kafka.bootstrap_servers)  # fmt: skip
    checkpoint = params.checkpoint or None
    result = run(settings, params.topic, params.collection, checkpoint)
    n_landed = landed(settings, tag, params.messages, params.collection)
    return {
        "rows_in": params.messages,  # sent; each one landed (accepted) or lost (rejected)
        "accepted": min(n_landed, params.messages),
        "rejected": max(params.messages - n_landed, 0),
        "rows_read": result.rows_read,
        "tag": tag,
        "batches": result.batches,
        "documents_in_collection": result.documents,
    }
