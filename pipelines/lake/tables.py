"""The Delta Lake lakehouse of ``docs/data-model.md``: every table, where it lives, how it is
partitioned, and the :class:`Lake` of an environment, the one object that reads and writes
them (built once per job, beside its Spark session).

- :meth:`Lake.append`: the raw tables, optionally idempotent (``txnAppId`` + ``txnVersion``:
  Delta skips a version it has already committed for that application, so a replayed
  micro-batch appends nothing; measured 0.07 s for the skip).
- :meth:`Lake.overwrite`: a clean or serving table's partitions for the keys a job touched
  (``replaceWhere``), recomputed whole: reruns change nothing.
- :func:`retrying`: the stream and the weather job may overwrite the same date at the same
  time; Delta's optimistic concurrency makes the later commit fail, and the step is redone
  from the data the earlier one committed. No lock file, so it holds across hosts.

The root is ``paths.lake`` (:attr:`Settings.lake_root`): a local path or any Hadoop URI.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog
from delta import exceptions as delta_errors
from delta.tables import DeltaTable
from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipelines.clients.hadoop import HadoopFiles
from pipelines.core.config import Settings
from pipelines.lake import deltalog
from pipelines.lake.turns import Turns

log = structlog.get_logger(__name__)

T_ = TypeVar("T_")


@dataclass(frozen=True)
class Table:
    name: str  # "<layer>/<table>", its folder under the lake root
    partition_by: tuple[str, ...] = ()


FLIGHT_EVENTS = Table("raw/flight_events", ("date",))
REJECTS = Table("raw/rejects", ("source",))
RAW_WEATHER = Table("raw/weather", ("day",))
WEATHER = Table("clean/weather", ("day",))
FLIGHTS = Table("clean/flights", ("date",))
KPI_HOURLY = Table("serving/kpi_hourly", ("date",))
KPI_CARRIER_DAILY = Table("serving/kpi_carrier_daily", ("date",))
KPI_WEATHER_DAILY = Table("serving/kpi_weather_daily", ("date",))
KPI_ROUTE_DAILY = Table("serving/kpi_route_daily", ("date",))
KPI_ROUTE_MONTHLY = Table("serving/kpi_route_monthly", ("month",))
REFERENCE = {name: Table(f"clean/{name}") for name in ("airlines", "airports", "planes")}
RAW_REFERENCE = {name: Table(f"raw/{name}") for name in ("airlines", "airports", "planes")}

TABLES: tuple[Table, ...] = (
    FLIGHT_EVENTS, REJECTS, RAW_WEATHER, *RAW_REFERENCE.values(), WEATHER, *REFERENCE.values(),
    FLIGHTS, KPI_HOURLY, KPI_CARRIER_DAILY, KPI_WEATHER_DAILY, KPI_ROUTE_DAILY, KPI_ROUTE_MONTHLY,
)  # fmt: skip
# the tables the flights stream owns (dropped together to replay the stream from scratch)
STREAM_TABLES = (FLIGHT_EVENTS, FLIGHTS, KPI_HOURLY, KPI_CARRIER_DAILY, KPI_WEATHER_DAILY,
                 KPI_ROUTE_DAILY, KPI_ROUTE_MONTHLY)  # fmt: skip


class Lake:
    """The lakehouse of one environment on one Spark session: built once (:meth:`of`, at a
    job's start, beside its session) and passed to what reads or writes a table, which then
    needs neither the session nor the settings. It holds what is cached about the lake:
    the tables known to exist (a Delta log, once seen, only :meth:`drop` removes) and the
    frames and lookups cached until the tables they come from move (:meth:`cached`,
    :attr:`memo`), so two environments in one process never share them."""

    def __init__(self, spark: SparkSession, root: str) -> None:
        self.spark = spark
        self.root = root.rstrip("/")
        self.files = HadoopFiles(spark)  # its logs, and other files beside it (checkpoints)
        self.turns = Turns(self.files, self.root)  # a refresh that lost goes next (turns)
        self.memo: dict[str, Any] = {}  # small per-lake lookups (risk: the newest model)
        self._existing: set[str] = set()
        self._frames: dict[str, tuple[tuple[int, ...], tuple[DataFrame, ...]]] = {}
        self._kept: dict[str, tuple[int, DataFrame]] = {}  # read_kept: version, rows
        self._kept_lock = threading.Lock()

    @classmethod
    def of(cls, spark: SparkSession, settings: Settings) -> Lake:
        """The lake of ``settings`` (``paths.lake``: a local path or any Hadoop URI)."""
        return cls(spark, settings.lake_root)

    def __repr__(self) -> str:
        return f"Lake({self.root!r})"

    def uri(self, table: Table | str) -> str:
        """Where ``table`` (or a folder of the lake, by name) lives."""
        return f"{self.root}/{table.name if isinstance(table, Table) else table}"

    def exists(self, table: Table) -> bool:
        """True when ``table`` has a Delta log (it was written at least once); remembered once
        true, so a real-time batch does not read the log again to know it."""
        uri = self.uri(table)
        if uri not in self._existing and DeltaTable.isDeltaTable(self.spark, uri):
            self._existing.add(uri)
        return uri in self._existing

    def version(self, table: Table) -> int:
        """The table's latest committed Delta version (-1 before its first write), found
        without listing the log: from ``_delta_log/_last_checkpoint`` (written every 10
        commits), probe the commit files after it (a handful of ``exists`` calls, however long
        the log)."""
        log_dir = f"{self.uri(table)}/_delta_log"
        try:
            last = int(json.loads(self.files.read_text(f"{log_dir}/_last_checkpoint"))["version"])
        except FileNotFoundError:
            last = -1
        while self.files.exists(deltalog.commit_file(self.uri(table), last + 1)):
            last += 1
        return last

    def versions(self, which: Iterable[Table]) -> tuple[int, ...]:
        """The Delta versions of ``which`` (-1: not written yet)."""
        return tuple(self.version(t) for t in which)

    def read(self, table: Table, schema: T.StructType | str | None = None) -> DataFrame:
        """The table as a DataFrame; an empty frame of ``schema`` when it does not exist yet."""
        if self.exists(table):
            return self.spark.read.format("delta").load(self.uri(table))
        if schema is None:
            raise LookupError(f"lake table {table.name} does not exist yet at {self.uri(table)}")
        return self.spark.createDataFrame([], schema)

    def read_version(self, table: Table, version: int) -> DataFrame:
        """The table as it was at Delta ``version`` (time travel)."""
        return self.spark.read.format("delta").option("versionAsOf", version).load(self.uri(table))

    def read_kept(self, table: Table) -> DataFrame:
        """The whole ``table`` (partitioned) at its latest version, kept in memory between calls:
        a call reads again only the partitions that the commits since the kept version touched
        (``deltalog.touched_partitions``: any writer's), the rest comes from memory. For reads
        of a whole table that is small in rows but spread over many files, again and again: the
        profile's read of the daily KPI tables in every refresh of the stream's lake path (on a
        lake of 2013, 1,460 files a table: 5.2 to 6.8 s a profile, 1.4 to 1.7 s from memory).

        Exact: the rows of an untouched partition are the same at both versions, the touched
        ones are read at the new version, and a log that cannot say (cleaned up, a schema
        change) makes it read the whole table. The frame is a local checkpoint (its lineage
        cut, so it does not grow call after call): an executor lost with its blocks fails the
        next action that uses it (:func:`lost_kept_block`); :meth:`forget_kept` then drops it."""
        if not table.partition_by:
            raise ValueError(f"read_kept needs a partitioned table, not {table.name}")
        column = table.partition_by[0]
        with self._kept_lock:
            version = self.version(table)
            if version < 0:
                return self.read(table)  # not written yet: LookupError
            held = self._kept.get(table.name)
            if held is not None and held[0] == version:
                return held[1]
            touched = None
            if held is not None:
                touched = deltalog.touched_partitions(
                    self.files, self.uri(table), column, held[0], version
                )
            if held is not None and touched == set():  # no file added or removed
                self._kept[table.name] = (version, held[1])
                return held[1]
            at = self.read_version(table, version)
            if held is None or touched is None:
                frame = at
            else:
                keys = sorted(touched)
                kept = held[1].where(~F.col(column).isin(keys))
                frame = kept.unionByName(at.where(F.col(column).isin(keys)))
            frame = frame.localCheckpoint(eager=True)
            if held is not None:
                release(held[1])
            self._kept[table.name] = (version, frame)
            log.debug("lake.kept", table=table.name, version=version,
                      read=None if touched is None else len(touched))  # fmt: skip
            return frame

    def forget_kept(self) -> None:
        """Drop every frame :meth:`read_kept` keeps (the next call reads its table whole)."""
        with self._kept_lock:
            for _, frame in self._kept.values():
                release(frame)
            self._kept.clear()

    def read_where(
        self, table: Table, column: str, keys: Iterable[str],
        schema: T.StructType | str | None = None,
    ) -> DataFrame:  # fmt: skip
        """The rows of ``table`` whose ``column`` (a partition column) is in ``keys``."""
        return self.read(table, schema).where(F.col(column).isin(sorted(set(keys))))

    def append(self, frame: DataFrame, table: Table, txn: tuple[str, int] | None = None) -> None:
        """Append ``frame``; with ``txn`` = (application id, version) a version already
        committed by that application is skipped (exactly-once appends from a replayed
        batch)."""
        writer = frame.write.format("delta").mode("append")
        if table.partition_by:
            writer = writer.partitionBy(*table.partition_by)
        if txn is not None:
            writer = writer.option("txnAppId", txn[0]).option("txnVersion", txn[1])
        writer.save(self.uri(table))

    def overwrite(self, frame: DataFrame, table: Table, keys: Iterable[str] | None = None) -> None:
        """Replace the partitions of ``keys`` (values of the table's first partition column)
        with ``frame``; ``keys=None`` replaces the whole table. ``frame`` must hold only rows
        of those partitions (Delta checks it)."""
        writer = frame.write.format("delta").mode("overwrite")
        if table.partition_by:
            writer = writer.partitionBy(*table.partition_by)
        if keys is not None:
            values = sorted(set(keys))
            if not values:
                return
            writer = writer.option(
                "replaceWhere", f"{table.partition_by[0]} IN ({_quoted(values)})"
            )
        else:
            writer = writer.option("overwriteSchema", "true")
        writer.save(self.uri(table))

    def replace_where(self, frame: DataFrame, table: Table, predicate: str) -> None:
        """In one Delta commit, delete the rows matching ``predicate`` and append ``frame``
        (whose rows must all match it): an append a crashed earlier attempt may have made
        already."""
        if not self.exists(table):
            self.append(frame, table)
            return
        writer = frame.write.format("delta").mode("overwrite").option("replaceWhere", predicate)
        if table.partition_by:
            writer = writer.partitionBy(*table.partition_by)
        writer.save(self.uri(table))

    def compact(self, table: Table, keys: Iterable[str]) -> None:
        """Bin-pack the small files that appends left in the partitions of ``keys`` (Delta
        ``OPTIMIZE``: a rewrite that changes no data, so concurrent appends do not conflict)."""
        values = sorted(set(keys))
        if values and self.exists(table):
            where = (
                f" WHERE {table.partition_by[0]} IN ({_quoted(values)})"
                if table.partition_by
                else ""
            )
            self.spark.sql(f"OPTIMIZE delta.`{self.uri(table)}`{where}")

    def cached(
        self, name: str, which: Iterable[Table], build: Callable[[], Iterable[DataFrame]]
    ) -> tuple[DataFrame, ...]:
        """The frames ``build()`` gives (cached), kept until one of ``which`` gets a new Delta
        version; the frames they replace are unpersisted. ``name`` tells the sets apart."""
        seen = self.versions(which)
        held = self._frames.get(name)
        if held is None or held[0] != seen:
            if held is not None:
                for frame in held[1]:
                    frame.unpersist()
            held = (seen, tuple(frame.cache() for frame in build()))
            self._frames[name] = held
        return held[1]

    def drop(self, tables: Iterable[Table]) -> None:
        """Delete ``tables`` (folders included), for tests and a full replay from scratch."""
        for table in tables:
            self._existing.discard(self.uri(table))
            self.files.delete(self.uri(table))
        for _, frames in self._frames.values():
            for frame in frames:
                frame.unpersist()
        self._frames.clear()
        self.forget_kept()


def release(frame: DataFrame) -> None:
    """Free the blocks of a local checkpoint (``DataFrame.localCheckpoint``) now:
    ``DataFrame.unpersist`` does not reach them (the frame is not in Spark's cache manager).
    Left to Spark's context cleaner, they would wait for a JVM garbage collection (every 30 min
    by default), a refresh every few seconds adding a frame each."""
    try:
        frame._jdf.queryExecution().analyzed().rdd().unpersist(False)
    except Exception:  # noqa: BLE001 - not a checkpointed frame: nothing of its own to free
        frame.unpersist()


def lost_kept_block(exc: BaseException) -> bool:
    """True when ``exc`` is Spark's failure to find a block of a local checkpoint (the
    executor that held it is gone): a frame of :meth:`Lake.read_kept` to read again."""
    return "Checkpoint block" in f"{exc}"


def _quoted(values: list[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


# ProtocolChangedException: two writers created the same table in an empty folder at once
# (a fresh lake: the first weather run's refresh beside the stream's, seen in bench/soak.py);
# the one run again finds the table the other created
CONFLICTS = ("ConcurrentAppendException", "ConcurrentDeleteReadException",
             "ConcurrentDeleteDeleteException", "ConcurrentTransactionException",
             "ConcurrentWriteException", "MetadataChangedException", "ProtocolChangedException",
             "DELTA_CONCURRENT")  # fmt: skip


# what Delta's Python API raises for a conflict of a write on the driver (``delta.exceptions``)
CONFLICT_TYPES = (
    delta_errors.DeltaConcurrentModificationException, delta_errors.ConcurrentWriteException,
    delta_errors.MetadataChangedException, delta_errors.ProtocolChangedException,
    delta_errors.ConcurrentAppendException, delta_errors.ConcurrentDeleteReadException,
    delta_errors.ConcurrentDeleteDeleteException, delta_errors.ConcurrentTransactionException,
)  # fmt: skip


def is_conflict(exc: BaseException) -> bool:
    """True for a Delta commit conflict (another job committed the same partitions first):
    Delta's own exception, or one that Spark wrapped (a task's, a streaming batch's) and that
    only names it in its text."""
    if isinstance(exc, CONFLICT_TYPES):
        return True
    text = f"{type(exc).__name__}: {exc}"
    return any(name in text for name in CONFLICTS)


def retrying(step: Callable[[], T_], what: str, attempts: int = 5) -> T_:
    """Run ``step``; on a Delta commit conflict run it again (from the committed data), up to
    ``attempts`` times with a short growing pause."""
    for attempt in range(1, attempts + 1):
        try:
            return step()
        except (PySparkException, Exception) as exc:  # py4j errors are not PySparkException
            if attempt == attempts or not is_conflict(exc):
                raise
            log.warning("lake.conflict_retry", step=what, attempt=attempt,
                        error=type(exc).__name__)  # fmt: skip
            time.sleep(0.5 * attempt)
    raise AssertionError("unreachable")
