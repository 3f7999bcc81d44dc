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

Cost, measured (``bench/delay_risk.py``, 2 cores, load 5 to 11): one day's 980 flights
through the Spark features and the MLlib transform took 15 to 40 s, longer than a refresh; so
they are collected and scored on the driver (``transform.delay_scoring``, held equal to both by
the tests): 1.8 to 2.7 s with the collect, 0.1 to 0.18 s of Python. Without a model, one look
for the metrics table's log a minute. The live board's micro-batch is not touched (0 s added
to its p95 by construction, beside the CPU the lake path already shares with it).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import structlog
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pipelines.lake import models
from pipelines.lake.tables import Lake
from pipelines.transform import delay_features, delay_scoring

log = structlog.get_logger(__name__)


CHECK_EVERY_S = 60.0  # how often the lake path looks for a newer model (a small Delta read)


def newest(lake: Lake) -> tuple[str, delay_scoring.LinearScorer] | None:
    """(version, scorer) of ``lake.models.latest``, looked up at most every
    :data:`CHECK_EVERY_S` (the daily retrain's new version is picked up within a minute);
    remembered by the lake (``Lake.memo``), the scorer built once per version."""
    at, found = lake.memo.get("risk.newest", (-math.inf, None))
    if time.monotonic() - at >= CHECK_EVERY_S:
        latest = models.latest(lake)
        if latest is None:
            found = None
        elif found is None or found[0] != latest[0]:
            found = (latest[0], delay_scoring.LinearScorer.from_model(latest[1]))
        lake.memo["risk.newest"] = (time.monotonic(), found)
    return found


def with_risk(
    lake: Lake, touched: DataFrame, flights: DataFrame, weather: Callable[[], DataFrame]
) -> DataFrame:
    """``touched`` (clean flights of the buckets to write) with ``delay_risk`` from the newest
    model of the lake: its features from ``flights`` (the clean flights of the same dates,
    collected: a few thousand rows) and ``weather()`` (the clean weather of their hours, read
    only when a model exists), computed and scored on the driver
    (``transform.delay_scoring``, held equal to the Spark features and the MLlib transform);
    unchanged when no model is trained yet (one look for the metrics table's log)."""
    found = newest(lake)
    if found is None or touched.isEmpty():  # no model, or no bucket to write (a rebuild's
        return touched  # past chunks, outside the serving horizon): nothing collected
    version, scorer = found
    fields = sorted({*delay_features.HISTORY_FIELDS, *delay_features.KNOWN_AT_SCORING})
    rows = [r.asDict() for r in flights.select(*fields).collect()]
    measures = ("origin", "hour_utc", *delay_features.WEATHER_MEASURES)
    sky = [r.asDict() for r in weather().select(*measures).collect()]
    scores = [(f["flight_key"], round(scorer.score(f), 4))
              for f in delay_scoring.features(rows, sky)]  # fmt: skip
    log.debug("risk.scored", model=version, flights=len(scores))
    frame = lake.spark.createDataFrame(scores, "flight_key string, delay_risk double")
    return touched.join(F.broadcast(frame), "flight_key", "left")
