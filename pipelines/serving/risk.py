"""The delay risk on the board (issue 19, part 4): the lake path scores the flights of the
buckets it rewrites with the newest delay-risk model of the lake, so every flight of a board
bucket carries ``delay_risk`` (0..1) as soon as a model has been trained.

Why here, and not in the hot path: the features (``transform.delay_features``) need the
origin's departures before the flight's scoring time and the landed weather, which the live
board's micro-batch does not hold (it never reads the lake); the lake path holds both for the
dates it recomputes, and the score is a function of the data before the scoring time, so it
is the same whenever it is computed. The hot path is unchanged: its documents carry no score,
``readmodels.resolve`` carries the lake document's scores onto the hot one when that is shown,
and "both paths give the same documents" still holds for every field they both write.
A flight reaches the board 2 h before its departure; the lake path rewrites its bucket
within seconds of its ``scheduled`` event (the stream's trigger, 10 s), so a flight carries
its score well before it can depart.

Cost, measured (``bench/delay_risk.py``, ``scoring``): the board step of a refresh of one
day's ~1,000 flights, with the model against without it; the live board's micro-batch is not
touched (0 s added to its p95 by construction, beside the CPU the lake path already shares).
"""

from __future__ import annotations

from collections.abc import Callable

import structlog
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipelines.core.config import Settings
from pipelines.lake import models
from pipelines.transform import delay_features, delay_model

log = structlog.get_logger(__name__)


def with_risk(
    spark: SparkSession, settings: Settings, touched: DataFrame, flights: DataFrame,
    weather: Callable[[], DataFrame],
) -> DataFrame:  # fmt: skip
    """``touched`` (clean flights of the buckets to write) with ``delay_risk`` from the newest
    model of the lake (its features from ``flights``, the clean flights of the same dates, and
    ``weather()``, the clean weather of their hours, read only when a model exists);
    unchanged when no model is trained yet (one look for the metrics table's log)."""
    found = models.latest(spark, settings)
    if found is None:
        return touched
    version, model = found
    feats = delay_features.features(touched, weather(), history=flights)
    scores = delay_model.score(model, feats).select("flight_key", "delay_risk")
    log.debug("risk.scored", model=version)
    return touched.join(scores, "flight_key", "left").withColumn(
        "delay_risk", F.round("delay_risk", 4)
    )
