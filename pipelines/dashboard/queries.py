"""The dashboard's read side: small functions over the serving collections of docs/data-model.md.

Every function takes a pymongo ``Database`` and returns plain values or pandas frames. Reads are
``find`` + projection only; sums are added up client-side (FerretDB v1.24 computes only the
first accumulator of a ``$group`` correctly), and every average or percentage is computed from
stored sums and counts (``dep_delay_sum / dep_delay_n``, ``on_time / departed``), so any
roll-up is exact.

Errors are not caught here: a caller gets ``pymongo.errors.PyMongoError`` (or
``ServiceUnavailableError`` from :func:`pipelines.mongo.database`) and decides what to show.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from pymongo.database import Database

NY = ZoneInfo("America/New_York")
ORIGINS = ("EWR", "JFK", "LGA")
ORIGIN_NAMES = {"EWR": "Newark", "JFK": "JFK", "LGA": "LaGuardia"}
MEASURES = (
    "flights", "departed", "cancelled", "on_time", "delayed_60",
    "dep_delay_sum", "dep_delay_n", "arr_delay_sum", "arr_delay_n",
)  # fmt: skip
DERIVED = ("on_time_pct", "avg_dep_delay", "avg_arr_delay", "cancel_pct")
JOBS = ("flights_stream", "weather_hourly", "reference_daily")
SOURCES = JOBS  # pipeline_state ids the header reports on
FAILED = ("failed", "failure", "error", "timeout", "timed_out", "abandoned", "killed")
STATUS_NAMES = {1: "scheduled", 2: "departed", 3: "arrived", 4: "cancelled"}
VISIB_BANDS = ("< 1 mi", "1-3 mi", "3-5 mi", "5-10 mi", "10+ mi")
WIND_BANDS = ("0-10 mph", "10-20 mph", "20-30 mph", "30+ mph")
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
REJECTS_CAP = 20_000  # newest rejects read for the panel

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
    """1 = Monday ... 7 = Sunday of a ``YYYY-MM-DD`` string."""
    return date.fromisoformat(day).isoweekday()


def _frame(docs: Iterable[dict[str, Any]], columns: Sequence[str]) -> pd.DataFrame:
    frame = pd.DataFrame(list(docs))
    for column in columns:
        if column not in frame.columns:
            frame[column] = pd.Series(dtype="object")
    return frame


def _measures(frame: pd.DataFrame) -> pd.DataFrame:
    """Measure columns as floats, missing = 0 (an absent measure counted nothing)."""
    for m in MEASURES:
        frame[m] = pd.to_numeric(frame[m], errors="coerce").fillna(0.0).astype("float64")
    return frame


def _ratio(num: Any, den: Any, scale: float = 1.0) -> Any:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(np.asarray(den, dtype="float64") > 0, np.asarray(num) * scale / den, np.nan)
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
        return pd.DataFrame(columns=[*keys, *MEASURES, *DERIVED])
    summed = frame.groupby(keys, as_index=False, sort=True)[list(MEASURES)].sum()
    return derive(summed)


# ---------------------------------------------------------------------------------- scope


@dataclass(frozen=True)
class Scope:
    """What the filters select. Empty ``airports`` / ``carriers`` mean all; dates inclusive."""

    airports: tuple[str, ...] = ()
    carriers: tuple[str, ...] = ()
    date_from: date | None = None
    date_to: date | None = None

    def dates(self) -> list[str] | None:
        if self.date_from is None or self.date_to is None:
            return None
        return date_range(self.date_from, self.date_to)

    def match(self, *, carriers: bool = True, dates: bool = True, airports: bool = True):
        query: dict[str, Any] = {}
        if airports and self.airports:
            query["origin"] = {"$in": list(self.airports)}
        if carriers and self.carriers:
            query["carrier"] = {"$in": list(self.carriers)}
        if dates and (days := self.dates()) is not None:
            query["date"] = {"$in": days}
        return query

    def months(self) -> list[str] | None:
        days = self.dates()
        return None if days is None else sorted({d[:7] for d in days})


# ---------------------------------------------------------------------- clock and freshness


def replay_clock(db: Database) -> datetime | None:
    """Newest event time the stream has processed (``pipeline_state.flights_stream``);
    falls back to the newest ``last_event_time`` in ``flights``."""
    state = db.pipeline_state.find_one({"_id": "flights_stream"}, {"newest_event_time": 1})
    if state and (ts := utc(state.get("newest_event_time"))):
        return ts
    doc = db.flights.find_one(
        {"last_event_time": {"$exists": True}},
        {"last_event_time": 1},
        sort=[("last_event_time", -1)],
    )
    return utc(doc.get("last_event_time")) if doc else None


def has_data(db: Database) -> bool:
    """True when the serving model holds any flight or KPI document."""
    return any(db[name].find_one({}, {"_id": 1}) is not None for name in ("kpi_hourly", "flights"))


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
    db: Database,
    clock: datetime | None,
    now: datetime,
    rules: dict[str, FreshnessRule] | None = None,
) -> pd.DataFrame:
    """One row per source: newest data time, ``updated_at``, replay and wall ages, level."""
    rules = rules or DEFAULT_FRESHNESS
    states = {d["_id"]: d for d in db.pipeline_state.find({"_id": {"$in": list(rules)}})}
    rows = []
    for source, rule in rules.items():
        state = states.get(source, {})
        newest = next((utc(state[k]) for k in _NEWEST_KEYS if utc(state.get(k))), None)
        if newest is None and source == "weather_hourly":
            doc = db.weather_hourly.find_one({}, {"hour_utc": 1}, sort=[("hour_utc", -1)])
            newest = utc(doc.get("hour_utc")) if doc else None
        updated = utc(state.get("updated_at"))
        wall_age = now - updated if updated else None
        replay_age = clock - newest if (clock and newest) else None
        levels = [rule.wall.level(wall_age)]
        if rule.replay is not None:
            levels.append(rule.replay.level(replay_age))
        level = "missing" if not state and newest is None else worst(levels)
        rows.append(
            {
                "source": source,
                "newest": newest,
                "updated_at": updated,
                "replay_age": replay_age if rule.replay is not None else None,
                "wall_age": wall_age,
                "level": level,
            }
        )
    return pd.DataFrame(rows)


def pipeline_health(db: Database, now: datetime, jobs: Sequence[str] = JOBS) -> pd.DataFrame:
    """Last run of each job (status, start, end) and its failures in the 24 h before ``now``."""
    since = now - timedelta(hours=24)
    rows = []
    for job in jobs:
        last = db.pipeline_runs.find_one(
            {"job": job},
            {"status": 1, "start": 1, "end": 1, "error": 1, "duration": 1},
            sort=[("start", -1)],
        )
        recent = db.pipeline_runs.find(
            {"job": job, "start": {"$gte": since}}, {"status": 1, "_id": 0}
        )
        failures = sum(1 for d in recent if _failed(d.get("status")))
        status = (last or {}).get("status")
        error = (last or {}).get("error")
        rows.append(
            {
                "job": job,
                "status": status,
                "start": utc((last or {}).get("start")),
                "end": utc((last or {}).get("end")),
                "failures_24h": failures,
                "error": error.get("message") if isinstance(error, dict) else error,
                "level": (
                    "missing"
                    if last is None
                    else "red"
                    if _failed(status)
                    else "amber"
                    if failures
                    else "ok"
                ),
            }
        )
    return pd.DataFrame(rows)


def _failed(status: Any) -> bool:
    return isinstance(status, str) and (status.lower() in FAILED or "fail" in status.lower())


# ---------------------------------------------------------------------------- filter options


@dataclass(frozen=True)
class Extent:
    """What is loaded: local dates with KPI data, carriers with their names, airports."""

    dates: tuple[str, ...] = ()
    carriers: tuple[tuple[str, str], ...] = ()
    airports: tuple[str, ...] = ORIGINS

    @property
    def first(self) -> date | None:
        return date.fromisoformat(self.dates[0]) if self.dates else None

    @property
    def last(self) -> date | None:
        return date.fromisoformat(self.dates[-1]) if self.dates else None


def extent(db: Database) -> Extent:
    dates = sorted(d for d in db.kpi_hourly.distinct("date") if isinstance(d, str))
    codes = sorted(c for c in db.kpi_carrier_daily.distinct("carrier") if isinstance(c, str))
    names = {d["_id"]: d.get("name") for d in db.airlines.find({}, {"name": 1})}
    missing = [c for c in codes if not names.get(c)]
    if missing:  # reference not loaded yet: the KPI documents carry the name too
        for d in db.kpi_carrier_daily.find(
            {"carrier": {"$in": missing}}, {"carrier": 1, "carrier_name": 1}
        ).limit(500):
            names.setdefault(d["carrier"], d.get("carrier_name"))
            names[d["carrier"]] = names[d["carrier"]] or d.get("carrier_name")
    origins = sorted(o for o in db.kpi_hourly.distinct("origin") if isinstance(o, str))
    return Extent(
        dates=tuple(dates),
        carriers=tuple((c, names.get(c) or c) for c in codes),
        airports=tuple(origins) or ORIGINS,
    )


# ----------------------------------------------------------------------------------- KPIs


@dataclass
class KpiSummary:
    """Tile values of a scope and what the same weekdays look like on average."""

    value: dict[str, float]
    baseline: dict[str, float] | None
    basis: str  # "kpi_hourly" (time-of-day aligned) or "kpi_carrier_daily" (whole days)
    dates: list[str] = field(default_factory=list)  # selected dates that have happened
    baseline_dates: list[str] = field(default_factory=list)
    cut_hour: int | None = None  # the clock's day counts scheduled hours <= this local hour
    note: str = ""


def _day_sums(frame: pd.DataFrame, dates: list[str], cut_hour: int | None) -> pd.DataFrame:
    """Measures summed per date (dates without documents count zero)."""
    if cut_hour is not None and "local_hour" in frame:
        frame = frame[pd.to_numeric(frame["local_hour"], errors="coerce") <= cut_hour]
    sums = frame.groupby("date")[list(MEASURES)].sum() if not frame.empty else None
    if sums is None:
        return pd.DataFrame(0.0, index=dates, columns=list(MEASURES))
    return sums.reindex(dates, fill_value=0.0)


def kpi_summary(
    db: Database,
    scope: Scope,
    clock: datetime | None,
    loaded_dates: Sequence[str],
) -> KpiSummary:
    """Tiles of ``scope``, and the average of the same weekdays over the loaded period.

    Without a carrier filter the hourly KPIs are read, so the day of the replay clock is
    compared with the same hours (scheduled up to the clock's local hour) of the other days;
    with a carrier filter the per-carrier daily KPIs are read (whole days). The baseline of a
    selected day is the mean over the loaded days before the clock's day that fall on the same
    weekday and are not themselves selected; None when a selected day has no such day.
    """
    hourly = not scope.carriers
    coll = db.kpi_hourly if hourly else db.kpi_carrier_daily
    proj = {"date": 1, "local_hour": 1, **_MEASURE_PROJ} if hourly else {"date": 1, **_MEASURE_PROJ}
    clock_day = local_date(clock).isoformat() if clock else None
    cut = clock.astimezone(NY).hour if (clock and hourly) else None
    loaded = sorted(set(loaded_dates))
    selected = scope.dates()
    if selected is None:
        selected = loaded
    selected = [d for d in selected if clock_day is None or d <= clock_day]
    basis = "kpi_hourly" if hourly else "kpi_carrier_daily"
    if not selected:
        return KpiSummary(summarize({}), None, basis, note="no day of the selection has started")

    match = scope.match(carriers=not hourly, dates=False)
    frame = _measures(_frame(coll.find({**match, "date": {"$in": selected}}, proj), proj))
    day_cut = {d: (cut if d == clock_day else None) for d in selected}
    value = pd.concat(
        [_day_sums(frame[frame["date"] == d], [d], day_cut[d]) for d in selected]
    ).sum()

    weekdays = {iso_weekday(d) for d in selected}
    candidates = [
        d
        for d in loaded
        if (clock_day is None or d < clock_day) and d not in selected and iso_weekday(d) in weekdays
    ]
    summary = KpiSummary(
        summarize(value),
        None,
        basis,
        dates=selected,
        cut_hour=cut if clock_day in selected else None,
    )
    if not candidates:
        summary.note = "no earlier same weekday loaded"
        return summary
    base = _measures(_frame(coll.find({**match, "date": {"$in": candidates}}, proj), proj))
    expected = pd.Series(0.0, index=list(MEASURES))
    used: set[str] = set()
    for day in selected:
        same = [b for b in candidates if iso_weekday(b) == iso_weekday(day)]
        if not same:
            summary.note = f"no earlier {WEEKDAYS[iso_weekday(day) - 1]} loaded"
            return summary
        expected += _day_sums(base[base["date"].isin(same)], same, day_cut[day]).mean()
        used.update(same)
    summary.baseline = summarize(expected)
    summary.baseline_dates = sorted(used)
    return summary


# --------------------------------------------------------------------------------- charts


def hourly_series(db: Database, scope: Scope) -> pd.DataFrame:
    """Per scheduled hour (UTC) of the selection: measures, ratios, local time and label.

    ``kpi_hourly`` is per airport, so a carrier filter does not apply here."""
    proj = {"hour_utc": 1, "origin": 1, **_MEASURE_PROJ}
    docs = db.kpi_hourly.find(scope.match(carriers=False), proj)
    frame = _measures(_frame(docs, proj))
    if frame.empty:
        return pd.DataFrame(columns=["hour_utc", "local", "label", *MEASURES, *DERIVED])
    frame["hour_utc"] = pd.to_datetime(frame["hour_utc"], utc=True)
    out = rollup(frame, "hour_utc").sort_values("hour_utc").reset_index(drop=True)
    out["local"] = out["hour_utc"].dt.tz_convert(NY)
    multi_day = out["local"].dt.date.nunique() > 1
    out["label"] = out["local"].dt.strftime("%a %d %Hh" if multi_day else "%H:00")
    return out


def carrier_table(db: Database, scope: Scope) -> pd.DataFrame:
    """Per carrier over the selection (airports and carriers filters applied)."""
    proj = {"carrier": 1, "carrier_name": 1, **_MEASURE_PROJ}
    frame = _measures(_frame(db.kpi_carrier_daily.find(scope.match(), proj), proj))
    out = rollup(frame, "carrier")
    if out.empty:
        return out.assign(carrier_name=pd.Series(dtype="object"))
    names = frame.dropna(subset=["carrier_name"]).groupby("carrier")["carrier_name"].first()
    out["carrier_name"] = out["carrier"].map(names).fillna(out["carrier"])
    return out


def airport_table(db: Database, scope: Scope) -> pd.DataFrame:
    """The three origins side by side over the selection (carrier filter applied, airport
    filter not: this panel compares them)."""
    proj = {"origin": 1, **_MEASURE_PROJ}
    frame = _measures(_frame(db.kpi_carrier_daily.find(scope.match(airports=False), proj), proj))
    out = rollup(frame, "origin")
    out = out.set_index("origin").reindex(ORIGINS).reset_index() if not out.empty else out
    if out.empty:
        out = derive(pd.DataFrame({"origin": list(ORIGINS), **{m: 0.0 for m in MEASURES}}))
    for m in MEASURES:
        out[m] = out[m].fillna(0.0)
    out["name"] = out["origin"].map(ORIGIN_NAMES)
    return out


def weekday_hour_heatmap(
    db: Database, airports: Sequence[str] = (), until: str | None = None
) -> pd.DataFrame:
    """Average departure delay by weekday (rows 1..7) x local hour (columns 0..23) over every
    loaded day up to ``until`` (inclusive); NaN where nothing departed."""
    query: dict[str, Any] = {}
    if airports:
        query["origin"] = {"$in": list(airports)}
    if until:
        query["date"] = {"$lte": until}
    proj = {"date": 1, "local_hour": 1, "dep_delay_sum": 1, "dep_delay_n": 1}
    frame = _frame(db.kpi_hourly.find(query, proj), proj)
    grid = pd.DataFrame(np.nan, index=range(1, 8), columns=range(24))
    frame = frame.dropna(subset=["date", "local_hour"])
    if frame.empty:
        return grid
    frame["weekday"] = frame["date"].map(iso_weekday)
    frame["local_hour"] = frame["local_hour"].astype(int)
    for m in ("dep_delay_sum", "dep_delay_n"):
        frame[m] = pd.to_numeric(frame[m], errors="coerce").fillna(0.0)
    sums = frame.groupby(["weekday", "local_hour"])[["dep_delay_sum", "dep_delay_n"]].sum()
    avg = pd.Series(_ratio(sums["dep_delay_sum"], sums["dep_delay_n"]), index=sums.index)
    grid.update(avg.unstack())
    return grid


def weather_impact(
    db: Database, airports: Sequence[str] = (), until: str | None = None
) -> dict[str, pd.DataFrame]:
    """Average departure delay per visibility band, wind band and precipitation, over every
    loaded day up to ``until``; flights whose weather is unknown are not counted."""
    query: dict[str, Any] = {}
    if airports:
        query["origin"] = {"$in": list(airports)}
    if until:
        query["date"] = {"$lte": until}
    proj = {"visib_band": 1, "wind_band": 1, "precip": 1, **_MEASURE_PROJ}
    frame = _measures(_frame(db.weather_impact.find(query, proj), proj))
    frame["precip"] = frame["precip"].map({True: "precipitation", False: "dry"})
    out = {}
    for key, order in (
        ("visib_band", VISIB_BANDS),
        ("wind_band", WIND_BANDS),
        ("precip", ("dry", "precipitation")),
    ):
        table = rollup(frame.dropna(subset=[key]), key)
        table = table.set_index(key).reindex(order).reset_index() if not table.empty else table
        out[key] = table
    return out


def routes(db: Database, scope: Scope) -> pd.DataFrame:
    """Per destination over the months of the selection (airports filter applied)."""
    query = scope.match(carriers=False, dates=False)
    if (months := scope.months()) is not None:
        query["month"] = {"$in": months}
    proj = {"dest": 1, "dest_name": 1, "dest_lat": 1, "dest_lon": 1, **_MEASURE_PROJ}
    frame = _measures(_frame(db.kpi_route_monthly.find(query, proj), proj))
    out = rollup(frame, "dest")
    if out.empty:
        return out.assign(dest_name=[], dest_lat=[], dest_lon=[])
    info = frame.groupby("dest")[["dest_name", "dest_lat", "dest_lon"]].first()
    out = out.join(info, on="dest")
    out["dest_lat"] = pd.to_numeric(out["dest_lat"], errors="coerce")
    out["dest_lon"] = pd.to_numeric(out["dest_lon"], errors="coerce")
    return out.sort_values("flights", ascending=False).reset_index(drop=True)


# ------------------------------------------------------------------------------ live board

BOARD_COLUMNS = (
    "sched_local", "flight_no", "carrier", "carrier_name", "origin", "dest", "dest_name",
    "status", "delay", "delay_kind", "dep_local", "tailnum", "sched_dep_utc", "_id",
)  # fmt: skip


def live_board(
    db: Database,
    scope: Scope,
    clock: datetime,
    before: timedelta = timedelta(hours=1),
    after: timedelta = timedelta(hours=1),
) -> pd.DataFrame:
    """Departures scheduled within [clock - before, clock + after] (airports and carriers
    filters apply, dates do not: this is *now*).

    ``delay`` is the actual departure delay, or for a flight still ``scheduled`` past its
    time the minutes it is late so far (``delay_kind`` = "late, not departed")."""
    query = scope.match(dates=False)
    query["sched_dep_utc"] = {"$gte": clock - before, "$lte": clock + after}
    proj = {
        "carrier": 1, "carrier_name": 1, "flight": 1, "origin": 1, "dest": 1, "dest_name": 1,
        "status": 1, "status_rank": 1, "dep_delay": 1, "sched_dep_utc": 1, "dep_time_utc": 1,
        "tailnum": 1, "cancelled": 1,
    }  # fmt: skip
    frame = _frame(db.flights.find(query, proj), [*proj, "_id"])
    if frame.empty:
        return pd.DataFrame(columns=list(BOARD_COLUMNS))
    frame["sched_dep_utc"] = pd.to_datetime(frame["sched_dep_utc"], utc=True)
    frame["dep_time_utc"] = pd.to_datetime(frame["dep_time_utc"], utc=True)
    rank = pd.to_numeric(frame["status_rank"], errors="coerce")
    status = frame["status"].where(frame["status"].notna(), rank.map(STATUS_NAMES))
    frame["status"] = status.fillna("scheduled").astype(str)
    dep_delay = pd.to_numeric(frame["dep_delay"], errors="coerce")
    late_for = (pd.Timestamp(clock) - frame["sched_dep_utc"]).dt.total_seconds() / 60.0
    waiting = (frame["status"] == "scheduled") & (late_for > 0)
    frame["delay"] = dep_delay.where(dep_delay.notna(), late_for.where(waiting).round())
    frame["delay_kind"] = np.where(
        dep_delay.notna(), "actual", np.where(waiting, "late, not departed", "")
    )
    frame.loc[frame["status"] == "cancelled", ["delay", "delay_kind"]] = [np.nan, ""]
    frame["sched_local"] = frame["sched_dep_utc"].dt.tz_convert(NY).dt.strftime("%H:%M")
    frame["dep_local"] = (
        frame["dep_time_utc"].dt.tz_convert(NY).dt.strftime("%H:%M").fillna("")
        if frame["dep_time_utc"].notna().any()
        else ""
    )
    flight = pd.to_numeric(frame["flight"], errors="coerce").astype("Int64").astype(str)
    frame["flight_no"] = frame["carrier"].astype(str) + " " + flight.replace("<NA>", "")
    frame["carrier_name"] = frame["carrier_name"].fillna(frame["carrier"])
    frame["dest_name"] = frame["dest_name"].fillna(frame["dest"])
    frame["tailnum"] = frame["tailnum"].fillna("")
    return frame.loc[:, list(BOARD_COLUMNS)].sort_values("sched_dep_utc").reset_index(drop=True)


# ------------------------------------------------------------------------ weather, rejects


def weather_now(db: Database, clock: datetime, within: timedelta = timedelta(hours=3)):
    """The newest observation at or before the clock per origin (at most ``within`` old)."""
    proj = {"origin": 1, "hour_utc": 1, "visib_km": 1, "wind_speed_kmh": 1, "precip_mm": 1,
            "temp_c": 1, "visib_band": 1, "wind_band": 1, "precip": 1}  # fmt: skip
    docs = db.weather_hourly.find({"hour_utc": {"$lte": clock, "$gte": clock - within}}, proj)
    frame = _frame(docs, proj)
    if frame.empty:
        return frame
    frame["hour_utc"] = pd.to_datetime(frame["hour_utc"], utc=True)
    return (
        frame.sort_values("hour_utc")
        .groupby("origin", as_index=False)
        .last()
        .set_index("origin")
        .reindex(ORIGINS)
    )


@dataclass
class RejectSummary:
    total: int
    read: int  # how many of the newest were read (capped at REJECTS_CAP)
    by_source: pd.DataFrame  # source, count, last_at
    by_reason: pd.DataFrame  # source, reason, count, last_at (most frequent first)


def rejects_summary(db: Database, cap: int = REJECTS_CAP) -> RejectSummary:
    """Counts of refused records by source and by source + reason (counted client-side)."""
    total = db.rejects.estimated_document_count()
    docs = db.rejects.find({}, {"source": 1, "reason": 1, "at": 1, "_id": 0})
    frame = _frame(docs.sort("at", -1).limit(cap), ["source", "reason", "at"])
    if frame.empty:
        empty = pd.DataFrame(columns=["source", "reason", "count", "last_at"])
        return RejectSummary(total, 0, empty.drop(columns="reason"), empty)
    frame["source"] = frame["source"].fillna("unknown")
    frame["reason"] = frame["reason"].fillna("(no reason)").astype(str)
    frame["at"] = pd.to_datetime(frame["at"], utc=True, errors="coerce")
    agg = {"count": ("at", "size"), "last_at": ("at", "max")}
    by_source = frame.groupby("source", as_index=False).agg(**agg)
    by_reason = frame.groupby(["source", "reason"], as_index=False).agg(**agg)
    by_reason = by_reason.sort_values(["count", "last_at"], ascending=False)
    return RejectSummary(
        total,
        len(frame),
        by_source.sort_values("count", ascending=False).reset_index(drop=True),
        by_reason.reset_index(drop=True),
    )
