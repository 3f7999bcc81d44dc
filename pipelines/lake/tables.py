"""The Delta Lake lakehouse of ``docs/data-model.md``: every table, where it lives, how it is
partitioned, and the three ways a job writes it.

- :func:`append`: the raw tables, optionally idempotent (``txnAppId`` + ``txnVersion``: Delta
  skips a version it has already committed for that application, so a replayed micro-batch
  appends nothing; measured 0.07 s for the skip).
- :func:`overwrite`: a clean or serving table's partitions for the keys a job touched
  (``replaceWhere``), recomputed whole: reruns change nothing.
- :func:`retrying`: the stream and the weather job may overwrite the same date at the same
  time; Delta's optimistic concurrency makes the later commit fail, and the step is redone
  from the data the earlier one committed. No lock file, so it holds across hosts.

The root is ``paths.lake`` (:attr:`Settings.lake_root`): a local path or any Hadoop URI.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

import structlog
from delta import exceptions as delta_errors
from delta.tables import DeltaTable
from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipelines.core.config import Settings

log = structlog.get_logger(__name__)

T_ = TypeVar("T_")


@dataclass(frozen=True)
class Table:
    name: str  # "<layer>/<table>", its folder under the lake root
    partition_by: tuple[str, ...] = ()

    def uri(self, settings: Settings) -> str:
        return f"{settings.lake_root}/{self.name}"


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


_EXISTING: set[str] = set()  # tables seen with a Delta log (only drop() removes one)


def exists(spark: SparkSession, settings: Settings, table: Table) -> bool:
    """True when ``table`` has a Delta log (it was written at least once); remembered once
    true, so a real-time batch does not read the log again to know it."""
    uri = table.uri(settings)
    if uri not in _EXISTING and DeltaTable.isDeltaTable(spark, uri):
        _EXISTING.add(uri)
    return uri in _EXISTING


def version(spark: SparkSession, settings: Settings, table: Table) -> int:
    """The table's latest committed Delta version (-1 before its first write), found without
    listing the log: from ``_delta_log/_last_checkpoint`` (written every 10 commits), probe
    the commit files after it (a handful of ``exists`` calls, however long the log)."""
    jvm = spark.sparkContext._jvm  # noqa: SLF001
    conf = spark.sparkContext._jsc.hadoopConfiguration()  # noqa: SLF001
    log_dir = f"{table.uri(settings)}/_delta_log"
    fs = jvm.org.apache.hadoop.fs.Path(log_dir).getFileSystem(conf)

    def present(name: str) -> bool:
        return bool(fs.exists(jvm.org.apache.hadoop.fs.Path(f"{log_dir}/{name}")))

    last = -1
    if present("_last_checkpoint"):
        stream = fs.open(jvm.org.apache.hadoop.fs.Path(f"{log_dir}/_last_checkpoint"))
        try:
            text = jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8")
        finally:
            stream.close()
        last = int(json.loads(text)["version"])
    while present(f"{last + 1:020d}.json"):
        last += 1
    return last


def read(
    spark: SparkSession, settings: Settings, table: Table, schema: T.StructType | str | None = None
) -> DataFrame:
    """The table as a DataFrame; an empty frame of ``schema`` when it does not exist yet."""
    if exists(spark, settings, table):
        return spark.read.format("delta").load(table.uri(settings))
    if schema is None:
        raise LookupError(f"lake table {table.name} does not exist yet at {table.uri(settings)}")
    return spark.createDataFrame([], schema)


def read_where(
    spark: SparkSession, settings: Settings, table: Table, column: str, keys: Iterable[str],
    schema: T.StructType | str | None = None,
) -> DataFrame:  # fmt: skip
    """The rows of ``table`` whose ``column`` (a partition column) is in ``keys``."""
    return read(spark, settings, table, schema).where(F.col(column).isin(sorted(set(keys))))


def append(
    frame: DataFrame, settings: Settings, table: Table, txn: tuple[str, int] | None = None
) -> None:
    """Append ``frame``; with ``txn`` = (application id, version) a version already committed
    by that application is skipped (exactly-once appends from a replayed batch)."""
    writer = frame.write.format("delta").mode("append")
    if table.partition_by:
        writer = writer.partitionBy(*table.partition_by)
    if txn is not None:
        writer = writer.option("txnAppId", txn[0]).option("txnVersion", txn[1])
    writer.save(table.uri(settings))


def overwrite(
    frame: DataFrame, settings: Settings, table: Table, keys: Iterable[str] | None = None
) -> None:
    """Replace the partitions of ``keys`` (values of the table's first partition column) with
    ``frame``; ``keys=None`` replaces the whole table. ``frame`` must hold only rows of those
    partitions (Delta checks it)."""
    writer = frame.write.format("delta").mode("overwrite")
    if table.partition_by:
        writer = writer.partitionBy(*table.partition_by)
    if keys is not None:
        values = sorted(set(keys))
        if not values:
            return
        quoted = ", ".join("'" + v.replace("'", "''") + "'" for v in values)
        writer = writer.option("replaceWhere", f"{table.partition_by[0]} IN ({quoted})")
    else:
        writer = writer.option("overwriteSchema", "true")
    writer.save(table.uri(settings))


def replace_where(
    spark: SparkSession, frame: DataFrame, settings: Settings, table: Table, predicate: str
) -> None:
    """In one Delta commit, delete the rows matching ``predicate`` and append ``frame`` (whose
    rows must all match it): an append a crashed earlier attempt may have made already."""
    if not exists(spark, settings, table):
        append(frame, settings, table)
        return
    writer = frame.write.format("delta").mode("overwrite").option("replaceWhere", predicate)
    if table.partition_by:
        writer = writer.partitionBy(*table.partition_by)
    writer.save(table.uri(settings))


def compact(spark: SparkSession, settings: Settings, table: Table, keys: Iterable[str]) -> None:
    """Bin-pack the small files that appends left in the partitions of ``keys`` (Delta
    ``OPTIMIZE``: a rewrite that changes no data, so concurrent appends do not conflict)."""
    values = sorted(set(keys))
    if values and exists(spark, settings, table):
        quoted = ", ".join("'" + v.replace("'", "''") + "'" for v in values)
        where = f" WHERE {table.partition_by[0]} IN ({quoted})" if table.partition_by else ""
        spark.sql(f"OPTIMIZE delta.`{table.uri(settings)}`{where}")


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


def drop(spark: SparkSession, settings: Settings, tables: Iterable[Table]) -> None:
    """Delete ``tables`` (folders included), for tests and a full replay from scratch."""
    jvm = spark.sparkContext._jvm  # noqa: SLF001
    conf = spark.sparkContext._jsc.hadoopConfiguration()  # noqa: SLF001
    for table in tables:
        _EXISTING.discard(table.uri(settings))
        path = jvm.org.apache.hadoop.fs.Path(table.uri(settings))
        path.getFileSystem(conf).delete(path, True)
