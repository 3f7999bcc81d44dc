"""The page following the stream (issue 17), the pure part: when to read, what to read, and
which KPI row of an hour is the newest. No I/O (``follow`` reads and schedules).

The stream writes two paths (docs/data-model.md): a hot path puts an event into its
``flights_by_hour`` bucket and its hour's ``kpi_hourly`` document within seconds, the exact
lake path rewrites ``kpi_daily`` (the day's hours, carriers, weather) every ~30 s. After every
micro-batch each path notes ``{batch_id, at, rows, lag, seconds}`` under ``hot`` / ``lake`` in
``pipeline_state.flights_stream``. The page polls that one document by ``_id`` every
:data:`LIVE_S` seconds and reads the board and the hours again only when a batch id moved
(:func:`marks`); the hours' rows go over the day's ``kpi_daily`` rows, the newer of the two
winning hour by hour (:func:`overlay`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from pipelines.core.domain import ORIGINS
from pipelines.serving import buckets
from pipelines.serving import readmodels as RM

BOARD_BEFORE, BOARD_AFTER, board_window = RM.BOARD_BEFORE, RM.BOARD_AFTER, RM.board_window
LIVE_S = 1.0  # seconds between two polls of pipeline_state (the board and the tiles)
STREAM = "flights_stream"  # the pipeline_state document the stream writes
PATHS = RM.STREAM_PATHS  # its queries: live board, lake path (sub-documents)
LIVE_DAYS = 2  # the clock's day and the day before (late arrivals) still change
KEY = ["origin", "hour_utc"]  # an hour's row, in kpi_daily.hours and in kpi_hourly

Marks = tuple[Any, ...]


marks = RM.stream_marks  # the batch ids of the hot and lake paths (readmodels)


touched = buckets.touched  # the buckets a batch of the live board raised (serving)


def moved(seen: Marks | None, now: Marks | None) -> bool:
    """The stream wrote since ``seen`` (the marks of the last read drawn)."""
    return now is not None and now != seen


def live_dates(selected: Iterable[str], clock_day: str | None) -> list[str]:
    """Of the ``selected`` local dates, those the stream still changes: the clock's day and
    the :data:`LIVE_DAYS` - 1 days before it (none before there is a clock)."""
    if clock_day is None:
        return []
    day = date.fromisoformat(clock_day)
    recent = {(day - timedelta(days=i)).isoformat() for i in range(LIVE_DAYS)}
    return sorted(set(selected) & recent)


def hour_ids(dates: Iterable[str], clock: datetime, origins: Iterable[str] = ORIGINS) -> list[str]:
    """``kpi_hourly`` ids of the hours of ``dates`` that have started by ``clock`` (the tiles
    count the clock's day up to its hour), at every origin."""
    top = clock.astimezone(UTC).replace(tzinfo=None)
    origins = list(origins)
    return [
        RM.hour_key(o, h)
        for d in sorted(set(dates))
        for h in RM.hours_of_date(d)
        if h <= top
        for o in origins
    ]


def _stamp(value: Any) -> pd.Timestamp:
    """A datetime (naive = UTC) as a UTC Timestamp, NaT when unknown."""
    ts = pd.to_datetime(value, utc=True, errors="coerce")
    return ts if isinstance(ts, pd.Timestamp) else pd.NaT


def overlay(
    daily: pd.DataFrame, stamps: Mapping[str, datetime | None], hot: pd.DataFrame | None
) -> pd.DataFrame:
    """The hourly KPI rows with, hour by hour, the newest of the two writers.

    ``daily``: the rows of the ``kpi_daily`` documents read (``date``, ``origin``,
    ``hour_utc``, measures, ``version`` when the document carries one); ``stamps``: each
    date's ``kpi_daily.updated_at``; ``hot``: ``kpi_hourly`` rows (the same columns,
    ``version`` and ``updated_at``). A ``kpi_hourly`` row replaces the ``kpi_daily`` row of
    its hour when both carry a version and its version is not lower, else when its
    ``updated_at`` is not older than its day document's (or that is unknown); an hour only
    ``kpi_hourly`` has is added. When both are up to date they hold the same measures, so
    either gives the same figures."""
    if hot is None or hot.empty:
        return daily
    if daily.empty:
        return hot.reset_index(drop=True)
    hot_ts = pd.to_datetime(hot["updated_at"], utc=True, errors="coerce")
    day_ts = pd.to_datetime(hot["date"].map(lambda d: _stamp(stamps.get(d))), utc=True)
    newer = (hot_ts.isna() | day_ts.isna() | (hot_ts >= day_ts)).to_numpy()
    if "version" in daily.columns:
        theirs = daily[[*KEY, "version"]].drop_duplicates(KEY, keep="last")
        known = hot[KEY].merge(theirs, on=KEY, how="left")["version"]  # in hot's order
        known = pd.to_numeric(known, errors="coerce").to_numpy(dtype="float64")
        mine = pd.to_numeric(hot["version"], errors="coerce").to_numpy(dtype="float64")
        both = ~(pd.isna(known) | pd.isna(mine))
        newer = np.where(both, mine >= known, newer)
    winners = hot[newer]
    if winners.empty:
        return daily
    replaced = pd.MultiIndex.from_frame(daily[KEY]).isin(pd.MultiIndex.from_frame(winners[KEY]))
    kept = daily[~replaced]
    return pd.concat([kept, winners], ignore_index=True) if len(kept) else winners
