"""The MongoDB serving model (``docs/data-model.md``): every read and write the jobs make.

Writes are idempotent upserts by natural key. Flight documents use order-independent operators
(``$set`` of the non-null fields a batch knows, ``$max`` of the status rank); KPI documents
are recomputed from ``flights`` for every key a batch touched.
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

from . import mongo, sinks, transform
from .config import Settings


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
_STATIC_FLIGHT_FIELDS = [f.name for f in FLIGHT_FIELDS.fields if f.name not in
                         ("visib_band", "wind_band", "precip")]  # fmt: skip


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


def _naive(value: Any) -> Any:
    """Datetimes compared and stored as naive UTC (what pymongo writes as UTC)."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def merge_into(collection: Any, updates: list[dict[str, Any]]) -> int:
    """Fetch the current documents of ``updates``, merge, write back whole; return count."""
    ids = list({u["_id"] for u in updates})
    current = {d["_id"]: d for d in mongo.find_by_ids(collection, ids)}
    merged: dict[str, dict[str, Any]] = {}
    for u in updates:
        merged[u["_id"]] = merge_flight(merged.get(u["_id"]) or current.get(u["_id"]), u)
    return mongo.replace_docs(collection, merged.values())


def _flight_partition(rows: Iterable[Any], uri: str, database: str) -> None:
    from pymongo import MongoClient

    updates = [row.asDict(recursive=True) for row in rows]
    if updates:
        with MongoClient(uri, serverSelectionTimeoutMS=10_000) as client:
            merge_into(client[database][FLIGHTS], updates)


def upsert_flights(updates: DataFrame, settings: Settings) -> None:
    """Merge one batch's flight updates (``transform.enrich`` output) into ``flights``."""
    uri, db = settings.mongo.uri, settings.mongo.database
    # one writer: on FerretDB each read-back and delete is a collection scan (see mongo.py)
    updates.coalesce(1).foreachPartition(lambda rows: _flight_partition(rows, uri, db))


WEATHER_FIELDS = ("temp_c", "visib_km", "wind_speed_kmh", "precip_mm", "visib_band",
                  "wind_band", "precip")  # fmt: skip


def set_flight_weather(db: Database, weather: list[dict[str, Any]]) -> int:
    """Give every flight of (origin, scheduled hour) the weather of that hour; return count."""
    by_hour = {(w["origin"], _naive(w["hour_utc"])): w for w in weather}
    updates = []
    hours = sorted({h for _, h in by_hour})
    for doc in db[FLIGHTS].find({"sched_hour_utc": {"$in": hours}},
                                {"_id": 1, "origin": 1, "sched_hour_utc": 1}):  # fmt: skip
        w = by_hour.get((doc["origin"], _naive(doc["sched_hour_utc"])))
        if w is not None:
            updates.append({"_id": doc["_id"], "weather": {k: w.get(k) for k in WEATHER_FIELDS}})
    return merge_into(db[FLIGHTS], updates) if updates else 0


def heal_missing_weather(db: Database, keys: list[str]) -> int:
    """Flights of ``keys`` still without weather get it if their hour's weather exists now
    (closes the race with a weather job writing between this batch's read and write)."""
    docs = mongo.find_by_ids(db[FLIGHTS], keys, {"origin": 1, "sched_hour_utc": 1,
                                                  "weather.visib_km": 1})  # fmt: skip
    missing = [d for d in docs if "weather" not in d]
    hours = {hour_key(d["origin"], _naive(d["sched_hour_utc"])) for d in missing}
    weather = mongo.find_by_ids(db[WEATHER_HOURLY], sorted(hours)) if hours else []
    return set_flight_weather(db, weather) if weather else 0


def fetch_flights(db: Database, query: dict[str, Any]) -> list[tuple]:
    """Flight documents matching ``query`` as rows of FLIGHT_FIELDS (weather flattened)."""
    projection = dict.fromkeys(_STATIC_FLIGHT_FIELDS, 1) | {"weather": 1}
    docs = db[FLIGHTS].find(query, projection)
    return _rows((d | (d.pop("weather", None) or {}) for d in docs), FLIGHT_FIELDS)


def _rows(docs: Iterable[dict[str, Any]], schema: T.StructType) -> list[tuple]:
    """Documents as tuples of ``schema``, each value cast to its field's type."""
    casts = [(f.name, _CASTS.get(type(f.dataType), _naive)) for f in schema.fields]
    return [tuple(cast(d.get(name)) for name, cast in casts) for d in docs]


def flights_frame(spark: SparkSession, db: Database, query: dict[str, Any]) -> DataFrame:
    return spark.createDataFrame(fetch_flights(db, query), FLIGHT_FIELDS)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


_CASTS = {T.LongType: _int, T.IntegerType: _int, T.DoubleType: _float}


# ------------------------------------------------------------------------------------ KPIs
def recompute_kpis(
    spark: SparkSession,
    settings: Settings,
    dates: Iterable[str] = (),
    route_months: Iterable[str] = (),
) -> dict[str, int]:
    """Recompute, from ``flights``, every KPI document of the given local dates (hourly,
    carrier-daily, weather impact) and route-months; upsert them. Returns docs written."""
    db = mongo.database(settings)
    dates, route_months = sorted(set(dates)), sorted(set(route_months))
    if not dates and not route_months:
        return {}
    # one read of every flight needed (on FerretDB each query is a scan)
    query = {"$or": [{"date": {"$in": dates}}, {"route_month": {"$in": route_months}}]}
    flights = flights_frame(spark, db, query).persist()
    written: dict[str, int] = {}
    if dates:
        day_flights = flights.where(F.col("date").isin(dates))
        for name, fn in (
            (KPI_HOURLY, transform.kpi_hourly),
            (KPI_CARRIER_DAILY, transform.kpi_carrier_daily),
            (WEATHER_IMPACT, transform.weather_impact),
        ):
            written[name] = _replace(fn(day_flights), settings, name)
    if route_months:
        routes = flights.where(F.col("route_month").isin(route_months))
        written[KPI_ROUTE_MONTHLY] = _replace(
            transform.kpi_route_monthly(routes), settings, KPI_ROUTE_MONTHLY
        )
    flights.unpersist()
    return written


def _replace(kpis: DataFrame, settings: Settings, collection: str) -> int:
    kpis = kpis.persist()
    n = kpis.count()
    sinks.upsert(kpis, settings, collection)
    kpis.unpersist()
    return n


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


def hour_key(origin: str, hour: datetime) -> str:
    return f"{origin}|{hour.strftime('%Y-%m-%dT%H:%MZ')}"


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
