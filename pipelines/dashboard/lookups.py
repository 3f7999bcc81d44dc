"""The reads of the look-ahead and of search / drill-down (issue 20, parts 2 and 3), every one
by ``_id`` (FerretDB v1.24 answers only ``{_id: value}`` from an index, docs/data-model.md):

- :func:`read_ahead`: the ``flights_by_hour`` buckets of the clock's hour and the
  :data:`~.ahead.AHEAD_MAX` hours after it at the three airports (21 ids), each resolved with
  its ``flights_by_hour_hot`` bucket (``queries.resolved``: the one that knows more), and the
  ``weather_hourly`` documents of the clock's hour and the
  :data:`~.ahead.WEATHER_HOURS` before it (12 ids). The profile it is compared with is the
  page's snapshot's (already read).
- :func:`read_day_flights`: the buckets of every hour of some local days at the three airports
  (24 x 3 ids a day, 23 or 25 on a DST day), resolved the same way, as one flights frame.

Measured on the local stack (FerretDB v1.24 with the lookup fix, 2 cores shared with a CI run
at load 8 to 10, the 2013-01-01 .. 01-02 window of the browser test): see ``docs/dashboard.md``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
from pymongo.database import Database

from pipelines.serving import readmodels as RM

from .ahead import AHEAD_MAX, WEATHER_HOURS, ahead_ids, weather_ids
from .queries import by_ids, resolved
from .search import flights_frame

# what the look-ahead and the search read of a bucket (its flights are the answer)
BUCKET_PROJECTION = {"origin": 1, "hour_utc": 1, "flights": 1, "version": 1}
WEATHER_PROJECTION = {"origin": 1, "hour_utc": 1, "visib_km": 1, "wind_speed_kmh": 1,
                      "precip_mm": 1, "visib_band": 1, "wind_band": 1, "precip": 1}  # fmt: skip


@dataclass
class Ahead:
    """What the look-ahead read: the resolved board buckets and the weather documents, for
    the replay clock ``clock``."""

    clock: datetime
    buckets: list[dict[str, Any]]
    weather: list[dict[str, Any]]
    reads: Counter = field(default_factory=Counter)
    seconds: float = 0.0


def read_ahead(
    db: Database, clock: datetime, hours: int = AHEAD_MAX, weather_hours: int = WEATHER_HOURS
) -> Ahead:
    """The board buckets of the clock's hour and the ``hours`` after it (lake or hot path,
    whichever knows more) and the weather of the clock's hour and the ``weather_hours``
    before it, all by ``_id``."""
    started, reads = time.perf_counter(), Counter()
    buckets = resolved(db, RM.BOARD, ahead_ids(clock, hours), BUCKET_PROJECTION, reads)
    weather = by_ids(
        db[RM.WEATHER_HOURLY], weather_ids(clock, weather_hours), WEATHER_PROJECTION, reads
    )
    return Ahead(clock, buckets, weather, reads, time.perf_counter() - started)


@dataclass
class DayFlights:
    """The flights of ``days`` (every airport) as :func:`~.search.flights_frame` gives them."""

    days: tuple[str, ...]
    flights: pd.DataFrame
    reads: Counter = field(default_factory=Counter)
    seconds: float = 0.0


def read_day_flights(db: Database, days: Iterable[str]) -> DayFlights:
    """The ``flights_by_hour`` buckets of every hour of ``days`` at the three airports, each
    resolved with its hot bucket, by ``_id``; the flights scheduled on those local days."""
    started, reads = time.perf_counter(), Counter()
    days = tuple(sorted(set(days)))
    docs = resolved(db, RM.BOARD, RM.board_keys(days), BUCKET_PROJECTION, reads)
    frame = flights_frame(docs)
    frame = frame[frame["date"].isin(days)].reset_index(drop=True)
    return DayFlights(days, frame, reads, time.perf_counter() - started)
