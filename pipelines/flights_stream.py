"""``flights_stream``: Kafka flight events -> Structured Streaming -> MongoDB serving model.

Each micro-batch: parse and validate the events (refused ones go to ``rejects``), merge them
into one update per flight, enrich with reference data and the origin's weather at the
scheduled hour, merge into ``flights`` and ``flights_by_hour`` (order-independent), then
recompute the KPI documents of every local date (and route-month) the batch touched. The
checkpoint on disk makes Kafka offsets advance only after a batch has been written; a batch
replayed after a crash rewrites the same documents.

Trigger ``availableNow`` (cron: drain what is there, then stop) or a processing-time interval
such as ``2s`` (a long-lived real-time job).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import structlog
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from . import mongo, readmodels, serving, transform
from .config import Settings
from .exceptions import ConfigError
from .spark import build_session

log = structlog.get_logger(__name__)

JOB = "flights_stream"


@dataclass
class StreamResult:
    batches: int = 0
    rows_in: int = 0
    accepted: int = 0
    rejected: int = 0
    flights_upserted: int = 0
    kpi_docs: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def process_batch(
    spark: SparkSession, settings: Settings, batch: DataFrame, batch_id: int
) -> dict[str, int]:
    """Write one micro-batch of raw Kafka rows into the serving model; return its counts."""
    db = mongo.database(settings)
    events = transform.parse_events(batch).persist()
    rows_in = events.count()
    if rows_in == 0:
        events.unpersist()
        return {"rows_in": 0, "accepted": 0, "rejected": 0, "flights": 0}
    rejects = serving.rejects_from(
        events, JOB, ["kafka_topic", "kafka_partition", "kafka_offset"], "raw"
    )
    serving.write_rejects(db, rejects)

    ok = events.where(F.col("reject_reason").isNull())
    updates = transform.flight_updates(ok).persist()
    steps: dict[str, float] = {}
    with serving.write_lock(settings):
        with _timed(steps, "enrich"):
            hours = updates.select("origin", "sched_hour_utc").distinct().collect()
            weather = serving.weather_frame(
                spark, settings, [readmodels.hour_key(r.origin, r.sched_hour_utc) for r in hours]
            )
            refs = serving.reference_frames(spark, settings)
            enriched = transform.enrich(updates, *refs, weather)
            rows = [r.asDict(recursive=True) for r in enriched.toLocalIterator()]
        with _timed(steps, "flights"):
            touched = serving.upsert_flights(db, rows)
        with _timed(steps, "kpis"):
            kpis = serving.recompute_kpis(spark, settings, {d["date"] for d in touched})
    offsets = [  # a list: topic names hold dots, which BSON keys may not
        {"topic": r.kafka_topic, "partition": r.kafka_partition, "offset": r.last}
        for r in events.groupBy("kafka_topic", "kafka_partition")
        .agg(F.max("kafka_offset").alias("last"))
        .orderBy("kafka_topic", "kafka_partition")
        .collect()
    ]
    newest = ok.agg(F.max("event_time")).first()[0]
    counts = {
        "rows_in": rows_in,
        "accepted": rows_in - len(rejects),
        "rejected": len(rejects),
        "flights": len(touched),
    }
    serving.set_state(db, JOB, newest, last_batch_id=batch_id, last_batch=counts, offsets=offsets)
    updates.unpersist()
    events.unpersist()
    log.info("flights_stream.batch", batch_id=batch_id, **counts, kpi_docs=kpis,
             seconds={k: round(v, 2) for k, v in steps.items()})  # fmt: skip
    return counts | {f"kpi_{k}": v for k, v in kpis.items()}


@contextmanager
def _timed(steps: dict[str, float], name: str) -> Iterator[None]:
    started = time.monotonic()
    try:
        yield
    finally:
        steps[name] = time.monotonic() - started


def _trigger(trigger: str) -> dict[str, object]:
    if trigger == "availableNow":
        return {"availableNow": True}
    if m := re.fullmatch(r"(\d+)\s*(s|sec|seconds|m|min|minutes)", trigger.strip()):
        unit = "seconds" if m[2].startswith("s") else "minutes"
        return {"processingTime": f"{m[1]} {unit}"}
    raise ConfigError(f"trigger '{trigger}' is neither 'availableNow' nor an interval like '2s'")


def run(
    settings: Settings,
    trigger: str = "availableNow",
    max_offsets_per_trigger: int | None = 200_000,
    checkpoint: Path | None = None,
    timeout_s: float | None = None,
) -> StreamResult:
    """Run the stream with ``trigger`` until it has drained (availableNow), ``timeout_s``
    passes, or it is interrupted."""
    spark = build_session(settings, JOB)
    serving.ensure_indexes(mongo.database(settings))
    checkpoint = checkpoint or settings.resolve(settings.paths.checkpoints) / JOB
    result = StreamResult()

    def on_batch(batch: DataFrame, batch_id: int) -> None:
        counts = process_batch(spark, settings, batch, batch_id)
        result.batches += 1
        result.rows_in += counts["rows_in"]
        result.accepted += counts["accepted"]
        result.rejected += counts["rejected"]
        result.flights_upserted += counts["flights"]
        for k, v in counts.items():
            if k.startswith("kpi_"):
                result.kpi_docs[k[4:]] = result.kpi_docs.get(k[4:], 0) + v

    reader = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", settings.kafka.bootstrap_servers)
        .option("subscribe", settings.kafka.topic("flights").name)
        .option("startingOffsets", "earliest")
        .option("failOnDataLoss", "false")
    )
    if max_offsets_per_trigger:
        reader = reader.option("maxOffsetsPerTrigger", max_offsets_per_trigger)
    t0 = time.monotonic()
    query = (
        reader.load()
        .writeStream.foreachBatch(on_batch)
        .option("checkpointLocation", str(checkpoint))
        .trigger(**_trigger(trigger))
        .queryName(JOB)
        .start()
    )
    try:
        query.awaitTermination(timeout_s)
    finally:
        if query.isActive:
            query.stop()
    result.seconds = time.monotonic() - t0
    log.info("flights_stream.done", **asdict(result))
    return result
