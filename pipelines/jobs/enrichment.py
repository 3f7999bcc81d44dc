"""What the live board joins its events with, held by the driver: no micro-batch reads the lake.

:class:`Enrichment` holds airlines, airports, planes and the latest :data:`WEATHER_DAYS` days of
weather as local relations of the driver's plans, reloaded by a daemon thread of the driver when
one of their Delta tables has a new version (never inside a micro-batch). The live board
(``jobs/flights_board.py``) derives and enriches each event's flight with them exactly as the
lake path enriches its clean flights (``flight_state.enrich``); a flight whose weather lands
later is corrected by the lake path (its bucket's ``version`` is then the higher one).
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import structlog
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pipelines.lake import tables
from pipelines.lake.recompute import REFERENCE_SCHEMAS, WEATHER_SCHEMA, reference_table
from pipelines.lake.tables import Lake
from pipelines.transform import flight_state

log = structlog.get_logger(__name__)

WEATHER_DAYS = 7  # UTC days of weather the hot path holds, up to the newest landed one
REFRESH_EVERY_S = 5.0  # how often the enrichment thread looks at the tables' Delta versions
INPUTS = (tables.WEATHER, *tables.REFERENCE.values())


class Enrichment:
    """airlines, airports, planes and the newest :data:`WEATHER_DAYS` days of weather, as
    DataFrames built from rows held by the driver (a few thousand: 16 airlines, 1,458
    airports, 3,322 planes, 504 weather hours), so a micro-batch joins them without reading
    the lake. A daemon thread reloads them when one of their Delta tables has a new version."""

    def __init__(self, lake: Lake, every_s: float = REFRESH_EVERY_S):
        self.lake, self.spark, self.every_s = lake, lake.spark, every_s
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
        seen = self.lake.versions(INPUTS)
        if seen == self.seen:
            return False
        frames = [self._held(reference_table(self.lake, name)) for name in REFERENCE_SCHEMAS]
        frames.append(self._held(self._weather()))
        self.current, self.seen = tuple(frames), seen
        self.loads += 1
        log.info("enrichment.loaded", versions=seen)
        return True

    def _weather(self) -> DataFrame:
        weather = self.lake.read(tables.WEATHER, WEATHER_SCHEMA)
        newest = weather.agg(F.max("day")).first()[0]
        if newest is None:
            return weather
        first = (datetime.fromisoformat(newest) - timedelta(days=WEATHER_DAYS - 1)).date()
        return flight_state.flight_weather(weather.where(F.col("day") >= first.isoformat()))

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
                log.warning("enrichment.failed", error=repr(exc))

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=30)
