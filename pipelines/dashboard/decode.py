"""The serving documents of docs/data-model.md as the dashboard's frames: ``kpi_profile`` as a
:class:`~.kpis.Profile`, ``kpi_daily`` / ``kpi_route_monthly`` as :class:`~.kpis.Rows`,
``kpi_hourly`` as hourly rows, the ``flights_by_hour`` buckets as the live board's flights.
Pure, no I/O (``queries`` and ``follow`` read)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import pandas as pd

from .kpi_frames import (
    CARRIER_KEYS,
    CARRIER_WEEKDAY_KEYS,
    DAY_COLUMNS,
    HOURLY_KEYS,
    IMPACT_KEYS,
    ROUTE_KEYS,
    WEATHER_KEYS,
    WEEKDAY_HOUR_KEYS,
    Profile,
    Rows,
    frame_of,
    iso_weekday,
    kpi_frame,
    utc,
)


def profile_of(doc: Mapping[str, Any] | None) -> Profile:
    """The ``kpi_profile`` document as frames (empty when there is none)."""
    if not doc:
        return Profile.empty()
    days = frame_of(doc.get("days") or [], DAY_COLUMNS)
    days["updated_at"] = days["updated_at"].map(utc)
    return Profile(
        days,
        _typed(kpi_frame(doc.get("weekday_hour") or [], WEEKDAY_HOUR_KEYS)),
        _typed(kpi_frame(doc.get("carrier_weekday") or [], CARRIER_WEEKDAY_KEYS)),
        kpi_frame(doc.get("weather") or [], WEATHER_KEYS),
        utc(doc.get("updated_at")),
    )


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    for column in ("weekday", "local_hour"):
        if column in frame:
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame


def daily_rows(docs: Iterable[Mapping[str, Any]], asked: Iterable[str] = ()) -> Rows:
    """The rows of ``kpi_daily`` documents (``hours``, ``carriers``, ``weather``), each with
    its document's ``date`` (and ``weekday``); ``asked`` dates without a document are
    recorded as read, with nothing."""
    hours, carriers, weather = [], [], []
    read: dict[str, datetime | None] = dict.fromkeys(asked)
    for doc in docs:
        day = doc.get("date") or doc["_id"]
        weekday = iso_weekday(day)
        read[day] = utc(doc.get("updated_at"))
        hours += [{**r, "date": day, "weekday": weekday} for r in doc.get("hours") or ()]
        carriers += [{**r, "date": day, "weekday": weekday} for r in doc.get("carriers") or ()]
        weather += [{**r, "date": day} for r in doc.get("weather") or ()]
    hourly = _typed(kpi_frame(hours, HOURLY_KEYS))
    hourly["hour_utc"] = pd.to_datetime(hourly["hour_utc"], utc=True)
    return Rows(
        hourly,
        kpi_frame(carriers, CARRIER_KEYS),
        kpi_frame(weather, IMPACT_KEYS),
        kpi_frame([], ROUTE_KEYS),
        read,
    )


HOT_COLUMNS = (*HOURLY_KEYS, "version", "updated_at")


def hourly_frame(docs: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """``kpi_hourly`` documents as rows like ``kpi_daily``'s ``hours`` (``date``, ``weekday``,
    ``origin``, ``hour_utc``, ``local_hour``, measures) plus ``version`` and ``updated_at``."""
    rows = []
    for doc in docs:
        row = {k: v for k, v in doc.items() if k != "_id"}
        day = row.get("date")
        if day:
            row["weekday"] = iso_weekday(day)
        rows.append(row)
    frame = _typed(kpi_frame(rows, HOT_COLUMNS))
    frame["hour_utc"] = pd.to_datetime(frame["hour_utc"], utc=True)
    frame["updated_at"] = pd.to_datetime(frame["updated_at"], utc=True)
    frame["version"] = pd.to_numeric(frame["version"], errors="coerce")
    return frame


def month_rows(docs: Iterable[Mapping[str, Any]], asked: Iterable[str] = ()) -> Rows:
    """The routes of ``kpi_route_monthly`` documents, each with its document's ``month``."""
    rows, read = [], dict.fromkeys(asked)
    for doc in docs:
        month = doc.get("month") or doc["_id"]
        read[month] = utc(doc.get("updated_at"))
        rows += [{**r, "month": month} for r in doc.get("routes") or ()]
    frame = kpi_frame(rows, ROUTE_KEYS)
    for c in ("dest_lat", "dest_lon"):
        frame[c] = pd.to_numeric(frame[c], errors="coerce")
    empty = Rows.empty()
    return Rows(empty.hourly, empty.carrier_daily, empty.weather_impact, frame, {}, read)


BOARD_FIELDS = (
    "flight_key", "carrier", "carrier_name", "flight", "origin", "dest", "dest_name", "status",
    "status_rank", "dep_delay", "sched_dep_utc", "dep_time_utc", "tailnum", "cancelled",
    "delay_risk",  # a model's score, 0..1, where one wrote it (the delay_risk alert rule)
)  # fmt: skip


def board_frame(docs: Iterable[Mapping[str, Any]], start: datetime, end: datetime) -> pd.DataFrame:
    """The flights of ``flights_by_hour`` documents scheduled within [start, end]; a flight's
    ``origin`` is its bucket's."""
    rows = []
    for doc in docs:
        origin = doc.get("origin") or str(doc["_id"]).split("|")[0]
        for f in doc.get("flights") or ():
            sched = utc(f.get("sched_dep_utc"))
            if sched is not None and start <= sched <= end:
                rows.append({"origin": origin, **{c: f.get(c) for c in BOARD_FIELDS if c in f},
                             "sched_dep_utc": sched})  # fmt: skip
    return frame_of(rows, BOARD_FIELDS)
