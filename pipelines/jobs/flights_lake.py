"""The lake path of ``flights_stream``, the source of truth (``jobs/flights_stream.py`` wires it).

Each micro-batch (every ``trigger``, or once with ``availableNow``), on the executors:
:func:`process_batch` parses and validates the events, appends the accepted ones to
``raw/flight_events`` and the refused ones (with their reasons) to ``raw/rejects`` and the
``rejects`` collection, both exactly once (Delta idempotent appends keyed on the query id and
the batch id); then the :class:`Publisher` thread recomputes the clean flights and KPIs of the
local dates the batches touched from the raw log and publishes them (``serving/publish.refresh``:
the board buckets and ``kpi_hourly`` rows as their lake fields, the day, month and profile
documents). Kafka offsets advance (checkpoint) only after the batch function returned, so a
batch replayed after a crash appends nothing twice and rewrites the same partitions and
documents. A batch whose parsed rows do not cover its planned Kafka offsets fails before it
writes anything (``ReconcileError``, ``core/reconcile.py``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from pipelines.clients import kafka_io
from pipelines.clients.mongo import Mongo
from pipelines.clients.spark import use_pool
from pipelines.core import faults, reconcile
from pipelines.core.config import Settings
from pipelines.core.exceptions import TarmacError
from pipelines.jobs.stream_health import batch_record, kafka_lag
from pipelines.lake import recompute, tables
from pipelines.lake.tables import Lake
from pipelines.serving import publish, sinks
from pipelines.transform import flight_state, rejects

log = structlog.get_logger(__name__)

JOB = "flights_stream"
# real time, the lake path sharing its application with the hot path: KPIs refreshed at most
# this often, so the hot micro-batches keep the cores. The lake path of a long-lived stream runs
# in a process of its own (``path_process``) at a lower priority, which the kernel's scheduler
# enforces: there it refreshes as soon as a batch has touched dates (0 s). Measured in the
# latency bench: the 10 s wait was 10 s of every event's way to its day document.
PUBLISH_EVERY_S = 10.0
# rounds in a row a refresh may lose to other writers' commits before the stream fails: each
# round already retried its steps (``tables.retrying``); the dates wait for the next round
CONFLICT_ROUNDS = 10
COMPACT_EVERY = 50  # batches between compactions of the raw events of the dates they touch


@dataclass
class StreamResult:
    batches: int = 0
    rows_in: int = 0
    accepted: int = 0
    rejected: int = 0
    dates: int = 0  # local dates touched (summed over the batches)
    refreshes: int = 0  # runs of the publisher (clean flights, KPIs, profile)
    seconds: float = 0.0
    steps: dict[str, float] = field(default_factory=dict)


def process_batch(
    lake: Lake,
    store: Mongo,
    batch: DataFrame,
    batch_id: int,
    app_id: str,
    lag: Callable[[], int | None] = lambda: None,
    ranges: list[reconcile.OffsetRange] | None = None,
    gaps: str | None = None,
) -> dict[str, Any]:
    """Write one micro-batch of raw Kafka rows into the lake and the serving model; return
    its counts. ``app_id`` (the stream query's id) makes the lake appends exactly-once.
    ``ranges``: the offsets the batch planned, which its parsed rows must cover before anything
    is written (``reconcile.check_batch``; ``gaps``: why offsets may be missing)."""
    started = time.monotonic()
    if faults.active("stream.before_count", "drop"):  # tests: rows lost before the count
        batch = batch.where(F.col("offset") % 10 != 9)
    events = flight_state.parse_events(batch).persist()
    # one small job for every count the driver needs: per Kafka partition, its rows, rejects,
    # newest accepted event, first and last offset and the local dates it touched
    parts = (
        events.groupBy("kafka_topic", "kafka_partition")
        .agg(
            F.count(F.lit(1)).alias("rows_in"),
            F.min("kafka_offset").alias("first"),
            F.max("kafka_offset").alias("last"),
            F.count("reject_reason").alias("rejected"),
            F.max(F.when(F.col("reject_reason").isNull(), F.col("event_time"))).alias("newest"),
            F.collect_set(F.when(F.col("reject_reason").isNull(), F.col("date"))).alias("dates"),
        )
        .orderBy("kafka_topic", "kafka_partition")
        .collect()
    )
    parsed = [reconcile.PartitionRows(*p[:5]) for p in parts]  # topic .. last offset
    reconcile.check_batch(batch_id, ranges, parsed, gaps)  # nothing written yet; the run ends
    rows_in = sum(p.rows_in for p in parts)
    rejected = sum(p.rejected for p in parts)
    newest = max((p.newest for p in parts if p.newest is not None), default=None)
    if rows_in == 0:
        events.unpersist()
        sinks.set_state(store, JOB, None, lake=batch_record(batch_id, 0, lag, started))
        return {"rows_in": 0, "accepted": 0, "rejected": 0, "dates": 0, "touched": []}
    accepted = events.where(F.col("reject_reason").isNull()).drop("reject_reason")
    # both appends exactly once (Delta's txn), so run again after a conflict (a commit that
    # changed the table's metadata meanwhile: housekeeping's ``delta_log``)
    raw = accepted.withColumn("ingested_at", F.current_timestamp()).withColumn(
        "batch_id", F.lit(batch_id).cast("long"))  # fmt: skip
    tables.retrying(lambda: lake.append(raw, tables.FLIGHT_EVENTS, txn=(app_id, batch_id)),
                    "raw flight events")  # fmt: skip
    faults.point("stream.after_lake_write")
    if rejected:
        tables.retrying(lambda: publish.publish_rejects(
            lake, store, rejects.event_rejects(events, JOB), txn=(f"{app_id}:rejects", batch_id)),
            "rejects")  # fmt: skip
    dates = sorted({d for p in parts for d in p.dates})
    steps: dict[str, float] = {}
    offsets = [  # a list: topic names hold dots, which BSON keys may not
        {"topic": p.kafka_topic, "partition": p.kafka_partition, "offset": p.last} for p in parts
    ]
    events.unpersist()
    result = {"rows_in": rows_in, "accepted": rows_in - rejected, "rejected": rejected,
              "dates": len(dates), "touched": dates}  # fmt: skip
    summary = {k: v for k, v in result.items() if k != "touched"}
    steps["total"] = time.monotonic() - started
    health = batch_record(batch_id, rows_in, lag, started)
    sinks.set_state(store, JOB, newest, last_batch_id=batch_id, last_batch=summary,
                    offsets=offsets, lake=health)  # fmt: skip
    log.info("flights_stream.batch", batch_id=batch_id, **summary,
             seconds={k: round(v, 2) for k, v in steps.items()})  # fmt: skip
    return result | {"steps": steps}


class Publisher:
    """The slow half of the stream, in a thread of the driver: refreshes (``publish.refresh``:
    clean flights, KPI tables and documents, profile) the dates the micro-batches touched while
    the next micro-batches run their fast path (raw append + live board). Dates touched again
    while a refresh runs are refreshed once more after it. A refresh that keeps losing to
    another job's commits on the same dates (a weather run enriching its clean flights; each
    step already retried) leaves its dates for the next round, a few seconds later, up to
    :data:`CONFLICT_ROUNDS` rounds in a row: it recomputes from the raw log, so a later round
    writes the same thing. Measured in the 30-day soak at 720x on 2 cores: weather runs of
    3-4 min beside the stream made one refresh lose five times in a row, which ended the
    stream's lake path (a restart by its supervisor) before this. Any other failure is
    raised in the next batch and when the stream ends. Dates a killed stream left
    unrefreshed are found at start (``recompute.pending_dates``)."""

    def __init__(
        self, lake: Lake, store: Mongo, pending: list[str], horizon: int | None = None,
        interval_s: float = 0,
    ) -> None:  # fmt: skip
        self.lake, self.store, self.horizon, self.interval_s = lake, store, horizon, interval_s
        self.compact: set[str] = set()
        self.dirty: set[str] = set(pending)
        self.cond = threading.Condition()
        self.stopping = False
        self.busy = False
        self.error: BaseException | None = None
        self.refreshes = 0
        self.deferred = 0  # rounds lost to other writers' commits (their dates kept)
        self.steps: dict[str, float] = {}
        self.thread = threading.Thread(target=self._loop, name="tarmac-publisher", daemon=True)
        self.thread.start()

    def add(self, dates: list[str], compact: bool = False) -> None:
        """Refresh ``dates`` soon (``compact``: and bin-pack their raw events after)."""
        self.check()
        with self.cond:
            self.dirty.update(dates)
            if compact:
                self.compact.update(dates)
            self.cond.notify()

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    def _loop(self) -> None:
        use_pool(self.lake.spark, "lake")
        lost = 0  # rounds in a row lost to a commit conflict
        while True:
            with self.cond:
                while not self.dirty and not self.stopping:
                    self.cond.wait()
                done = not self.dirty  # stopping, nothing pending
                if not done:
                    # real time: at most one refresh every interval_s, so the fast path of
                    # the micro-batches keeps the cores (the live board must be fresh first)
                    self.cond.wait_for(lambda: self.stopping, timeout=self.interval_s)
                    dates, self.dirty = sorted(self.dirty), set()
            if done:
                return
            try:
                # the profile with every refresh: it is the dashboard's index of changed days
                steps = publish.refresh(self.lake, self.store, dates, horizon=self.horizon,
                                        inputs=recompute.INPUTS[1:])  # fmt: skip
            except BaseException as exc:  # noqa: BLE001 - raised in the stream's thread
                if tables.is_conflict(exc) and lost + 1 < CONFLICT_ROUNDS:
                    lost += 1
                    self.deferred += 1
                    log.warning("flights_stream.refresh_deferred", dates=len(dates),
                                rounds_lost=lost, error=type(exc).__name__)  # fmt: skip
                    with self.cond:
                        self.dirty.update(dates)
                    time.sleep(min(2.0 * lost, 10.0))  # the other writer ends first
                    continue
                log.error("flights_stream.refresh_failed", dates=len(dates), error=repr(exc))
                self.error = exc
                return
            lost = 0
            self.refreshes += 1
            with self.cond:
                compact, self.compact = sorted(self.compact), set()
            if compact:  # after the refresh: both read the same small files once
                self.lake.compact(tables.FLIGHT_EVENTS, compact)
                log.info("flights_stream.compacted", dates=len(compact))
            for k, v in steps.items():
                self.steps[k] = round(self.steps.get(k, 0.0) + v, 2)
            log.info("flights_stream.refreshed", dates=len(dates),
                     seconds={k: round(v, 2) for k, v in steps.items()})  # fmt: skip

    def close(self, raise_error: bool = True) -> None:
        """Refresh what is still pending, stop the thread, raise its failure if any
        (``raise_error`` False: when another exception is already on its way; the thread
        logged its own)."""
        with self.cond:
            self.stopping = True
            self.cond.notify()
        self.thread.join()
        if raise_error:
            self.check()


def start_lake(
    lake: Lake, settings: Settings, source: DataFrame, checkpoint: str,
    trigger: dict[str, object], publisher: Publisher, result: StreamResult,
    failures: list[TarmacError],
) -> StreamingQuery:  # fmt: skip
    """Start the lake path's query over ``source`` (the Kafka topic of ``settings``, as a
    streaming frame) into ``lake`` and the ``publisher``'s serving database, with
    ``trigger`` (``DataStreamWriter.trigger``'s arguments): raw append, rejects, then the
    publisher's refresh (a Tarmac error raised in a batch also goes to ``failures``: Spark
    raises it wrapped)."""
    started = threading.Event()
    gaps: dict[str, str | None] = {}
    query_id: dict[str, str] = {}
    progress: dict[str, StreamingQuery] = {}
    lag = kafka_lag(lambda: progress["q"].lastProgress if "q" in progress else None)

    def on_batch(batch: DataFrame, batch_id: int) -> None:
        use_pool(lake.spark, "lake")
        started.wait(60)  # the query id is known once start() has returned
        if "why" not in gaps:  # the first batch: the topic exists
            gaps["why"] = kafka_io.offset_gaps(settings, "flights")
        # the checkpoint's offset log, wherever it lives (Hadoop's file systems, like the lake)
        ranges = reconcile.batch_ranges(
            lambda name: lake.files.read_text(f"{checkpoint}/{name}"), batch_id)  # fmt: skip
        try:
            counts = process_batch(lake, publisher.store, batch, batch_id,
                                   f"{JOB}:{query_id['id']}", lag, ranges, gaps["why"])  # fmt: skip
        except TarmacError as exc:
            failures.append(exc)
            raise
        publisher.add(counts["touched"], compact=batch_id % COMPACT_EVERY == COMPACT_EVERY - 1)
        faults.point("stream.before_commit")  # offsets are committed after this returns
        result.batches += 1
        result.rows_in += counts["rows_in"]
        result.accepted += counts["accepted"]
        result.rejected += counts["rejected"]
        result.dates += counts.get("dates", 0)
        for k, v in counts.get("steps", {}).items():
            result.steps[k] = round(result.steps.get(k, 0.0) + v, 2)

    query = (
        source.writeStream.foreachBatch(on_batch)
        .option("checkpointLocation", str(checkpoint))
        .trigger(**trigger)
        .queryName(JOB)
        .start()
    )
    query_id["id"] = query.id  # kept in the checkpoint: the same after a restart
    progress["q"] = query
    started.set()
    return query
