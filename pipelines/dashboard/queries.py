"""The dashboard's read side over the serving collections of docs/data-model.md.

Two layers:

- ``read_*`` / :func:`load_snapshot`: pymongo ``find`` + projection, one read per collection
  and refresh. FerretDB v1.24 (SQLite) pushes down only ``_id`` equality and a bare ``limit``:
  any other filter scans the whole collection, and it decodes every value of a document on
  read. So the KPIs come from ``kpi_daily`` (one packed document per local date) and the live
  board from the ``flights_by_hour`` documents of the hours around the clock, by ``_id``. The
  dashboard reads a :class:`Snapshot` once per refresh and answers every filter change from
  memory.
- pure functions (``kpi_summary``, ``hourly_series``, ``carrier_table`` ...) over the snapshot's
  frames and a :class:`Scope`. Sums are added up client-side (FerretDB computes only the first
  accumulator of a ``$group`` correctly: no ``$group`` here at all) and every average or
  percentage is computed from stored sums and counts (``dep_delay_sum / dep_delay_n``,
  ``on_time / departed``), so any roll-up is exact.

Errors are not caught here: callers get ``pymongo.errors.PyMongoError`` (or
``ServiceUnavailableError`` from :func:`pipelines.mongo.database`) and decide what to show.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from pymongo.database import Database

from .. import readmodels as RM
from ..readmodels import ORIGINS

NY = ZoneInfo("America/New_York")
ORIGIN_NAMES = {"EWR": "Newark", "JFK": "Kennedy", "LGA": "LaGuardia"}
MEASURES = (
    "flights", "departed", "cancelled", "on_time", "delayed_60",
    "dep_delay_sum", "dep_delay_n", "arr_delay_sum", "arr_delay_n",
)  # fmt: skip
DERIVED = ("on_time_pct", "avg_dep_delay", "avg_arr_delay", "cancel_pct")
JOBS = ("flights_stream", "weather_hourly", "reference_daily")
FAILED = ("failed", "failure", "error", "timeout", "timed_out", "abandoned", "killed")
STATUS_NAMES = {1: "scheduled", 2: "departed", 3: "arrived", 4: "cancelled"}
VISIB_BANDS = ("< 1 mi", "1-3 mi", "3-5 mi", "5-10 mi", "10+ mi")
WIND_BANDS = ("0-10 mph", "10-20 mph", "20-30 mph", "30+ mph")
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
REJECTS_CAP = 20_000  # newest rejects read for the panel
BOARD_BEFORE = timedelta(hours=1)
BOARD_AFTER = timedelta(hours=1)

_MEASURE_PROJ = {m: 1 for m in MEASURES}


# ------------------------------------------------------------------------------- helpers


def utc(value: Any) -> datetime | None:
    """A BSON date (naive = UTC) or ISO string as an aware UTC datetime; None otherwise."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            return utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return None
    return None


def local_date(ts: datetime) -> date:
    """The America/New_York calendar day of ``ts``."""
    return ts.astimezone(NY).date()


def date_range(start: date, end: date) -> list[str]:
    """Inclusive list of ``YYYY-MM-DD`` strings."""
    if end < start:
        return []
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


def iso_weekday(day: str) -> int:
    """1 = Monday ... 7 = Sunday of a ``YYYY-MM-DD`` string (computed, not read: robust)."""
    return date.fromisoformat(day).isoweekday()


def _frame(docs: Iterable[dict[str, Any]], columns: Iterable[str]) -> pd.DataFrame:
    frame = pd.DataFrame(list(docs))
    for column in columns:
        if column not in frame.columns:
            frame[column] = pd.Series(dtype="object")
    return frame


def _measures(frame: pd.DataFrame) -> pd.DataFrame:
    """Measure columns as floats, missing = 0 (an absent measure counted nothing)."""
    for m in MEASURES:
        if m not in frame.columns:
            frame[m] = 0.0
        frame[m] = pd.to_numeric(frame[m], errors="coerce").fillna(0.0).astype("float64")
    return frame


def _ratio(num: Any, den: Any, scale: float = 1.0) -> Any:
    num = np.asarray(num, dtype="float64")
    den = np.asarray(den, dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(den > 0, num * scale / np.where(den > 0, den, 1.0), np.nan)
    return out if np.ndim(out) else float(out)


def derive(frame: pd.DataFrame) -> pd.DataFrame:
    """Add on-time %, average delays and cancellation % computed from the summed measures."""
    frame = frame.copy()
    frame["on_time_pct"] = _ratio(frame["on_time"], frame["departed"], 100.0)
    frame["avg_dep_delay"] = _ratio(frame["dep_delay_sum"], frame["dep_delay_n"])
    frame["avg_arr_delay"] = _ratio(frame["arr_delay_sum"], frame["arr_delay_n"])
    frame["cancel_pct"] = _ratio(frame["cancelled"], frame["flights"], 100.0)
    return frame


def summarize(sums: pd.Series | dict[str, float]) -> dict[str, float]:
    """Measures + derived values of one set of sums."""
    sums = {m: float(sums.get(m, 0.0) or 0.0) for m in MEASURES}
    row = derive(pd.DataFrame([sums])).iloc[0]
    return {k: float(row[k]) for k in (*MEASURES, *DERIVED)}


def rollup(frame: pd.DataFrame, by: str | list[str]) -> pd.DataFrame:
    """Sum the measures per ``by`` and derive the ratios (an empty frame keeps its columns)."""
    keys = [by] if isinstance(by, str) else list(by)
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in (*keys, *MEASURES, *DERIVED)})
    summed = frame.groupby(keys, as_index=False, sort=True)[list(MEASURES)].sum()
    return derive(summed)


# ---------------------------------------------------------------------------------- scope


@dataclass(frozen=True)
class Scope:
    """What the filters select. Empty ``airports`` / ``carriers`` mean all; dates inclusive,
    ``None`` = the whole loaded period."""

    airports: tuple[str, ...] = ()
    carriers: tuple[str, ...] = ()
    date_from: date | None = None
    date_to: date | None = None

    def dates(self) -> list[str] | None:
        if self.date_from is None or self.date_to is None:
            return None
        return date_range(self.date_from, self.date_to)

    def months(self) -> list[str] | None:
        days = self.dates()
        return None if days is None else sorted({d[:7] for d in days})

    def select(
        self,
        frame: pd.DataFrame,
        *,
        airports: bool = True,
        carriers: bool = True,
        dates: bool = True,
    ) -> pd.DataFrame:
        """Rows of ``frame`` in the scope (columns ``origin``, ``carrier``, ``date``)."""
        mask = pd.Series(True, index=frame.index)
        if airports and self.airports and "origin" in frame:
            mask &= frame["origin"].isin(self.airports)
        if carriers and self.carriers and "carrier" in frame:
            mask &= frame["carrier"].isin(self.carriers)
        if dates and (days := self.dates()) is not None and "date" in frame:
            mask &= frame["date"].isin(days)
        return frame[mask]


# ------------------------------------------------------------------------------ reading


def read_states(db: Database) -> dict[str, dict[str, Any]]:
    """``pipeline_state`` documents by job id (a handful of documents)."""
    return {d["_id"]: d for d in db.pipeline_state.find({})}


def replay_clock(db: Database, states: dict[str, dict[str, Any]] | None = None):
    """Newest event time the stream has processed (``pipeline_state.flights_stream``);
    falls back to the newest ``last_event_time`` in ``flights``."""
    states = read_states(db) if states is None else states
    if ts := utc(states.get("flights_stream", {}).get("newest_event_time")):
        return ts
    doc = db.flights.find_one(
        {"last_event_time": {"$exists": True}},
        {"last_event_time": 1},
        sort=[("last_event_time", -1)],
    )
    return utc(doc.get("last_event_time")) if doc else None


def read_kpis(db: Database) -> dict[str, pd.DataFrame]:
    """Every KPI row of the loaded period from ``kpi_daily`` (one packed document per local
    date: a year is 365 reads instead of ~40,000 documents): ``hourly``, ``carrier_daily``,
    ``weather_impact`` and ``route_monthly`` (route-day partials summed per month)."""
    tables: dict[str, dict[str, list[Any]]] = {}
    for doc in db[RM.KPI_DAILY].find({}, {"tables": 1}):
        for name, table in RM.unpack_daily(doc).items():
            into = tables.setdefault(name, {})
            for column, values in table.items():
                into.setdefault(column, []).extend(values)
    hourly, carrier, impact, routes = (
        _measures(_frame_of(tables.get(name), columns)) for name, columns in _KPI_COLUMNS.items()
    )
    hourly["hour_utc"] = pd.to_datetime(hourly["hour_utc"], utc=True)
    hourly["local_hour"] = pd.to_numeric(hourly["local_hour"], errors="coerce")
    return {
        "hourly": hourly.dropna(subset=["date"]),
        "carrier_daily": carrier.dropna(subset=["date"]),
        "weather_impact": impact,
        "route_monthly": route_months(routes),
    }


_ROUTE_ATTRS = ("dest_name", "dest_lat", "dest_lon")
_KPI_COLUMNS = {  # the columns each packed table is read with, present or not
    "kpi_hourly": ("origin", "hour_utc", "date", "local_hour"),
    "kpi_carrier_daily": ("carrier", "carrier_name", "origin", "date"),
    "weather_impact": ("origin", "date", "visib_band", "wind_band", "precip"),
    "routes": ("origin", "dest", "date", "month", *_ROUTE_ATTRS),
}


def route_months(routes: pd.DataFrame) -> pd.DataFrame:
    """Route-day rows summed per (origin, dest, month); names and coordinates carried."""
    keys = ["origin", "dest", "month"]
    if routes.empty:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in (*keys, *_ROUTE_ATTRS)}
                            | {m: pd.Series(dtype="float64") for m in MEASURES})  # fmt: skip
    grouped = routes.groupby(keys, as_index=False, sort=True, dropna=False)
    frame = (
        grouped[list(MEASURES)]
        .sum()
        .merge(grouped[list(_ROUTE_ATTRS)].first(), on=keys, how="left")
    )
    for c in ("dest_lat", "dest_lon"):
        frame[c] = pd.to_numeric(frame[c], errors="coerce")
    return frame


def _frame_of(table: dict[str, list[Any]] | None, columns: Iterable[str]) -> pd.DataFrame:
    """A packed column table as a frame with at least ``columns``."""
    frame = pd.DataFrame(table or {})
    for column in columns:
        if column not in frame.columns:
            frame[column] = pd.Series(dtype="object")
    return frame


def read_weather_near(db: Database, clock: datetime, hours: int = 3) -> pd.DataFrame:
    """``weather_hourly`` of the last ``hours`` hours up to the clock, by ``_id`` (the only
    lookup FerretDB answers without a scan): ``ORIGIN|YYYY-MM-DDTHH:00Z``."""
    top = clock.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    proj = {"origin": 1, "hour_utc": 1, "visib_km": 1, "wind_speed_kmh": 1, "precip_mm": 1,
            "temp_c": 1, "visib_band": 1, "wind_band": 1, "precip": 1}  # fmt: skip
    docs = []
    for origin in ORIGINS:
        for h in range(hours + 1):
            key = RM.hour_key(origin, top - timedelta(hours=h))
            if doc := db.weather_hourly.find_one({"_id": key}, proj):
                docs.append(doc)
                break
    frame = _frame(docs, proj)
    frame["hour_utc"] = pd.to_datetime(frame["hour_utc"], utc=True)
    return frame


def read_board(
    db: Database,
    clock: datetime,
    before: timedelta = BOARD_BEFORE,
    after: timedelta = BOARD_AFTER,
) -> pd.DataFrame:
    """Flights scheduled within [clock - before, clock + after], from the ``flights_by_hour``
    documents of those hours (read by ``_id``)."""
    start, end = clock - before, clock + after
    hour = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    keys = []
    while hour <= end:
        keys += [RM.hour_key(o, hour) for o in ORIGINS]
        hour += timedelta(hours=1)
    cols = ["carrier", "carrier_name", "flight", "origin", "dest", "dest_name", "status",
            "status_rank", "dep_delay", "sched_dep_utc", "dep_time_utc", "tailnum",
            "cancelled"]  # fmt: skip
    rows = [
        {c: f.get(c) for c in ("_id", *cols)}
        for hour_flights in RM.read_board(db, keys).values()
        for f in hour_flights.values()
        if start <= f["sched_dep_utc"] <= end
    ]
    return _frame(rows, [*cols, "_id"])


def read_runs(db: Database, now: datetime, days: int = 8) -> pd.DataFrame:
    """``pipeline_runs`` started in the last ``days`` days (job, status, start, end, error)."""
    proj = {"job": 1, "status": 1, "start": 1, "end": 1, "error": 1}
    frame = _frame(db.pipeline_runs.find({"start": {"$gte": now - timedelta(days=days)}}, proj),
                   proj)  # fmt: skip
    for c in ("start", "end"):
        frame[c] = pd.to_datetime(frame[c], utc=True, errors="coerce")
    return frame


def read_rejects(db: Database, cap: int = REJECTS_CAP) -> tuple[pd.DataFrame, int]:
    """The newest ``cap`` rejects (source, reason, at) and how many there are in all."""
    total = db.rejects.estimated_document_count()
    cursor = db.rejects.find({}, {"source": 1, "reason": 1, "at": 1, "_id": 0})
    if total > cap:
        cursor = cursor.sort("at", -1).limit(cap)
    frame = _frame(cursor, ["source", "reason", "at"])
    frame["at"] = pd.to_datetime(frame["at"], utc=True, errors="coerce")
    return frame, total


def read_airlines(db: Database) -> dict[str, str]:
    return {d["_id"]: d.get("name") or d["_id"] for d in db.airlines.find({}, {"name": 1})}


@dataclass
class Snapshot:
    """Everything the page shows, read once per refresh."""

    read_at: datetime
    clock: datetime | None
    states: dict[str, dict[str, Any]]
    hourly: pd.DataFrame
    carrier_daily: pd.DataFrame
    route_monthly: pd.DataFrame
    weather_impact: pd.DataFrame
    weather_now: pd.DataFrame
    board: pd.DataFrame | None  # flights around the clock; None until read (see read_board)
    runs: pd.DataFrame
    rejects: pd.DataFrame
    rejects_total: int
    airlines: dict[str, str]
    timings: dict[str, float] = field(default_factory=dict)
    board_read_at: datetime | None = None  # wall time the board was read
    has_flights: bool = False  # flight documents exist (KPIs may not yet)

    @property
    def has_data(self) -> bool:
        return not self.hourly.empty or not self.carrier_daily.empty

    @cached_property
    def dates(self) -> list[str]:
        """Local dates with hourly KPIs (the loaded period), sorted."""
        return sorted(self.hourly["date"].dropna().unique()) if len(self.hourly) else []

    @property
    def first(self) -> date | None:
        return date.fromisoformat(self.dates[0]) if self.dates else None

    @property
    def last(self) -> date | None:
        return date.fromisoformat(self.dates[-1]) if self.dates else None

    def carriers(self) -> list[tuple[str, str]]:
        """(code, name) of every carrier with daily KPIs; names from ``airlines`` or the KPIs."""
        frame = self.carrier_daily
        if frame.empty:
            return []
        names = frame.dropna(subset=["carrier_name"]).groupby("carrier")["carrier_name"].first()
        codes = sorted(frame["carrier"].dropna().unique())
        return [(c, self.airlines.get(c) or names.get(c) or c) for c in codes]


def load_snapshot(db: Database, now: datetime, board: bool = True) -> Snapshot:
    """Read every serving collection the page needs (projections only, sums client-side).

    ``board=False`` leaves the live board to a separate :func:`read_board`."""
    timings: dict[str, float] = {}

    def timed(name: str, fn):
        started = time.perf_counter()
        value = fn()
        timings[name] = time.perf_counter() - started
        return value

    states = timed("pipeline_state", lambda: read_states(db))
    clock = timed("clock", lambda: replay_clock(db, states))
    kpis = timed("kpi_daily", lambda: read_kpis(db))

    def flights() -> pd.DataFrame | None:
        if not board:
            return None
        return read_board(db, clock) if clock else _frame([], ["sched_dep_utc"])

    return Snapshot(
        read_at=now,
        clock=clock,
        states=states,
        hourly=kpis["hourly"],
        carrier_daily=kpis["carrier_daily"],
        route_monthly=kpis["route_monthly"],
        weather_impact=kpis["weather_impact"],
        weather_now=timed(
            "weather_hourly", lambda: read_weather_near(db, clock) if clock else _frame([], [])
        ),
        board=timed("flights", flights),
        runs=timed("pipeline_runs", lambda: read_runs(db, now)),
        **dict(
            zip(
                ("rejects", "rejects_total"),
                timed("rejects", lambda: read_rejects(db)),
                strict=True,
            )
        ),  # fmt: skip
        airlines=timed("airlines", lambda: read_airlines(db)),
        timings=timings,
        board_read_at=now if board else None,
        # a bare find_one is answered without a scan (limit pushdown)
        has_flights=db.flights.find_one({}, {"_id": 1}) is not None,
    )


# ------------------------------------------------------------------- freshness and health


@dataclass(frozen=True)
class Staleness:
    """Age thresholds: amber from ``amber``, red from ``red``."""

    amber: timedelta
    red: timedelta

    def level(self, age: timedelta | None) -> str:
        if age is None:
            return "missing"
        return "red" if age >= self.red else "amber" if age >= self.amber else "ok"


@dataclass(frozen=True)
class FreshnessRule:
    """``replay``: newest data time vs the replay clock; ``wall``: ``updated_at`` vs now."""

    wall: Staleness
    replay: Staleness | None = None  # None: the source defines the clock


DEFAULT_FRESHNESS: dict[str, FreshnessRule] = {
    "flights_stream": FreshnessRule(
        wall=Staleness(timedelta(minutes=5), timedelta(minutes=15)),
    ),
    "weather_hourly": FreshnessRule(
        wall=Staleness(timedelta(minutes=90), timedelta(hours=3)),
        replay=Staleness(timedelta(hours=2), timedelta(hours=6)),
    ),
    "reference_daily": FreshnessRule(
        wall=Staleness(timedelta(hours=26), timedelta(hours=50)),
        replay=Staleness(timedelta(hours=26), timedelta(hours=50)),
    ),
}
_NEWEST_KEYS = ("newest_event_time", "newest_data_time", "newest_hour", "snapshot_date", "date")
_LEVEL_ORDER = {"ok": 0, "amber": 1, "red": 2, "missing": 3}


def worst(levels: Iterable[str]) -> str:
    levels = list(levels)
    return max(levels, key=lambda lv: _LEVEL_ORDER.get(lv, 0)) if levels else "ok"


def freshness(
    states: dict[str, dict[str, Any]],
    clock: datetime | None,
    now: datetime,
    rules: dict[str, FreshnessRule] | None = None,
) -> list[dict[str, Any]]:
    """One dict per source: newest data time, ``updated_at``, replay and wall ages, level
    (ok / amber / red / missing)."""
    rows = []
    for source, rule in (rules or DEFAULT_FRESHNESS).items():
        state = states.get(source) or {}
        newest = next((utc(state[k]) for k in _NEWEST_KEYS if utc(state.get(k))), None)
        updated = utc(state.get("updated_at"))
        wall_age = now - updated if updated else None
        replay_age = clock - newest if (clock and newest) else None
        levels = [rule.wall.level(wall_age)]
        if rule.replay is not None and replay_age is not None:  # unknown newest: wall only
            levels.append(rule.replay.level(replay_age))
        rows.append(
            {
                "source": source,
                "newest": newest,
                "updated_at": updated,
                "replay_age": replay_age if rule.replay is not None else None,
                "wall_age": wall_age,
                "level": "missing" if not state else worst(levels),
            }
        )
    return rows


def _failed(status: Any) -> bool:
    return isinstance(status, str) and (status.lower() in FAILED or "fail" in status.lower())


def pipeline_health(
    runs: pd.DataFrame, now: datetime, jobs: Sequence[str] = JOBS
) -> list[dict[str, Any]]:
    """Last run of each job (status, start, end, error) and its failures in the 24 h before
    ``now``; level red when the last run failed, amber when an earlier one did."""
    since = pd.Timestamp(now - timedelta(hours=24))
    rows = []
    for job in jobs:
        mine = runs[runs["job"] == job].sort_values("start") if len(runs) else runs
        last = mine.iloc[-1] if len(mine) else None
        recent = mine[mine["start"] >= since] if len(mine) else mine
        failures = int(sum(_failed(s) for s in recent["status"])) if len(recent) else 0
        status = None if last is None else last["status"]
        error = None if last is None else last.get("error")
        level = (
            "missing"
            if last is None
            else "red"
            if _failed(status)
            else "amber"
            if failures
            else "ok"
        )
        rows.append(
            {
                "job": job,
                "status": status,
                "start": None if last is None or pd.isna(last["start"]) else last["start"],
                "end": None if last is None or pd.isna(last["end"]) else last["end"],
                "failures_24h": failures,
                "error": error.get("message") if isinstance(error, dict) else error,
                "level": level,
            }
        )
    return rows


# ----------------------------------------------------------------------------------- KPIs


@dataclass
class KpiSummary:
    """Tile values of a scope and what the same weekdays look like on average."""

    value: dict[str, float]
    baseline: dict[str, float] | None
    basis: str  # "kpi_hourly" (time-of-day aligned) or "kpi_carrier_daily" (whole days)
    dates: list[str] = field(default_factory=list)  # selected dates that have started
    baseline_dates: list[str] = field(default_factory=list)
    baseline_label: str = ""  # "Wednesday", "same weekdays" or "day" (fallback)
    cut_hour: int | None = None  # the clock's day counts scheduled hours <= this local hour
    note: str = ""


def _day_sums(frame: pd.DataFrame, dates: list[str], cut_hour: int | None) -> pd.DataFrame:
    """Measures summed per date (dates without documents count zero)."""
    if cut_hour is not None and "local_hour" in frame:
        frame = frame[frame["local_hour"] <= cut_hour]
    if frame.empty:
        return pd.DataFrame(0.0, index=dates, columns=list(MEASURES))
    return frame.groupby("date")[list(MEASURES)].sum().reindex(dates, fill_value=0.0)


def kpi_summary(
    hourly: pd.DataFrame,
    carrier_daily: pd.DataFrame,
    scope: Scope,
    clock: datetime | None,
) -> KpiSummary:
    """Tiles of ``scope``, and the average of the same weekdays over the loaded period.

    Without a carrier filter the hourly KPIs are used, so the day of the replay clock is
    compared with the same hours (scheduled up to the clock's local hour) of the other days;
    with a carrier filter the per-carrier daily KPIs are (whole days). The baseline of a
    selected day is the mean over the complete loaded days (before the clock's day, not
    selected) on the same weekday; when one has none, every such day of any weekday is used
    and the label says "day".
    """
    use_hourly = not scope.carriers
    frame = hourly if use_hourly else carrier_daily
    basis = "kpi_hourly" if use_hourly else "kpi_carrier_daily"
    frame = scope.select(frame, carriers=not use_hourly, dates=False)
    loaded = sorted(pd.concat([hourly["date"], carrier_daily["date"]]).dropna().unique())
    clock_day = local_date(clock).isoformat() if clock else None
    cut = clock.astimezone(NY).hour if (clock and use_hourly) else None
    selected = scope.dates()
    selected = loaded if selected is None else selected
    selected = [d for d in selected if clock_day is None or d <= clock_day]
    if not selected:
        return KpiSummary(summarize({}), None, basis, note="no day of the selection has started")
    day_cut = {d: (cut if d == clock_day else None) for d in selected}
    value = pd.concat(
        [_day_sums(frame[frame["date"] == d], [d], day_cut[d]) for d in selected]
    ).sum()
    summary = KpiSummary(
        summarize(value),
        None,
        basis,
        dates=selected,
        cut_hour=cut if clock_day in selected else None,
    )
    complete = [
        d for d in loaded if (clock_day is None or d < clock_day) and d not in set(selected)
    ]
    if not complete:
        summary.note = "no other complete day loaded yet"
        return summary
    expected = pd.Series(0.0, index=list(MEASURES))
    used: set[str] = set()
    fallback = False
    for day in selected:
        same = [b for b in complete if iso_weekday(b) == iso_weekday(day)]
        if not same:
            same, fallback = complete, True
        expected += _day_sums(frame[frame["date"].isin(same)], same, day_cut[day]).mean()
        used.update(same)
    summary.baseline = summarize(expected)
    summary.baseline_dates = sorted(used)
    weekdays = {iso_weekday(d) for d in selected}
    if fallback:
        summary.baseline_label = "day"
        summary.note = "no earlier same weekday loaded: compared with the average day"
    elif len(weekdays) == 1:
        summary.baseline_label = WEEKDAY_NAMES[weekdays.pop() - 1]
    else:
        summary.baseline_label = "same weekdays"
    return summary


# --------------------------------------------------------------------------------- charts


def hourly_series(hourly: pd.DataFrame, scope: Scope) -> pd.DataFrame:
    """Per scheduled hour of the selection: measures, ratios, local time and a label.

    ``kpi_hourly`` is per airport: a carrier filter does not apply here."""
    frame = scope.select(hourly, carriers=False)
    cols = ["hour_utc", "local", "label", *MEASURES, *DERIVED]
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in cols})
    out = rollup(frame, "hour_utc").sort_values("hour_utc").reset_index(drop=True)
    out["local"] = out["hour_utc"].dt.tz_convert(NY)
    multi_day = out["local"].dt.date.nunique() > 1
    out["label"] = out["local"].dt.strftime("%a %d %Hh" if multi_day else "%H:00")
    return out


def carrier_table(carrier_daily: pd.DataFrame, scope: Scope) -> pd.DataFrame:
    """Per carrier over the selection (airports and carriers filters applied)."""
    frame = scope.select(carrier_daily)
    out = rollup(frame, "carrier")
    if out.empty:
        return out.assign(carrier_name=pd.Series(dtype="object"))
    names = frame.dropna(subset=["carrier_name"]).groupby("carrier")["carrier_name"].first()
    out["carrier_name"] = out["carrier"].map(names).fillna(out["carrier"])
    return out


def airport_table(carrier_daily: pd.DataFrame, scope: Scope) -> pd.DataFrame:
    """The three origins side by side over the selection (carrier filter applied, airport
    filter not: this panel compares them)."""
    frame = scope.select(carrier_daily, airports=False)
    out = rollup(frame, "origin")
    base = pd.DataFrame({"origin": list(ORIGINS)})
    out = base.merge(out, on="origin", how="left") if not out.empty else base
    out = derive(_measures(out))
    out["name"] = out["origin"].map(ORIGIN_NAMES)
    return out


def weekday_hour_heatmap(
    hourly: pd.DataFrame, airports: Sequence[str] = (), until: str | None = None
) -> pd.DataFrame:
    """Average departure delay by weekday (rows 1..7) x local hour (columns 0..23) over every
    loaded day up to ``until`` (inclusive); NaN where nothing departed."""
    frame = hourly
    if airports:
        frame = frame[frame["origin"].isin(airports)]
    if until:
        frame = frame[frame["date"] <= until]
    grid = pd.DataFrame(np.nan, index=range(1, 8), columns=range(24))
    frame = frame.dropna(subset=["date", "local_hour"])
    if frame.empty:
        return grid
    frame = frame.assign(
        weekday=frame["date"].map(iso_weekday), local_hour=frame["local_hour"].astype(int)
    )
    sums = frame.groupby(["weekday", "local_hour"])[["dep_delay_sum", "dep_delay_n"]].sum()
    avg = pd.Series(_ratio(sums["dep_delay_sum"], sums["dep_delay_n"]), index=sums.index)
    grid.update(avg.unstack())
    return grid


def weather_impact(
    impact: pd.DataFrame, airports: Sequence[str] = (), until: str | None = None
) -> dict[str, pd.DataFrame]:
    """Average departure delay per visibility band, wind band and precipitation, over every
    loaded day up to ``until``; flights whose weather is unknown are not in the collection."""
    frame = impact
    if airports:
        frame = frame[frame["origin"].isin(airports)]
    if until:
        frame = frame[frame["date"] <= until]
    frame = frame.assign(precip=frame["precip"].map({True: "precipitation", False: "dry"}))
    out = {}
    for key, order in (
        ("visib_band", VISIB_BANDS),
        ("wind_band", WIND_BANDS),
        ("precip", ("dry", "precipitation")),
    ):
        table = rollup(frame.dropna(subset=[key]), key)
        table = pd.DataFrame({key: list(order)}).merge(table, on=key, how="left")
        out[key] = derive(_measures(table))
    return out


def routes(route_monthly: pd.DataFrame, scope: Scope) -> pd.DataFrame:
    """Per destination over the months of the selection (airports filter applied)."""
    frame = scope.select(route_monthly, carriers=False, dates=False)
    if (months := scope.months()) is not None:
        frame = frame[frame["month"].isin(months)]
    out = rollup(frame, "dest")
    if out.empty:
        return out.assign(dest_name=[], dest_lat=[], dest_lon=[])
    info = frame.groupby("dest")[["dest_name", "dest_lat", "dest_lon"]].first()
    out = out.join(info, on="dest")
    return out.sort_values("flights", ascending=False).reset_index(drop=True)


# ------------------------------------------------------------------------------ live board

BOARD_COLUMNS = (
    "sched_local", "flight_no", "carrier", "carrier_name", "origin", "dest", "dest_name",
    "status", "delay", "delay_kind", "dep_local", "tailnum", "sched_dep_utc",
)  # fmt: skip


def live_board(
    flights: pd.DataFrame,
    scope: Scope,
    clock: datetime,
    before: timedelta = BOARD_BEFORE,
    after: timedelta = BOARD_AFTER,
) -> pd.DataFrame:
    """Departures scheduled within [clock - before, clock + after] (airports and carriers
    filters apply, dates do not: this is *now*).

    ``delay`` is the actual departure delay, or for a flight still ``scheduled`` past its
    time the minutes it is late so far (``delay_kind`` = "late, not departed")."""
    if flights.empty:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in BOARD_COLUMNS})
    frame = scope.select(flights, dates=False).copy()
    frame["sched_dep_utc"] = pd.to_datetime(frame["sched_dep_utc"], utc=True)
    start, end = pd.Timestamp(clock - before), pd.Timestamp(clock + after)
    frame = frame[(frame["sched_dep_utc"] >= start) & (frame["sched_dep_utc"] <= end)]
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in BOARD_COLUMNS})
    frame["dep_time_utc"] = pd.to_datetime(frame["dep_time_utc"], utc=True)
    rank = pd.to_numeric(frame["status_rank"], errors="coerce")
    status = frame["status"].where(frame["status"].notna(), rank.map(STATUS_NAMES))
    frame["status"] = status.fillna("scheduled").astype(str)
    dep_delay = pd.to_numeric(frame["dep_delay"], errors="coerce")
    late_for = (pd.Timestamp(clock) - frame["sched_dep_utc"]).dt.total_seconds() / 60.0
    waiting = (frame["status"] == "scheduled") & (late_for > 0)
    delay = dep_delay.where(dep_delay.notna(), late_for.where(waiting).round())
    kind = np.where(dep_delay.notna(), "actual", np.where(waiting, "late, not departed", ""))
    cancelled = frame["status"] == "cancelled"
    frame["delay"] = delay.where(~cancelled)
    frame["delay_kind"] = np.where(cancelled, "", kind)
    frame["sched_local"] = frame["sched_dep_utc"].dt.tz_convert(NY).dt.strftime("%H:%M")
    dep = frame["dep_time_utc"]
    frame["dep_local"] = dep.dt.tz_convert(NY).dt.strftime("%H:%M").where(dep.notna(), "")
    flight = pd.to_numeric(frame["flight"], errors="coerce").astype("Int64").astype(str)
    frame["flight_no"] = frame["carrier"].astype(str) + " " + flight.replace("<NA>", "")
    frame["carrier_name"] = frame["carrier_name"].fillna(frame["carrier"])
    frame["dest_name"] = frame["dest_name"].fillna(frame["dest"])
    frame["tailnum"] = frame["tailnum"].fillna("")
    out = frame.loc[:, list(BOARD_COLUMNS)].sort_values("sched_dep_utc", kind="stable")
    return out.reset_index(drop=True)


# ------------------------------------------------------------------------------- rejects


@dataclass
class RejectSummary:
    total: int
    read: int  # how many of the newest were read (capped at REJECTS_CAP)
    by_source: pd.DataFrame  # source, count, last_at
    by_reason: pd.DataFrame  # source, reason, count, last_at (most frequent first)


def rejects_summary(rejects: pd.DataFrame, total: int | None = None) -> RejectSummary:
    """Counts of refused records by source and by source + reason (counted client-side)."""
    total = len(rejects) if total is None else total
    if rejects.empty:
        cols = {c: pd.Series(dtype="object") for c in ("source", "reason", "count", "last_at")}
        by_reason = pd.DataFrame(cols)
        return RejectSummary(total, 0, by_reason.drop(columns="reason"), by_reason)
    frame = rejects.assign(
        source=rejects["source"].fillna("unknown"),
        reason=rejects["reason"].fillna("(no reason)").astype(str),
    )
    agg = {"count": ("at", "size"), "last_at": ("at", "max")}
    by_source = frame.groupby("source", as_index=False).agg(**agg)
    by_reason = frame.groupby(["source", "reason"], as_index=False).agg(**agg)
    return RejectSummary(
        total,
        len(frame),
        by_source.sort_values("count", ascending=False).reset_index(drop=True),
        by_reason.sort_values(["count", "last_at"], ascending=False).reset_index(drop=True),
    )
