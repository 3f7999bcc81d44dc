"""The MongoDB serving model (``docs/data-model.md``): every read and write the jobs make.

Writes are idempotent replacements by natural key (``_id``). Flight documents are merged in an
order-independent way (``merge_flight``: non-null fields win, the status rank only grows) into
``flights`` and ``flights_by_hour``; KPI documents are recomputed from ``flights_by_hour`` for
every local date a batch touched. Every read and write addresses documents by ``_id``, the one
access FerretDB v1 serves from an index (see ``mongo.py``).
"""

from __future__ import annotations

import fcntl
import hashlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import structlog
from pymongo import ASCENDING
from pymongo.database import Database
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from . import mongo, transform
from .config import Settings
from .readmodels import (
    BOARD,
    KPI_DAILY,
    board_docs,
    board_keys,
    daily_docs,
    days_of_month,
    hour_key,
    read_board,
    read_daily,
)
from .readmodels import naive_utc as _naive


# ------------------------------------------------------------------------------ write lock
@contextmanager
def write_lock(settings: Settings) -> Iterator[None]:
    """Serialize the read-merge-write phases of the jobs of one env on this machine (cron may
    run the stream and the weather job at the same minute)."""
    path = settings.resolve(settings.stack.home) / "serving.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


log = structlog.get_logger(__name__)

FLIGHTS = "flights"
KPI_HOURLY = "kpi_hourly"
KPI_CARRIER_DAILY = "kpi_carrier_daily"
KPI_ROUTE_MONTHLY = "kpi_route_monthly"
WEATHER_IMPACT = "weather_impact"
WEATHER_HOURLY = "weather_hourly"
REJECTS = "rejects"
STATE = "pipeline_state"
REFERENCE = ("airlines", "airports", "planes")

INDEXES: dict[str, list[list[tuple[str, int]]]] = {
    FLIGHTS: [
        [("origin", ASCENDING), ("sched_dep_utc", ASCENDING)],
        [("date", ASCENDING), ("origin", ASCENDING)],
        [("route_month", ASCENDING)],
        [("sched_hour_utc", ASCENDING)],
    ],
    KPI_HOURLY: [[("hour_utc", ASCENDING)], [("origin", ASCENDING), ("hour_utc", ASCENDING)]],
    KPI_CARRIER_DAILY: [[("date", ASCENDING)], [("carrier", ASCENDING), ("date", ASCENDING)]],
    KPI_ROUTE_MONTHLY: [[("month", ASCENDING)]],
    KPI_DAILY: [[("month", ASCENDING)]],
    BOARD: [[("date", ASCENDING)], [("origin", ASCENDING), ("hour_utc", ASCENDING)]],
    WEATHER_IMPACT: [[("date", ASCENDING)]],
    WEATHER_HOURLY: [[("hour_utc", ASCENDING)]],
    REJECTS: [[("source", ASCENDING), ("at", ASCENDING)]],
}

# Flight documents as the KPI computations read them (weather flattened).
FLIGHT_FIELDS = T.StructType(
    [
        T.StructField("_id", T.StringType()),
        T.StructField("origin", T.StringType()),
        T.StructField("dest", T.StringType()),
        T.StructField("carrier", T.StringType()),
        T.StructField("carrier_name", T.StringType()),
        T.StructField("date", T.StringType()),
        T.StructField("month", T.StringType()),
        T.StructField("route_month", T.StringType()),
        T.StructField("weekday", T.IntegerType()),
        T.StructField("local_hour", T.IntegerType()),
        T.StructField("sched_hour_utc", T.TimestampType()),
        T.StructField("dep_time_utc", T.TimestampType()),
        T.StructField("dep_delay", T.LongType()),
        T.StructField("arr_delay", T.LongType()),
        T.StructField("status_rank", T.IntegerType()),
        T.StructField("dest_name", T.StringType()),
        T.StructField("dest_lat", T.DoubleType()),
        T.StructField("dest_lon", T.DoubleType()),
        T.StructField("visib_band", T.StringType()),
        T.StructField("wind_band", T.StringType()),
        T.StructField("precip", T.BooleanType()),
    ]
)


def ensure_indexes(db: Database) -> None:
    for collection, indexes in INDEXES.items():
        for keys in indexes:
            db[collection].create_index(keys)


# --------------------------------------------------------------------------------- flights
def merge_flight(existing: dict[str, Any] | None, update: dict[str, Any]) -> dict[str, Any]:
    """A flight document after one batch's update, whatever the order updates come in:
    non-null fields are set, the status rank and last event time only grow, and ``status``
    and ``cancelled`` follow the rank."""
    doc = dict(existing or {})
    for key, value in update.items():
        if value is None or key in ("status_rank", "last_event_time"):
            continue
        doc[key] = value
    for key in ("status_rank", "last_event_time"):
        values = [v for v in (doc.get(key), update.get(key)) if v is not None]
        if values:
            doc[key] = max(_naive(v) for v in values)
    name = transform.STATUS_NAME.get(doc.get("status_rank"))
    if name:
        doc["status"], doc["cancelled"] = name, name == "cancelled"
    return doc


# --------------------------------------------------------------------- flights by hour
def write_board(db: Database, board: dict[str, dict[str, dict[str, Any]]]) -> int:
    return mongo.replace_docs(db[BOARD], board_docs(board))


def upsert_flights(db: Database, updates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Merge one batch's flight updates (``transform.enrich`` rows as dicts) into ``flights``
    and ``flights_by_hour``; return the merged documents."""
    by_hour: dict[str, list[dict[str, Any]]] = {}
    for u in updates:
        by_hour.setdefault(hour_key(u["origin"], u["sched_hour_utc"]), []).append(u)
    board = read_board(db, list(by_hour))
    changed: dict[str, dict[str, Any]] = {}
    for key, hour_updates in by_hour.items():
        flights = board.setdefault(key, {})
        for u in hour_updates:
            flights[u["_id"]] = changed[u["_id"]] = merge_flight(flights.get(u["_id"]), u)
    # flights first: a crash before the board write is repaired by the batch's rerun, which
    # merges the same updates into the board's (older) documents and gets the same result
    mongo.replace_docs(db[FLIGHTS], changed.values())
    write_board(db, {k: board[k] for k in by_hour})
    return list(changed.values())


WEATHER_FIELDS = ("temp_c", "visib_km", "wind_speed_kmh", "precip_mm", "visib_band",
                  "wind_band", "precip")  # fmt: skip


def set_flight_weather(db: Database, weather: list[dict[str, Any]]) -> set[str]:
    """Give every flight of (origin, scheduled hour) the weather of that hour; return the
    local dates of the flights that changed."""
    by_key = {hour_key(w["origin"], w["hour_utc"]): w for w in weather}
    board = read_board(db, list(by_key))
    changed: list[dict[str, Any]] = []
    hours: set[str] = set()
    for key, flights in board.items():
        w = {k: by_key[key].get(k) for k in WEATHER_FIELDS}
        for fid, doc in flights.items():
            if doc.get("weather") != w:
                flights[fid] = {**doc, "weather": w}
                changed.append(flights[fid])
                hours.add(key)
    if changed:
        mongo.replace_docs(db[FLIGHTS], changed)
        write_board(db, {k: board[k] for k in hours})
    return {d["date"] for d in changed}


def _rows(docs: Iterable[dict[str, Any]], schema: T.StructType) -> list[tuple]:
    """Documents as tuples of ``schema``, each value cast to its field's type."""
    casts = [(f.name, _CASTS.get(type(f.dataType), _naive)) for f in schema.fields]
    return [tuple(cast(d.get(name)) for name, cast in casts) for d in docs]


def flights_frame(spark: SparkSession, docs: Iterable[dict[str, Any]]) -> DataFrame:
    """Flight documents as a DataFrame of FLIGHT_FIELDS (weather flattened)."""
    rows = _rows((d | (d.get("weather") or {}) for d in docs), FLIGHT_FIELDS)
    # slices of ~2,000 rows keep each task small (Spark warns above 1 MiB a task)
    slices = max(1, len(rows) // 2000)
    return spark.createDataFrame(spark.sparkContext.parallelize(rows, slices), FLIGHT_FIELDS)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


_CASTS = {T.LongType: _int, T.IntegerType: _int, T.DoubleType: _float}


# ------------------------------------------------------------------------------------ KPIs
def recompute_kpis(
    spark: SparkSession, settings: Settings, dates: Iterable[str] = (), routes: bool = True
) -> dict[str, int]:
    """Recompute every KPI document of the given local dates (hourly, carrier-daily, weather
    impact, route-daily) from ``flights_by_hour``, then (``routes``) the route-months of those
    dates from their route-daily documents; upsert them. Returns documents written."""
    db = mongo.database(settings)
    dates = sorted(set(dates))
    if not dates:
        return {}
    board = read_board(db, board_keys(dates))
    flights = flights_frame(spark, (f for h in board.values() for f in h.values())).persist()
    written: dict[str, int] = {}
    tables: dict[str, list[dict[str, Any]]] = {}
    schemas: dict[str, T.StructType] = {}
    for name, fn in (
        (KPI_HOURLY, transform.kpi_hourly),
        (KPI_CARRIER_DAILY, transform.kpi_carrier_daily),
        (WEATHER_IMPACT, transform.weather_impact),
        ("routes", transform.kpi_route_daily),
    ):
        frame = fn(flights)
        schemas[name], tables[name] = frame.schema, [r.asDict() for r in frame.collect()]
        if name != "routes":
            written[name] = mongo.replace_docs(db[name], tables[name])
    names = {k: v.names for k, v in schemas.items()}
    written[KPI_DAILY] = mongo.replace_docs(db[KPI_DAILY], daily_docs(dates, tables, names))
    if routes:
        months = sorted({d[:7] for d in dates})
        rows = [r for doc in read_daily(db, [d for m in months for d in days_of_month(m)])
                for r in mongo.rows_of(doc["routes"])]  # fmt: skip
        monthly = transform.kpi_route_monthly_from_daily(
            spark.createDataFrame(_rows(rows, schemas["routes"]), schemas["routes"])
        )
        written[KPI_ROUTE_MONTHLY] = mongo.replace_docs(
            db[KPI_ROUTE_MONTHLY], [r.asDict() for r in monthly.collect()]
        )
    flights.unpersist()
    return written


# ---------------------------------------------------------------------------- reference
def reference_frames(spark: SparkSession, settings: Settings) -> tuple[DataFrame, ...]:
    """airlines, airports, planes as small DataFrames (empty, typed, when not loaded yet)."""
    db = mongo.database(settings)
    schemas = {
        "airlines": "_id string, name string",
        "airports": "_id string, name string, lat double, lon double",
        "planes": "_id string, year int",
    }
    frames = []
    for name in REFERENCE:
        schema = T._parse_datatype_string(schemas[name])  # noqa: SLF001
        docs = db[name].find({}, dict.fromkeys(schema.fieldNames(), 1))
        frames.append(spark.createDataFrame(_rows(docs, schema), schema))
    return tuple(frames)


def weather_frame(spark: SparkSession, settings: Settings, keys: list[str]) -> DataFrame:
    """weather_hourly documents with ``_id`` in ``keys`` (``ORIGIN|YYYY-MM-DDTHH:MMZ``)."""
    db = mongo.database(settings)
    cols = ["origin", "hour_utc", "temp_c", "visib_km", "wind_speed_kmh", "precip_mm",
            "visib_band", "wind_band", "precip"]  # fmt: skip
    schema = T.StructType(
        [T.StructField("origin", T.StringType()), T.StructField("hour_utc", T.TimestampType())]
        + [T.StructField(c, T.DoubleType()) for c in cols[2:6]]
        + [T.StructField(c, T.StringType()) for c in cols[6:8]]
        + [T.StructField("precip", T.BooleanType())]
    )
    found = mongo.find_by_ids(db[WEATHER_HOURLY], keys, dict.fromkeys(cols, 1)) if keys else []
    return spark.createDataFrame(_rows(found, schema), schema)


# ------------------------------------------------------------------------ rejects, state
def reject_id(source: str, where: str, reason: str) -> str:
    return hashlib.sha1(f"{source}|{where}|{reason}".encode()).hexdigest()[:24]


def write_rejects(db: Database, rejects: list[dict[str, Any]]) -> int:
    """Upsert reject documents (each: source, where, reason, excerpt, ... ); ``_id`` is a hash
    of source + where + reason, so reruns do not duplicate them."""
    now = datetime.now(UTC)
    docs = [
        {**r, "_id": reject_id(r["source"], r.get("where", ""), r["reason"]),
         "excerpt": (r.get("excerpt") or "")[:500], "at": r.get("at", now)}
        for r in rejects
    ]  # fmt: skip
    return mongo.replace_docs(db[REJECTS], docs)


def rejects_from(frame: DataFrame, source: str, where: list[str], excerpt: str) -> list[dict]:
    """Collect the rows of ``frame`` with a ``reject_reason`` as reject documents."""
    rows = (
        frame.where(F.col("reject_reason").isNotNull())
        .select(
            "reject_reason",
            F.concat_ws(":", *where).alias("where"),
            F.col(excerpt).alias("excerpt"),
        )
        .collect()
    )
    return [
        {"source": source, "reason": r["reject_reason"], "where": r["where"],
         "excerpt": r["excerpt"], "kind": "row"}
        for r in rows
    ]  # fmt: skip


def set_state(db: Database, job: str, newest_event_time: datetime | None, **fields: Any) -> None:
    update: dict[str, Any] = {"$set": {**fields, "updated_at": datetime.now(UTC)}}
    if newest_event_time is not None:
        update["$max"] = {"newest_event_time": newest_event_time}
    db[STATE].update_one({"_id": job}, update, upsert=True)
