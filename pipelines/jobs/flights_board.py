"""The live board of ``flights_stream``: an event on the duty manager's board within a second.

A stateless query of its own (its own checkpoint, ``<checkpoints>/flights_stream.board``) over
the flight events topic, beside the lake path. It is the hot path: an hour's KPI row of the hot
path is derived from its board bucket when read (``readmodels.hour_row``). Each micro-batch, on
the executors, without reading the lake and without a state store:

1. parse and validate the events (``flight_state.parse_events``; refused ones are left to the
   lake path, which records them exactly once);
2. make each event the flight it describes (one event merged alone: its static fields, the
   actual times it knows, its status rank, its event time as the last one), derived and enriched
   from the frames the driver holds (:class:`~.enrichment.Enrichment`), as the lake path
   derives and enriches its clean flights (:func:`board_events`);
3. fold the batch's flights per board bucket and field (:func:`fold`) and raise each known
   field of each flight with ``$max`` in the bucket's hot document
   (``flights_by_hour_hot.<id>.flights.<slot key>.<field>``; the lake path writes
   ``flights_by_hour``), by ``_id``, one update per bucket. The batch is one partition (one
   task): a document has one writer at a time (FerretDB v1.24 loses concurrent updates of one
   document, ``readmodels.HOT_OF``).

Why ``$max`` is exact: the lake path's merge of a flight's events (``flight_state.merge_events``)
is a semilattice join, field by field: a static field is the same in every event of a flight, an
actual time and the status rank only grow, the last event time is the largest. ``$max`` of each
field over the events is that join, so any order, duplicate, replay after a crash or split into
batches leaves the same map, and the map holds exactly the lake path's merged flight. The
fields derived from the rank (status, cancelled), the bucket's ``n`` and ``version`` are derived
when read (``readmodels.hot_board``), so a reader sees the lake path's document for the same
events. FerretDB v1.24 accepts ``$max`` on dotted paths and dates, upserting
(``../shared/design/realtime-facts.md``); it does not accept array filters, hence the map.

Why no state store: the hour KPIs used to be a second hot query, the events merged into Spark's
state of their buckets (``transformWithState``, RocksDB) and each changed bucket's row rewritten.
Its micro-batch cost 2.8 to 3.4 s on 2 cores; in a process of its own at ``nice`` 5 (so that it
did not slow this query 3 to 5 times), an event reached its hour's row p50 18.8 s, p95 27.0 s
in the latency bench, against 4.8 / 7.5 s for its board bucket. An hour's KPIs are a function
of its bucket's flights alone, and the bucket holds them: the reader derives the row from it
(``readmodels.hour_row``), so the hour's row moves with the board, at no cost to the stream.

Measured on 2 cores: a micro-batch of ~20 events takes 0.4 to 0.55 s alone. In the latency
bench (2,000 events at 20/s, the lake path, the weather job, Voila and Chromium beside it, and
other sessions' tests on the machine: load average 8 to 17) p50 1.33 s for ~40 events, of
which Spark's own phases (its progress's ``durationMs``, logged with each batch) p50: offsets'
log 100 ms, commit 120 ms, planning 72 ms; an event reached its board bucket, and so its
hour's row, p50 3.5 s, p95 6.2 s (``bench/latency.py``). Measured again on 2026-12-06 with
nothing else running, from the event's send to Kafka (the figures above count from its
``produced_at``, floored to the second): a batch p50 0.32 s; an event on its board p50 0.92 s,
p95 1.80 to 2.73 s in four runs, the slow batches (1 to 1.9 s) in the seconds when the weather
job starts beside the lake path's refresh.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import structlog
from pyspark.sql import DataFrame, Row
from pyspark.sql import functions as F

from pipelines.clients.mongo import Mongo
from pipelines.clients.spark import use_pool
from pipelines.core import faults
from pipelines.jobs.enrichment import Enrichment
from pipelines.jobs.stream_health import batch_record, kafka_lag
from pipelines.serving import documents, sinks
from pipelines.serving.readmodels import BOARD_HOT, BOARD_TOP, FLIGHT_FIELDS, RANK_FIELDS, slot_key
from pipelines.transform import flight_state

log = structlog.get_logger(__name__)

KNOWN = tuple(f for f in FLIGHT_FIELDS if f not in RANK_FIELDS)  # what the map holds
STATE_KEY = "hot"  # pipeline_state.flights_stream.<this>: the board's batches (the page follows)
# the buckets each of the last batches raised, in the batch record (``recent``): a page that
# polls every second or two re-reads only those (``dashboard.live.touched``)
RECENT_BATCHES = 16

# the board query's Kafka consumers: a cached consumer keeps a fetch in flight at the end of the
# log, which the broker holds for fetch.max.wait.ms (Kafka's default 500 ms) before the next
# micro-batch's own fetch can go out (SPARK-44012 shows "read 1 records, taking 504 ms"):
# reading 20 records/s cost p50 0.38 to 0.51 s a batch, 0.19 to 0.24 s with 10 ms
# (bench/kafka_fetch_wait.py, 2 cores)
KAFKA_FETCH_WAIT_MS = 10


def board_events(accepted: DataFrame, enrichment: tuple[DataFrame, ...]) -> DataFrame:
    """Accepted events -> one row per event: the flight it alone describes, derived and
    enriched as the lake path's clean flights (``flight_state.derive`` and ``enrich``), with
    its bucket's :data:`~pipelines.serving.readmodels.BOARD_TOP` fields (``_id`` among them)."""
    one = flight_state.with_rank(accepted).select(
        *(c for c in flight_state.MERGED_FIELDS if c != "last_event_time"),
        F.col("event_time").alias("last_event_time"),
    )
    clean = flight_state.enrich(flight_state.derive(one), *enrichment)
    return clean.select(
        documents.hour_key("origin", "sched_hour_utc").alias("_id"),  # BOARD_TOP
        "origin",
        F.col("sched_hour_utc").alias("hour_utc"),
        "date",
        *KNOWN,
    )


def fold(rows: Iterable[dict[str, Any]]) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """:func:`board_events` rows (dicts) -> per bucket ``_id``: its top-level fields and the
    largest known value of each field of each flight, by its path in the hot board document
    (``flights.<slot key>.<field>``, a weather field one level deeper). Unknown (None)
    values are left out: ``$max`` never erases a known field."""
    buckets: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for row in rows:
        top, maxes = buckets.setdefault(
            row["_id"], ({k: row[k] for k in BOARD_TOP if k != "_id"}, {})
        )
        base = f"flights.{slot_key(row['flight_key'])}"
        for name in KNOWN:
            value = row.get(name)
            fields = value.items() if isinstance(value, dict) else [("", value)]
            for sub, v in fields:
                if v is not None:
                    path = f"{base}.{name}.{sub}" if sub else f"{base}.{name}"
                    maxes[path] = flight_state.known_max(maxes.get(path), v)
    return buckets


def operations(buckets: dict[str, tuple[dict[str, Any], dict[str, Any]]], now: datetime) -> list:
    """One ``UpdateOne`` by ``_id`` per bucket of :func:`fold`: its top fields ``$set`` (the
    same in every event of the bucket), its flights' fields and its ``updated_at`` raised
    with ``$max``, upserting."""
    from pymongo import UpdateOne

    return [
        UpdateOne(
            {"_id": _id}, {"$set": top, "$max": {**maxes, "updated_at": now}}, upsert=True
        )  # fmt: skip
        for _id, (top, maxes) in sorted(buckets.items())
    ]


def _write_partition(
    rows: Iterator[Row], uri: str, database: str, now: datetime
) -> Iterator[tuple[int, datetime | None, list[str]]]:
    from pymongo import MongoClient

    from pipelines.clients.mongo import bulk_write

    events = [row.asDict(recursive=True) for row in rows]
    buckets = fold(events)
    ops = operations(buckets, now)
    if ops:
        with MongoClient(uri, serverSelectionTimeoutMS=10_000, appname="tarmac-board") as client:
            half = len(ops) // 2
            bulk_write(client[database][BOARD_HOT], ops[:half])
            faults.point("board.partial_write")  # tests: a crash with half the buckets raised
            bulk_write(client[database][BOARD_HOT], ops[half:])
    newest = max((e["last_event_time"] for e in events if e["last_event_time"]), default=None)
    yield len(events), newest, sorted(buckets)


def batch_function(
    store: Mongo,
    enrichment: Enrichment,
    progress: Callable[[], dict[str, Any] | None],
    job: str,
) -> Callable[[DataFrame, int], None]:
    """The live board's ``foreachBatch`` function: one Spark job a micro-batch (read, parse,
    enrich and write in one stage), whose partitions hand the driver their event count, newest
    event time and the buckets they raised; then the batch's health in ``pipeline_state``
    (:data:`STATE_KEY`), with the buckets of the last :data:`RECENT_BATCHES` batches."""
    uri, database = store.uri, store.name
    recent: deque[dict[str, Any]] = deque(maxlen=RECENT_BATCHES)  # this run's batches only
    lag = kafka_lag(progress)

    def on_batch(accepted: DataFrame, batch_id: int) -> None:
        use_pool(accepted.sparkSession, "board")  # the next free task slot is the board's
        started = time.monotonic()
        now = datetime.now(UTC).replace(tzinfo=None)
        rows = board_events(accepted, enrichment.frames()).coalesce(1)  # one writer
        parts = rows.rdd.mapPartitions(
            lambda part: _write_partition(part, uri, database, now)
        ).collect()
        events = sum(p[0] for p in parts)
        newest = max((p[1] for p in parts if p[1] is not None), default=None)
        recent.append({"batch_id": batch_id, "buckets": sorted({b for p in parts for b in p[2]})})
        health = batch_record(batch_id, events, lag, started) | {"recent": list(recent)}
        sinks.set_state(store, job, newest, **{STATE_KEY: health})
        # the previous batch's phases as Spark timed them (latestOffset, walCommit, addBatch:
        # this function, commitOffsets...): what a micro-batch costs besides its own work
        phases = (progress() or {}).get("durationMs")
        log.info("flights_board.batch", batch_id=batch_id, events=events,
                 seconds=health["seconds"], previous_ms=phases)  # fmt: skip
        faults.point("board.before_commit")  # its offsets are committed after this

    return on_batch
