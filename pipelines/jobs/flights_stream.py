"""``flights_stream``: Kafka flight events -> two Structured Streaming queries -> MongoDB.

**The lake path** (the source of truth; ``jobs/flights_lake.py``), every ``trigger`` or once with
``availableNow``: raw events appended exactly once to the lake, then the clean flights and KPIs
of the dates they touched recomputed from the raw log and published.

**The hot path** (long-lived runs): the live board (``jobs/flights_board.py``), a query over the
same topic with its own checkpoint, every ``board_trigger``, stateless and never reading the
lake: each event's flight raised with ``$max`` into its board bucket's hot document within
seconds; an hour's KPI row of the hot path is derived from that bucket when read
(``readmodels.hour_row``). Both paths give the same documents for the same events
(``readmodels.resolve`` shows the one that knows more).

``trigger`` ``availableNow`` (a backfill, a test: drain what is there, then stop; the lake path
alone unless ``hot``) or an interval such as ``15s`` (the long-lived service: both paths). A
long-lived run keeps the live board in this process and puts the lake path in a process of its
own at a lower priority (``jobs/path_process.py``: sharing one Spark application, a refresh of
the lake path held the hot path's cores for up to 38 s); otherwise the queries share this
process's application.
This module only wires the queries, waits for them and stops them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import structlog
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from pipelines.clients.mongo import Mongo
from pipelines.clients.spark import build_session, read_kafka
from pipelines.core.config import Settings
from pipelines.core.exceptions import TarmacError, unavailable
from pipelines.jobs import flights_board, flights_lake
from pipelines.jobs.enrichment import Enrichment
from pipelines.jobs.flights_lake import JOB, PUBLISH_EVERY_S, Publisher, StreamResult
from pipelines.jobs.params import StreamParams, trigger_options
from pipelines.jobs.path_process import PathProcess
from pipelines.lake import recompute
from pipelines.lake.tables import Lake
from pipelines.serving import sinks
from pipelines.transform import flight_state

log = structlog.get_logger(__name__)


def _stop(queries: list[StreamingQuery]) -> None:
    for query in queries:
        if query.isActive:
            query.stop()


def kafka_reader(
    spark: SparkSession, settings: Settings, max_offsets: int | None,
    options: dict[str, str] | None = None,
) -> DataFrame:  # fmt: skip
    """The flight events topic as a streaming frame (``clients/spark.read_kafka``)."""
    return read_kafka(spark, settings, settings.kafka.topic("flights").name, max_offsets, options)


BOARD = f"{JOB}.board"  # the live board's query name; its checkpoint is <checkpoint>.board


def _start_board(
    spark: SparkSession, settings: Settings, store: Mongo, checkpoint: str, trigger: str,
    max_offsets: int | None, enrichment: Enrichment,
) -> StreamingQuery:  # fmt: skip
    """Start the live board's query (``jobs/flights_board.py``), named :data:`BOARD`, with its
    checkpoint ``<checkpoint>.board``."""
    wait = {"kafka.fetch.max.wait.ms": str(flights_board.KAFKA_FETCH_WAIT_MS)}
    source = kafka_reader(spark, settings, max_offsets, wait)
    accepted = flight_state.parse_events(source).where(F.col("reject_reason").isNull())
    handle: dict[str, StreamingQuery] = {}

    def progress() -> dict[str, Any] | None:
        return handle["q"].lastProgress if "q" in handle else None

    handle["q"] = (
        accepted.writeStream.foreachBatch(
            flights_board.batch_function(store, enrichment, progress, JOB)
        )
        .outputMode("append")
        .option("checkpointLocation", f"{checkpoint}.board")
        .trigger(**trigger_options(trigger))
        .queryName(BOARD)
        .start()
    )
    return handle["q"]


def run(
    settings: Settings,
    trigger: str = "availableNow",
    max_offsets_per_trigger: int | None = 200_000,
    checkpoint: str | Path | None = None,
    timeout_s: float | None = None,
    hot: bool | None = None,
    board_trigger: str = "500ms",
    lake: bool = True,
    lake_process: bool | None = None,
    stop: threading.Event | None = None,
) -> StreamResult:
    """Run the stream until it has drained (availableNow), ``timeout_s`` passes, ``stop`` is
    set, or it is interrupted: the lake path with ``trigger`` (``lake``), and the hot path
    (``hot``; None = when ``trigger`` is an interval): its live board every ``board_trigger``.
    ``checkpoint`` is the lake path's; the board's is next to it, ``<checkpoint>.board``.
    ``lake_process``: the lake path in a process of its own at a lower priority
    (``jobs/path_process.py``; None = when both paths run long-lived)."""
    store = Mongo.of(settings)
    sinks.ensure_indexes(store)
    checkpoint = str(checkpoint or f"{settings.checkpoint_root}/{JOB}")  # a path or any URI
    realtime = trigger != "availableNow"
    hot = realtime if hot is None else hot
    if lake_process is None:
        lake_process = realtime and hot and lake
    result = StreamResult()
    queries: list[StreamingQuery] = []
    enrichment: Enrichment | None = None
    publisher: Publisher | None = None
    children: list[PathProcess] = []
    t0 = time.monotonic()
    restarts: dict[str, Callable[[], StreamingQuery]] = {}  # the hot path's, by name
    failures: list[TarmacError] = []  # raised inside a batch: Spark wraps them
    try:
        if lake and lake_process:  # first: its JVM starts while this one starts and plans
            children.append(PathProcess(settings, trigger, max_offsets_per_trigger, checkpoint))
        spark = build_session(settings, JOB)
        lakehouse = Lake.of(spark, settings)
        if hot:
            enrichment = Enrichment(lakehouse)
            mode = board_trigger if realtime else "availableNow"

            def start() -> StreamingQuery:
                return _start_board(spark, settings, store, checkpoint, mode,
                                    max_offsets_per_trigger, enrichment)  # fmt: skip

            queries.append(start())
            restarts[BOARD] = start

        if lake and not lake_process:
            interval = PUBLISH_EVERY_S if realtime and hot else 0  # see PUBLISH_EVERY_S
            publisher = Publisher(
                lakehouse,
                store,
                recompute.pending_dates(lakehouse),
                horizon=settings.serving.board_hours,
                interval_s=interval,
            )
            source = kafka_reader(spark, settings, max_offsets_per_trigger)
            queries.append(flights_lake.start_lake(lakehouse, settings, source, checkpoint,
                trigger_options(trigger), publisher, result, failures))  # fmt: skip
        _await(queries, timeout_s, restarts, stop,
               (lambda: [c.check() for c in children]) if children else None)  # fmt: skip
        _stop(queries)
        if publisher is not None:  # the last refresh; its failure is named below like any other
            publisher.close()
    except Exception as exc:  # a service gone mid-batch: say which, not a Spark stack trace
        if failures and not isinstance(exc, TarmacError):
            raise failures[0] from exc  # our own error from inside a batch, with its exit code
        addresses = {"MongoDB": settings.mongo.safe_uri,
                     "Kafka": settings.kafka.bootstrap_servers}  # fmt: skip
        if (named := unavailable(exc, addresses)) is not None:
            raise named from exc
        raise
    finally:
        _stop(queries)
        for child in children:
            _add_counts(result, child.stop())
        if enrichment is not None:
            enrichment.close()
        if publisher is not None and publisher.thread.is_alive():
            publisher.close(raise_error=False)
    if publisher is not None:
        result.refreshes = publisher.refreshes
        for k, v in publisher.steps.items():
            result.steps[k] = round(result.steps.get(k, 0.0) + v, 2)
    result.seconds = time.monotonic() - t0
    log.info("flights_stream.done", **asdict(result))
    return result


def _add_counts(result: StreamResult, counts: dict[str, Any] | None) -> None:
    """The lake process's counts (its ``StreamResult``) added to the driver's ``result``."""
    for key in ("batches", "rows_in", "accepted", "rejected", "dates", "refreshes"):
        setattr(result, key, getattr(result, key) + int((counts or {}).get(key) or 0))
    for k, v in ((counts or {}).get("steps") or {}).items():
        result.steps[k] = round(result.steps.get(k, 0.0) + v, 2)


HOT_RESTARTS = 5  # restarts of the hot query in one run before the job fails


def _await(
    queries: list[StreamingQuery],
    timeout_s: float | None,
    restarts: dict[str, Callable[[], StreamingQuery]] | None = None,
    stop: threading.Event | None = None,
    watch: Callable[[], None] | None = None,
) -> None:
    """Wait until every query has ended (availableNow) or one failed, ``timeout_s`` passed or
    ``stop`` is set; ``watch`` (the child processes' check) raises when the job must end.

    A failed query of the hot path is started again from its checkpoint (``restarts``, by
    query name; the lake path, the source of truth, keeps running meanwhile), after 1, 2,
    4 ... s, at most :data:`HOT_RESTARTS` times in one run: seen on a loaded machine, "Python
    worker failed to connect back" (a Python worker that took over 10 s to start). Any
    other failure ends the job (its supervisor restarts it)."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    failures = 0
    while any(q.isActive for q in queries):
        if watch is not None:
            watch()
        if stop is not None and stop.is_set():
            return
        for i, query in enumerate(queries):
            if query.isActive or query.exception() is None:
                continue
            restart = (restarts or {}).get(query.name)
            if restart is None or failures >= HOT_RESTARTS:
                raise query.exception()
            failures += 1
            log.warning("flights_stream.hot_restarted", query=query.name, attempt=failures,
                        error=str(query.exception())[:300])  # fmt: skip
            time.sleep(2 ** (failures - 1))
            queries[i] = restart()
        if deadline is not None and time.monotonic() >= deadline:
            return
        time.sleep(0.5)
    for query in queries:  # raise the failure of a query that ended with one
        if query.exception() is not None:
            raise query.exception()


def main(settings: Settings, params: StreamParams) -> dict[str, Any]:
    """The registry's entry: :func:`run` with the triggers, paths and batch size of ``params``."""
    return run(settings, params.trigger, params.max_offsets_per_trigger, hot=params.hot,
               board_trigger=params.board_trigger, lake=params.lake,
               lake_process=params.lake_process).__dict__  # fmt: skip
