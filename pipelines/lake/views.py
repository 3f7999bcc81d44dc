"""The lake open for exploration: :func:`lake_session`, one call in a notebook.

    from pipelines.lake.views import lake_session
    spark = lake_session()            # TARMAC_ENV (``make lab ENV=...``), else ``local``

returns the Spark session of the env, built the way every job builds it
(:func:`~pipelines.clients.spark.build_session`: the same jars, Delta, time zone, shuffle
partitions) but with the Spark UI on, its address printed, and every table of
:data:`~pipelines.lake.tables.TABLES` registered by layer: ``raw.flight_events``,
``clean.flights``, ``serving.kpi_hourly``, ... A table not written yet is skipped with one line
saying so (call :func:`register` again once it is).

Why a database per layer and external tables, not views. Each layer is a database of the
session's in-memory catalog (no Hive metastore: nothing outlives the session; its folder is a
temporary one, never the lake's), and each table an *external* Delta table whose location is
the table's folder in the lake (``CREATE TABLE <layer>.<t> USING delta LOCATION ...``). Unlike a
view, such a table takes Delta's own SQL: ``DESCRIBE HISTORY serving.kpi_hourly``,
``SELECT ... FROM clean.flights VERSION AS OF 3`` (time travel), ``DESCRIBE DETAIL``. Registering
reads the table's log once and commits nothing (the Delta version is unchanged: tested), and
``DROP TABLE`` / ``DROP DATABASE ... CASCADE`` forget the name without touching the lake's files.
Every query reads the table's latest committed version, so a running stream's new data shows up
in the next query.

Measured (2 cores shared with a test suite, load 3 to 8; pyspark 4.2 + Delta 4.4; a lake of one
day of 2013, 16 tables): the session 13 to 18 s (a new JVM with the connector and Delta jars),
registering 6 to 11 s, of which the session's first SQL statement and catalog ~5 to 6 s (any
first query pays them) and each table ~0.1 s (``Lake.exists`` and ``CREATE TABLE``, which reads
the table's log once). Again in the same session: 0.4 s. ``make lab`` to a kernel holding the
tables: ``bench/lab.py`` (32 to 35 s at load 3, against the 30 s target).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field

from pyspark.sql import SparkSession

from pipelines.clients.spark import build_session
from pipelines.core import config
from pipelines.core.config import Settings
from pipelines.lake import tables
from pipelines.lake.tables import Table

LAYERS = ("raw", "clean", "serving")


def table_name(table: Table) -> str:
    """The catalog name of ``table``: ``raw/flight_events`` -> ``raw.flight_events``."""
    return table.name.replace("/", ".")


@dataclass
class Registered:
    """What :func:`register` did: the tables now named, those skipped (not written yet)."""

    env: str
    lake: str
    names: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def lines(self) -> list[str]:
        """What a notebook prints: the lake and its tables by layer, one line per table
        skipped."""
        out = [f"lake of env {self.env}: {self.lake} ({len(self.names)} tables registered "
               f"in {self.seconds:.1f} s)"]  # fmt: skip
        for layer in LAYERS:
            names = [n.split(".", 1)[1] for n in self.names if n.startswith(layer + ".")]
            out.append(f"  {layer:<8} {', '.join(names) or '-'}")
        out += [f"skipped {name}: not written yet in this lake" for name in self.skipped]
        return out


def _location(spark: SparkSession, table: Table) -> str | None:
    """Where the catalog's ``<layer>.<table>`` points (None when it has no such table), from
    the catalog's metadata alone (``DESCRIBE TABLE EXTENDED`` would read the Delta log:
    0.3 s a table, measured)."""
    jvm = spark.sparkContext._jvm  # noqa: SLF001
    catalog = spark._jsparkSession.sessionState().catalog()  # noqa: SLF001
    layer, name = table.name.split("/")
    ident = jvm.org.apache.spark.sql.catalyst.TableIdentifier(name, jvm.scala.Some(layer))
    if not catalog.tableExists(ident):
        return None
    return str(catalog.getTableMetadata(ident).location().toString())


def _path(uri: str) -> str:
    """``file:/a/b/``, ``file:///a/b`` and ``/a/b`` alike: ``/a/b`` (other schemes kept)."""
    if uri.startswith("file:"):
        uri = "/" + uri[len("file:") :].lstrip("/")
    return uri.rstrip("/")


def _register_one(lake: tables.Lake, table: Table) -> bool:
    """Name ``table`` in the catalog (True), or False when it has no Delta log yet."""
    if not lake.exists(table):
        return False
    spark, name, uri = lake.spark, table_name(table), lake.uri(table)
    where = _location(spark, table)
    if where is not None and _path(where) == _path(uri):
        return True  # already registered, to this lake
    if where is not None:  # another env's lake: forget the name (an external table: no data)
        spark.sql(f"DROP TABLE {name}")
    quoted = uri.replace("'", "\\'")
    spark.sql(f"CREATE TABLE IF NOT EXISTS {name} USING delta LOCATION '{quoted}'")
    return True


def register(spark: SparkSession, settings: Settings) -> Registered:
    """Register every lake table of ``settings`` that exists as ``<layer>.<table>`` (an
    external Delta table of the session's catalog); commit nothing to the lake. Again
    later: adds the tables written since, repoints names registered for another lake."""
    t0 = time.monotonic()
    folder = tempfile.mkdtemp(prefix="tarmac-catalog-")
    for layer in LAYERS:  # the catalog's own folder of each layer: never the lake's
        spark.sql(f"CREATE DATABASE IF NOT EXISTS {layer} LOCATION '{folder}/{layer}.db'")
    lake = tables.Lake.of(spark, settings)
    done = [_register_one(lake, table) for table in tables.TABLES]
    result = Registered(settings.env, lake.root, seconds=time.monotonic() - t0)
    for table, ok in zip(tables.TABLES, done, strict=True):
        (result.names if ok else result.skipped).append(table_name(table))
    return result


def ui_line(spark: SparkSession) -> str:
    """Where the session's Spark UI is, or why there is none."""
    url = spark.sparkContext.uiWebUrl
    if url:
        return f"Spark UI: {url} (jobs, stages, SQL plans of this session)"
    return ("Spark UI: off (this process built its Spark session earlier with spark.ui.enabled="
            "false; restart the kernel and call lake_session() first)")  # fmt: skip


def lake_session(
    env: str | Settings | None = None, app: str = "lab", echo: bool = True
) -> SparkSession:
    """The Spark session of ``env`` (a name, default ``TARMAC_ENV``, else ``local``; or its
    :class:`Settings`) with the Spark UI on and every written lake table registered as
    ``<layer>.<table>``; prints the UI's address and what was registered (``echo=False``:
    silent). In a process that already has a session (a kernel calling it twice), that session
    is reused and registered again."""
    settings = env if isinstance(env, Settings) else config.load(env)
    settings = settings.model_copy(update={"spark": settings.spark.model_copy(update={"ui": True})})
    spark = build_session(settings, app)
    registered = register(spark, settings)
    if echo:
        print(ui_line(spark))
        print("\n".join(registered.lines()))
    return spark
