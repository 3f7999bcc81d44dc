"""The dashboard's figures: pure functions over a :class:`~.kpis.Kpis` (the profile and the
KPI rows read), the live board's flights and a :class:`~.kpis.Scope`. Every average or
percentage is computed from summed measures; a whole-period figure is the profile minus the
rows of the days it must leave out, exact because the measures are additive.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from pipelines.core.domain import MEASURES, ORIGINS, STATUS_NAME, VISIB_BANDS, WIND_BANDS

from .kpi_frames import (
    DERIVED,
    NY,
    ORIGIN_NAMES,
    WEATHER_KEYS,
    WEEKDAY_NAMES,
    WEEKDAYS,
    Kpis,
    Scope,
    cat,
    iso_weekday,
    local_date,
    numbers,
    ratio,
    rollup,
    signed,
    summarize,
    sums_by,
    table,
)
from .live import BOARD_AFTER, BOARD_BEFORE

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


def kpi_summary(kpis: Kpis, scope: Scope, clock: datetime | None) -> KpiSummary:
    """Tiles of ``scope``, and the average of the same weekdays over the loaded period.

    Without a carrier filter the hourly KPIs are used, so the day of the replay clock is
    compared with the same hours (scheduled up to the clock's local hour) of the other days;
    with a carrier filter the per-carrier daily KPIs are (whole days). The baseline of a
    selected day is the mean over the complete loaded days (before the clock's day, not
    selected) on the same weekday; when one has none, every such day of any weekday is used
    and the label says "day". The tiles sum the selected days' rows (hourly: the newest of
    ``kpi_daily`` and the stream's ``kpi_hourly``, ``Kpis.hourly_live``); the baseline is the
    profile's weekday sums minus the ``kpi_daily`` rows of every other day (selected, the
    clock's day and after), divided by the number of complete days of those weekdays.
    """
    use_hourly = not scope.carriers
    rows = kpis.hourly if use_hourly else kpis.carrier_daily
    whole = kpis.profile.weekday_hour if use_hourly else kpis.profile.carrier_weekday
    basis = "kpi_hourly" if use_hourly else "kpi_carrier_daily"
    # the baseline subtracts the rows the profile was computed with; the values are the
    # newest rows (the stream's kpi_hourly over kpi_daily)
    frame = scope.select(rows, carriers=not use_hourly, dates=False)
    shown = (scope.select(kpis.hourly_live, carriers=False, dates=False) if use_hourly
             else scope.select(kpis.carrier_live, dates=False))  # fmt: skip
    loaded = kpis.dates
    clock_day = local_date(clock).isoformat() if clock else None
    cut = clock.astimezone(NY).hour if (clock and use_hourly) else None
    selected = [d for d in kpis.selected(scope) if clock_day is None or d <= clock_day]
    if not selected:
        return KpiSummary(summarize({}), None, basis, note="no day of the selection has started")
    kpis.require(selected)
    chosen = set(selected)
    in_scope = shown["date"].isin(chosen)
    if cut is not None and clock_day in chosen:  # the clock's day: hours up to the clock's
        in_scope &= (shown["date"] != clock_day) | (shown["local_hour"] <= cut)
    summary = KpiSummary(
        summarize(shown.loc[in_scope, list(MEASURES)].sum()),
        None,
        basis,
        dates=selected,
        cut_hour=cut if clock_day in chosen else None,
    )
    complete = [d for d in loaded if (clock_day is None or d < clock_day) and d not in chosen]
    if not complete:
        summary.note = "no other complete day loaded yet"
        return summary
    others = set(complete)
    excluded = [d for d in loaded if d not in others]
    kpis.require(excluded)
    cols, values = signed(
        scope.select(whole, carriers=not use_hourly, dates=False),
        frame[frame["date"].isin(excluded)],
        ["weekday", "local_hour"] if use_hourly else ["weekday"],
    )
    weekday = kpis.profile.weekdays
    by_weekday: dict[int, list[str]] = {}
    for day in complete:
        by_weekday.setdefault(weekday[day], []).append(day)
    weekdays_of = numbers(cols["weekday"])
    hours_of = numbers(cols["local_hour"]) if use_hourly else None
    # a selected day adds the mean of its same-weekday complete days (hours up to the cut on
    # the clock's day): days alike add the same means, computed once, added in day order
    means: dict[tuple[int | None, int | None], np.ndarray] = {}
    expected = np.zeros(len(MEASURES))
    used: set[str] = set()
    fallback = False
    for day in selected:
        day_cut = cut if day == clock_day else None
        same = by_weekday.get(iso_weekday(day))
        key = (iso_weekday(day) if same else None, day_cut)
        if not same:
            same, fallback = complete, True
        if key not in means:
            mask = np.isin(weekdays_of, list({weekday[b] for b in same}))
            if day_cut is not None:
                mask &= hours_of <= day_cut
            means[key] = values[mask].sum(axis=0) / len(same)
        expected += means[key]
        used.update(same)
    expected = pd.Series(expected, index=list(MEASURES))
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


def hourly_series(kpis: Kpis, scope: Scope) -> pd.DataFrame:
    """Per scheduled hour of the selection: measures, ratios, local time and a label.

    Hourly rows are per airport: a carrier filter does not apply here. The newest rows
    (``Kpis.hourly_live``)."""
    kpis.require(kpis.selected(scope))
    frame = scope.select(kpis.hourly_live, carriers=False)
    cols = ["hour_utc", "local", "label", *MEASURES, *DERIVED]
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in cols})
    out = rollup(frame, "hour_utc").sort_values("hour_utc").reset_index(drop=True)
    out["local"] = local = out["hour_utc"].dt.tz_convert(NY)
    hours = local.dt.hour.to_numpy()
    if local.dt.date.nunique() > 1:  # "%a %d %Hh", without strftime's cost per timestamp
        days, names = local.dt.day.to_numpy(), local.dt.day_of_week.to_numpy()
        out["label"] = [f"{WEEKDAYS[w]} {d:02d} {h:02d}h"
                        for w, d, h in zip(names, days, hours, strict=True)]  # fmt: skip
    else:
        out["label"] = [f"{h:02d}:00" for h in hours]
    return out


def carrier_table(kpis: Kpis, scope: Scope) -> pd.DataFrame:
    """Per carrier over the selection (airports and carriers filters applied); a live date's
    rows derived from its buckets (``Kpis.carrier_live``)."""
    kpis.require(kpis.selected(scope))
    frame = scope.select(kpis.carrier_live)
    if frame.empty:
        return rollup(frame, "carrier").assign(carrier_name=pd.Series(dtype="object"))
    out, codes, order = _per_key(frame, "carrier")
    names = _first_known(codes, frame["carrier_name"].tolist())
    out["carrier_name"] = [names.get(c, c) for c in order]
    return out


def _per_key(frame: pd.DataFrame, key: str) -> tuple[pd.DataFrame, np.ndarray, list[str]]:
    """Measures and ratios per value of ``key`` (sorted; a missing key is left out), with the
    key of every row and the sorted keys."""
    keys = frame[key].to_numpy()
    order = sorted(k for k in pd.unique(keys) if isinstance(k, str))
    sums = sums_by(keys, order, frame[list(MEASURES)].to_numpy("float64"))
    return table(key, order, sums), keys, order


def _first_known(keys: Iterable[Any], values: Iterable[Any]) -> dict[Any, Any]:
    """Per key, the first of its values that is known (not None, not NaN)."""
    first: dict[Any, Any] = {}
    for key, value in zip(keys, values, strict=True):
        if key not in first and value is not None and value == value:
            first[key] = value
    return first


def airport_table(kpis: Kpis, scope: Scope) -> pd.DataFrame:
    """The three origins side by side over the selection (carrier filter applied, airport
    filter not: this panel compares them); a live date's rows derived from its buckets."""
    kpis.require(kpis.selected(scope))
    frame = scope.select(kpis.carrier_live, airports=False)
    values = frame[list(MEASURES)].to_numpy(dtype="float64")
    out = table("origin", ORIGINS, sums_by(frame["origin"].to_numpy(), ORIGINS, values))
    out["name"] = out["origin"].map(ORIGIN_NAMES)
    return out


def _up_to(kpis: Kpis, frame: pd.DataFrame, airports: Sequence[str], until: str | None):
    """Rows of ``frame`` (read days) after ``until`` at ``airports``: what the profile has
    beyond the period shown."""
    after = kpis.after(until)
    kpis.require(after)
    frame = frame[frame["date"].isin(after)]
    return frame[frame["origin"].isin(airports)] if airports else frame


def weekday_hour_heatmap(
    kpis: Kpis, airports: Sequence[str] = (), until: str | None = None
) -> pd.DataFrame:
    """Average departure delay by weekday (rows 1..7) x local hour (columns 0..23) over every
    loaded day up to ``until`` (inclusive); NaN where nothing departed."""
    whole = kpis.profile.weekday_hour
    if airports:
        whole = whole[whole["origin"].isin(airports)]
    cols, values = signed(
        whole, _up_to(kpis, kpis.hourly, airports, until), ["weekday", "local_hour"]
    )
    weekday, hour = numbers(cols["weekday"]), numbers(cols["local_hour"])
    shown = (weekday >= 1) & (weekday <= 7) & (hour >= 0) & (hour < 24)
    cell = (weekday[shown].astype("int64") - 1, hour[shown].astype("int64"))
    delay, departed = np.zeros((7, 24)), np.zeros((7, 24))
    np.add.at(delay, cell, values[shown, MEASURES.index("dep_delay_sum")])
    np.add.at(departed, cell, values[shown, MEASURES.index("dep_delay_n")])
    return pd.DataFrame(ratio(delay, departed), index=range(1, 8), columns=range(24))


def weather_impact(
    kpis: Kpis, airports: Sequence[str] = (), until: str | None = None
) -> dict[str, pd.DataFrame]:
    """Average departure delay per visibility band, wind band and precipitation, over every
    loaded day up to ``until``; flights whose weather is unknown are not counted. A live
    date's ``kpi_daily`` rows (what the profile holds of it) give way to its rows derived from
    its buckets (``Kpis.weather_live``)."""
    whole = kpis.profile.weather
    if airports:
        whole = whole[whole["origin"].isin(airports)]
    minus = _up_to(kpis, kpis.weather_impact, airports, until)
    swap = [d for d in kpis.live_dates if (until is None or d <= until) and d in kpis.rows.read]
    if swap:
        held, shown = kpis.weather_impact, kpis.weather_live
        held, shown = held[held["date"].isin(swap)], shown[shown["date"].isin(swap)]
        if airports:
            held, shown = held[held["origin"].isin(airports)], shown[shown["origin"].isin(airports)]
        negated = shown.assign(**{m: -shown[m].astype("float64") for m in MEASURES})
        minus = cat(minus, held, negated)
    cols, values = signed(whole, minus, WEATHER_KEYS)
    wet = {True: "precipitation", False: "dry"}
    cols["precip"] = np.array([wet.get(v) for v in cols["precip"]], dtype=object)
    return {
        key: table(key, order, sums_by(cols[key], order, values))
        for key, order in (
            ("visib_band", VISIB_BANDS),
            ("wind_band", WIND_BANDS),
            ("precip", ("dry", "precipitation")),
        )
    }


def routes(kpis: Kpis, scope: Scope) -> pd.DataFrame:
    """Per destination over the months of the selection (airports filter applied)."""
    months = scope.months()
    months = kpis.months if months is None else months
    kpis.require(months=months)
    frame = scope.select(kpis.route_monthly, carriers=False, dates=False)
    frame = frame[frame["month"].isin(months)]
    if frame.empty:
        return rollup(frame, "dest").assign(dest_name=[], dest_lat=[], dest_lon=[])
    out, dests, order = _per_key(frame, "dest")
    for column in ("dest_name", "dest_lat", "dest_lon"):  # the first known of each route
        first = _first_known(dests, frame[column].tolist())
        out[column] = [first.get(d) for d in order]
    for column in ("dest_lat", "dest_lon"):
        out[column] = pd.to_numeric(out[column], errors="coerce")
    return out.sort_values("flights", ascending=False).reset_index(drop=True)


# ------------------------------------------------------------------------------ live board

BOARD_COLUMNS = (
    "sched_local", "flight_no", "carrier", "carrier_name", "origin", "dest", "dest_name",
    "status", "delay", "delay_kind", "dep_local", "tailnum", "sched_dep_utc", "delay_risk",
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
    time the minutes it is late so far (``delay_kind`` = "late, not departed"); ``delay_risk``
    the model's score where the lake path wrote one (NaN otherwise)."""
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
    status = frame["status"].where(frame["status"].notna(), rank.map(STATUS_NAME))
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
    risk = frame["delay_risk"] if "delay_risk" in frame else pd.Series(np.nan, index=frame.index)
    frame["delay_risk"] = pd.to_numeric(risk, errors="coerce")
    out = frame.loc[:, list(BOARD_COLUMNS)].sort_values("sched_dep_utc", kind="stable")
    return out.reset_index(drop=True)
