"""The hot path's hour KPIs of ``flights_stream``: an event in its hour's KPI row within seconds.

A long-lived query of its own (its own checkpoint, ``<checkpoints>/flights_stream.hot``) over
the flight events topic, beside the live board (``jobs/flights_board.py``, which puts each
event's flight on the board) and the lake path. Each micro-batch, on the executors and without
reading the lake:

1. parse and validate the events (``flight_state.parse_events``); refused ones are left to the
   lake path, which records them exactly once;
2. merge the accepted events into the state of the board buckets they touch (Spark's state
   store, ``transform.bucket_state``: ``transformWithState`` keyed by origin x scheduled hour),
   which emits every flight of each changed bucket: an hour's KPIs need all its flights;
3. enrich those flights from small frames held in memory (:class:`Enrichment`: airlines,
   airports, planes and the latest days of weather, refreshed by a thread of the driver when
   their Delta version moves, never inside a micro-batch; the live board joins the same);
4. write each changed bucket's ``kpi_hourly`` row into ``kpi_hourly_hot`` (the lake path writes
   ``kpi_hourly``: ``readmodels.HOT_OF``), whole, by ``_id`` from the executors, and the
   batch's health into ``pipeline_state`` (``kpi``: batch id, wall time, rows written, lag).

The row is the lake path's own functions (``kpis.kpi_hourly``, ``documents.hourly_docs``) over
the same merged flights, so for the same events both paths write the same fields; a flight whose
weather or reference data lands later is corrected by the lake path (its version is then the
higher one). A crash replays the batch from the state of the previous one: the same buckets, the
same rows.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipelines.core import faults
from pipelines.core.config import Settings
from pipelines.lake import tables
from pipelines.serving import documents, sinks
from pipelines.serving.publish import REFERENCE_SCHEMAS, WEATHER_SCHEMA, versions
from pipelines.serving.readmodels import KPI_HOURLY_HOT
from pipelines.stack.spark import use_pool
from pipelines.transform import flight_state, kpis

log = structlog.get_logger(__name__)

WEATHER_DAYS = 7  # UTC days of weather the hot path holds, up to the newest landed one
REFRESH_EVERY_S = 5.0  # how often the enrichment thread looks at the tables' Delta versions
INPUTS = (tables.WEATHER, *tables.REFERENCE.values())
# the hot query's Kafka consumers: a cached consumer keeps a fetch in flight at the end of the
# log, which the broker holds for fetch.max.wait.ms (Kafka's default 500 ms) before the next
# micro-batch's own fetch can go out (SPARK-44012 shows "read 1 records, taking 504 ms"):
# reading 20 records/s cost p50 0.38 to 0.51 s a batch, 0.19 to 0.24 s with 10 ms
# (bench/kafka_fetch_wait.py, 2 cores)
KAFKA_FETCH_WAIT_MS = 10


class Enrichment:
    """airlines, airports, planes and the newest :data:`WEATHER_DAYS` days of weather, as
    DataFrames built from rows held by the driver (a few thousand: 16 airlines, 1,458
    airports, 3,322 planes, 504 weather hours), so a micro-batch joins them without reading
    the lake. A daemon thread reloads them when one of their Delta tables has a new version."""

    def __init__(self, spark: SparkSession, settings: Settings, every_s: float = REFRESH_EVERY_S):
        self.spark, self.settings, self.every_s = spark, settings, every_s
        self.seen: tuple[int, ...] | None = None
        self.current: tuple[DataFrame, ...] = ()
        self.loads = 0
        self.stopping = threading.Event()
        self.reload()
        self.thread = threading.Thread(target=self._loop, name="tarmac-enrichment", daemon=True)
        self.thread.start()

    def frames(self) -> tuple[DataFrame, ...]:
        """airlines, airports, planes, weather (``flight_state.enrich``'s arguments)."""
        return self.current

    def reload(self) -> bool:
        """Load the frames again if a table moved; True when it did."""
        seen = versions(self.spark, self.settings, INPUTS)
        if seen == self.seen:
            return False
        frames = [self._held(self._reference(name)) for name in REFERENCE_SCHEMAS]
        frames.append(self._held(self._weather()))
        self.current, self.seen = tuple(frames), seen
        self.loads += 1
        log.info("flights_hot.enrichment_loaded", versions=seen)
        return True

    def _reference(self, name: str) -> DataFrame:
        schema = REFERENCE_SCHEMAS[name]
        columns = [c.split()[0] for c in schema.split(", ")]
        return tables.read(self.spark, self.settings, tables.REFERENCE[name], schema).select(
            *columns
        )

    def _weather(self) -> DataFrame:
        weather = tables.read(self.spark, self.settings, tables.WEATHER, WEATHER_SCHEMA)
        newest = weather.agg(F.max("day")).first()[0]
        if newest is None:
            return weather
        first = (datetime.fromisoformat(newest) - timedelta(days=WEATHER_DAYS - 1)).date()
        return documents.flight_weather(weather.where(F.col("day") >= first.isoformat()))

    def _held(self, frame: DataFrame) -> DataFrame:
        """``frame``'s rows as a local relation of the driver's plan: a broadcast join with it
        runs no Spark job (a cached frame cost one job per join, four per micro-batch, 0.1 to
        0.6 s each on 2 cores, measured). Built on the JVM side (``collectAsList`` and
        ``createDataFrame(List<Row>, schema)``), which PySpark's ``createDataFrame`` is not."""
        jvm = self.spark._jsparkSession  # noqa: SLF001 - see the docstring
        local = jvm.createDataFrame(frame._jdf.collectAsList(), frame._jdf.schema())  # noqa: SLF001
        return DataFrame(local, self.spark)

    def _loop(self) -> None:
        while not self.stopping.wait(self.every_s):
            try:
                self.reload()
            except Exception as exc:  # noqa: BLE001 - keep serving the frames we hold
                log.warning("flights_hot.enrichment_failed", error=repr(exc))

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=30)


def hot_clean(flights: DataFrame, enrichment: tuple[DataFrame, ...]) -> DataFrame:
    """Merged flights of changed buckets (``bucket_state.MERGED_SCHEMA``) -> clean flights,
    as the lake path derives and enriches them."""
    return flight_state.enrich(flight_state.derive(flights), *enrichment)


def hot_docs(clean: DataFrame, now: datetime) -> DataFrame:
    """Clean flights of changed buckets (:func:`hot_clean`) -> one ``kpi_hourly`` row per
    bucket (with ``updated_at`` = ``now`` and the bucket's ``version``): the lake path's own
    functions, so both paths write the same fields."""
    return documents.hourly_docs(
        kpis.kpi_hourly(clean).withColumn("updated_at", F.lit(now)),
        documents.bucket_versions(clean),
    )


STATE_KEY = "kpi"  # pipeline_state.flights_stream.<this>: the hour KPIs' batches


def batch_function(
    settings: Settings,
    enrichment: Enrichment,
    lag: Callable[[], int | None],
    job: str,
) -> Callable[[DataFrame, int], None]:
    """The hot query's ``foreachBatch`` function: the state store's stage, then the rows built
    and written from the executors, which hand the driver their count."""

    def on_batch(flights: DataFrame, batch_id: int) -> None:
        use_pool(flights.sparkSession, "hot")  # the next free task slot is the hot path's
        started = time.monotonic()
        now = datetime.now(UTC).replace(tzinfo=None)
        # the state store's stage runs once, and the rows are planned over its result alone
        # (a local checkpoint): a persisted frame ran the whole streaming plan's analysis and
        # cache lookups at every step of the rows' plan (0.6 to 1.4 s a batch, measured), and
        # a frame neither persisted nor cut ran the state store's stage once per aggregate
        # (1.5 s each)
        steps: dict[str, float] = {}
        clean = hot_clean(flights, enrichment.frames()).localCheckpoint(eager=True)
        steps["state"] = time.monotonic() - started  # Kafka, parse, state store, enrichment
        rows = hot_docs(clean, now)
        steps["plan"] = time.monotonic() - started - steps["state"]
        written = sinks.write(rows, settings, KPI_HOURLY_HOT, "hot.partial_write")
        seconds = round(time.monotonic() - started, 3)
        steps["write"] = seconds - steps["state"] - steps["plan"]
        sinks.set_state(settings, job, None, **{STATE_KEY: {
            "batch_id": batch_id, "at": datetime.now(UTC), "rows": written, "lag": lag(),
            "seconds": seconds}})  # fmt: skip
        log.info("flights_hot.batch", batch_id=batch_id, rows=written, seconds=seconds,
                 steps={k: round(v, 3) for k, v in steps.items()})  # fmt: skip
        faults.point("hot.before_commit")  # its state and offsets are committed after this

    return on_batch


def kafka_lag(progress: Callable[[], dict[str, Any] | None]) -> Callable[[], int | None]:
    """The records left in Kafka after the query's last finished batch (its progress's
    ``latestOffset`` minus ``endOffset``, summed over partitions); None before the first."""

    def lag() -> int | None:
        last = progress()
        if not last or not last.get("sources"):
            return None
        source = last["sources"][0]
        latest, end = (json.loads(v) if isinstance(v, str) else v
                       for v in (source.get("latestOffset"), source.get("endOffset")))  # fmt: skip
        if not isinstance(latest, dict) or not isinstance(end, dict):
            return None
        return sum(
            max(0, int(offset) - int(end.get(topic, {}).get(part, offset)))
            for topic, parts in latest.items()
            for part, offset in parts.items()
        )

    return lag
