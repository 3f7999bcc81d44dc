"""The dashboard reads a bounded set of documents and its figures stay exact.

- Every whole-period figure (same-weekday baselines of the tiles, weekday x hour heat map,
  weather impact) computed from ``kpi_profile`` minus the rows of the days it leaves out equals
  the figure computed from every day's rows (``reference_*`` below: the dashboard's code before
  ``kpi_profile``), on random rows across a DST change, for many scopes and clocks.
- The first read (real FerretDB, env ci) reads the profile, the ``kpi_daily`` documents of the
  clock's day and after, one route month and the board's hours; a refresh re-reads only the
  documents whose ``updated_at`` moved; dates selected later are read on demand and kept.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from pipelines.clients import mongo
from pipelines.core import domain
from pipelines.core.config import Settings
from pipelines.dashboard import analytics, decode, queries
from pipelines.dashboard.kpi_frames import (
    ORIGIN_NAMES,
    WEEKDAY_NAMES,
    Kpis,
    NotRead,
    Rows,
    Scope,
    derive,
    iso_weekday,
    local_date,
    measures,
    rollup,
    summarize,
)
from tests import serving_docs as S

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
LATER = S.STAMP + timedelta(hours=1)


# ------------------------------------------------------------ reference: from every day's rows


def frames(rows: dict[str, list[dict]]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """hourly, carrier_daily, weather_impact frames of every row (as the old read gave)."""
    hourly = measures(pd.DataFrame([S.hour_row(r) for r in rows["hourly"]]))
    hourly["hour_utc"] = pd.to_datetime(hourly["hour_utc"], utc=True)
    return hourly, measures(pd.DataFrame(rows["carriers"])), measures(pd.DataFrame(rows["weather"]))


def _day_sums(frame: pd.DataFrame, dates: list[str], cut: int | None) -> pd.DataFrame:
    if cut is not None and "local_hour" in frame:
        frame = frame[frame["local_hour"] <= cut]
    if frame.empty:
        return pd.DataFrame(0.0, index=dates, columns=list(domain.MEASURES))
    return frame.groupby("date")[list(domain.MEASURES)].sum().reindex(dates, fill_value=0.0)


def reference_summary(hourly, carrier_daily, scope: Scope, clock) -> dict:
    use_hourly = not scope.carriers
    frame = scope.select(hourly if use_hourly else carrier_daily, carriers=not use_hourly,
                         dates=False)  # fmt: skip
    loaded = sorted(pd.concat([hourly["date"], carrier_daily["date"]]).dropna().unique())
    clock_day = local_date(clock).isoformat() if clock else None
    cut = clock.astimezone(domain.NEW_YORK).hour if (clock and use_hourly) else None
    selected = scope.dates()
    selected = loaded if selected is None else selected
    selected = [d for d in selected if clock_day is None or d <= clock_day]
    out = {"dates": selected, "baseline": None, "baseline_dates": [], "label": ""}
    if not selected:
        return out | {"value": summarize({})}
    day_cut = {d: (cut if d == clock_day else None) for d in selected}
    value = pd.concat([_day_sums(frame[frame["date"] == d], [d], day_cut[d]) for d in selected])
    out["value"] = summarize(value.sum())
    complete = [d for d in loaded if (clock_day is None or d < clock_day) and d not in selected]
    if not complete:
        return out
    expected, used, fallback = pd.Series(0.0, index=list(domain.MEASURES)), set(), False
    for day in selected:
        same = [b for b in complete if iso_weekday(b) == iso_weekday(day)]
        if not same:
            same, fallback = complete, True
        expected += _day_sums(frame[frame["date"].isin(same)], same, day_cut[day]).mean()
        used.update(same)
    weekdays = {iso_weekday(d) for d in selected}
    label = "day" if fallback else WEEKDAY_NAMES[weekdays.pop() - 1] if len(weekdays) == 1 else (
        "same weekdays")  # fmt: skip
    return out | {"baseline": summarize(expected), "baseline_dates": sorted(used), "label": label}


def reference_heatmap(hourly, airports=(), until=None) -> pd.DataFrame:
    frame = hourly[hourly["origin"].isin(airports)] if airports else hourly
    frame = frame[frame["date"] <= until] if until else frame
    grid = pd.DataFrame(np.nan, index=range(1, 8), columns=range(24))
    if frame.empty:
        return grid
    frame = frame.assign(weekday=frame["date"].map(iso_weekday),
                         local_hour=frame["local_hour"].astype(int))  # fmt: skip
    sums = frame.groupby(["weekday", "local_hour"])[["dep_delay_sum", "dep_delay_n"]].sum()
    n = sums["dep_delay_n"]
    avg = (sums["dep_delay_sum"] / n.where(n > 0)).astype("float64")
    grid.update(avg.unstack())
    return grid


def reference_weather(impact, airports=(), until=None) -> dict[str, pd.DataFrame]:
    frame = impact[impact["origin"].isin(airports)] if airports else impact
    frame = frame[frame["date"] <= until] if until else frame
    frame = frame.assign(precip=frame["precip"].map({True: "precipitation", False: "dry"}))
    out = {}
    for key, order in (("visib_band", domain.VISIB_BANDS), ("wind_band", domain.WIND_BANDS),
                       ("precip", ("dry", "precipitation"))):  # fmt: skip
        table = rollup(frame.dropna(subset=[key]), key)
        out[key] = derive(measures(pd.DataFrame({key: list(order)}).merge(table, how="left")))
    return out


def reference_tables(hourly, carrier_daily, routes, scope: Scope) -> dict[str, pd.DataFrame]:
    """The per-selection tables as computed before (groupby roll-ups over every row)."""
    frame = scope.select(hourly, carriers=False)
    series = rollup(frame, "hour_utc").sort_values("hour_utc").reset_index(drop=True)
    if len(series):
        series["local"] = series["hour_utc"].dt.tz_convert(domain.NEW_YORK)
        multi_day = series["local"].dt.date.nunique() > 1
        series["label"] = series["local"].dt.strftime("%a %d %Hh" if multi_day else "%H:00")
    frame = scope.select(carrier_daily)
    carriers = rollup(frame, "carrier")
    names = frame.dropna(subset=["carrier_name"]).groupby("carrier")["carrier_name"].first()
    carriers["carrier_name"] = carriers["carrier"].map(names).fillna(carriers["carrier"])
    per_origin = rollup(scope.select(carrier_daily, airports=False), "origin")
    airports = pd.DataFrame({"origin": list(domain.ORIGINS)})
    if len(per_origin):
        airports = airports.merge(per_origin, how="left")
    airports = derive(measures(airports))
    airports["name"] = airports["origin"].map(ORIGIN_NAMES)
    frame = scope.select(routes, carriers=False, dates=False)
    frame = frame[frame["month"].isin(scope.months() or sorted(set(routes["month"])))]
    by_dest = rollup(frame, "dest")
    if len(by_dest):
        info = frame.groupby("dest")[["dest_name", "dest_lat", "dest_lon"]].first()
        by_dest = by_dest.join(info, on="dest")
        by_dest = by_dest.sort_values("flights", ascending=False).reset_index(drop=True)
    return {"hourly": series, "carriers": carriers, "airports": airports, "routes": by_dest}


def assert_same_summary(got: analytics.KpiSummary, want: dict) -> None:
    def same(a: dict | None, b: dict | None) -> None:
        assert (a is None) == (b is None)
        if a is not None:
            assert a.keys() == b.keys()
            for k in a:  # exactly equal, NaN where the reference has NaN
                assert a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])), (k, a[k], b[k])

    assert got.dates == want["dates"]
    same(got.value, want["value"])
    same(got.baseline, want["baseline"])
    assert got.baseline_dates == want["baseline_dates"]
    assert got.baseline_label == want["label"]


# ----------------------------------------------------------------------------- pure tests

FIRST = date(2013, 3, 1)  # 24 days: the DST change (Sunday 10 March) in the middle
ROWS = S.synthetic(FIRST, 24, seed=7, carriers=4, dests=5, most=6)
DOCS = S.documents(**ROWS)


def kpis_reading(docs: dict, dates, months=()) -> Kpis:
    """The profile and the ``kpi_daily`` / ``kpi_route_monthly`` documents of dates / months."""
    dates, months = set(dates), set(months)
    rows = decode.daily_rows([d for d in docs["kpi_daily"] if d["_id"] in dates], dates)
    monthly = [d for d in docs["kpi_route_monthly"] if d["_id"] in months]
    rows = rows.merge(decode.month_rows(monthly, months))
    return Kpis(decode.profile_of(docs["kpi_profile"][0]), rows)


def ny(day: str, hour: int, minute: int = 0) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, minute=minute, tzinfo=domain.NEW_YORK)


CLOCKS = [ny("2013-03-20", 14, 30), ny("2013-03-10", 3, 30), ny("2013-03-12", 0, 10), None]
SCOPES = [
    (lambda d: (d, d), (), ()),  # today
    (lambda d: (d - timedelta(days=1),) * 2, ("JFK",), ()),  # yesterday, one airport
    (lambda d: (d - timedelta(days=6), d), (), ("C01",)),  # last 7 days, one airline
    (lambda d: (d - timedelta(days=2), d + timedelta(days=2)), ("EWR", "LGA"), ("C00", "C02")),
    (lambda d: (FIRST, FIRST), (), ()),  # the first day: no earlier same weekday
    (lambda d: (date(2013, 2, 1), date(2013, 2, 3)), (), ()),  # nothing loaded
    (lambda d: (None, None), ("LGA",), ()),  # the whole loaded period
]


@pytest.mark.parametrize("clock", CLOCKS, ids=lambda c: str(c)[:16])
@pytest.mark.parametrize("pick", range(len(SCOPES)))
def test_profile_minus_days_equals_every_day(clock, pick) -> None:
    hourly, carrier_daily, impact = frames(ROWS)
    clock_day = local_date(clock) if clock else date.fromisoformat(hourly["date"].max())
    span, airports, carriers = SCOPES[pick]
    scope = Scope(airports, carriers, *span(clock_day))
    needed, months = Kpis(decode.profile_of(DOCS["kpi_profile"][0]), Rows.empty()).needed(
        scope, clock_day.isoformat()
    )
    kpis = kpis_reading(DOCS, needed, months)
    # only the selected dates, the clock's day and after are read
    after = {d for d in hourly["date"] if d >= clock_day.isoformat()}
    assert set(kpis.rows.read) <= set(scope.dates() or hourly["date"]) | after
    assert_same_summary(
        analytics.kpi_summary(kpis, scope, clock),
        reference_summary(hourly, carrier_daily, scope, clock),
    )
    until = clock_day.isoformat()
    pd.testing.assert_frame_equal(
        analytics.weekday_hour_heatmap(kpis, airports, until),
        reference_heatmap(hourly, airports, until),
    )
    got, want = (
        analytics.weather_impact(kpis, airports, until),
        reference_weather(impact, airports, until),
    )
    for key in want:
        pd.testing.assert_frame_equal(got[key], want[key], check_dtype=False)


@pytest.mark.parametrize("pick", range(len(SCOPES)))
def test_selection_tables_equal_every_day(pick) -> None:
    hourly, carrier_daily, _ = frames(ROWS)
    routes = measures(pd.DataFrame(ROWS["routes"]))
    span, airports, carriers = SCOPES[pick]
    scope = Scope(airports, carriers, *span(date(2013, 3, 20)))
    loaded = sorted(set(hourly["date"]))
    kpis = kpis_reading(DOCS, loaded, sorted({d[:7] for d in loaded}))
    want = reference_tables(hourly, carrier_daily, routes, scope)
    got = {
        "hourly": analytics.hourly_series(kpis, scope),
        "carriers": analytics.carrier_table(kpis, scope),
        "airports": analytics.airport_table(kpis, scope),
        "routes": analytics.routes(kpis, scope),
    }
    for name, frame in want.items():
        if frame.empty:
            assert got[name].empty, name
            continue
        pd.testing.assert_frame_equal(
            got[name].reset_index(drop=True), frame, check_dtype=False, check_exact=True,
            obj=name,
        )  # fmt: skip


def test_whole_period_figures_without_a_clock_are_the_profile() -> None:
    hourly, _, impact = frames(ROWS)
    kpis = kpis_reading(DOCS, [])
    pd.testing.assert_frame_equal(analytics.weekday_hour_heatmap(kpis), reference_heatmap(hourly))
    for key, want in reference_weather(impact, ("JFK",)).items():
        pd.testing.assert_frame_equal(
            analytics.weather_impact(kpis, ("JFK",))[key], want, check_dtype=False
        )


def test_a_figure_never_answers_from_days_not_read() -> None:
    kpis = kpis_reading(DOCS, ["2013-03-20"], ["2013-03"])
    today = Scope(date_from=date(2013, 3, 20), date_to=date(2013, 3, 20))
    clock = ny("2013-03-20", 12)
    with pytest.raises(NotRead):  # the days after the clock's are not read
        analytics.kpi_summary(kpis, today, clock)
    with pytest.raises(NotRead):
        analytics.weekday_hour_heatmap(kpis, (), "2013-03-20")
    with pytest.raises(NotRead):
        analytics.hourly_series(kpis, Scope(date_from=date(2013, 3, 19), date_to=date(2013, 3, 20)))
    with pytest.raises(NotRead):
        analytics.routes(kpis_reading(DOCS, ["2013-03-20"]), today)  # its month is not read
    assert len(analytics.routes(kpis, Scope())) == 5  # every month: March, read
    assert analytics.hourly_series(kpis, today)["flights"].sum() > 0
    dates, months = kpis.needed(today, "2013-03-20")
    assert dates == ["2013-03-21", "2013-03-22", "2013-03-23", "2013-03-24"] and months == []


def test_refreshed_rows_replace_the_old_ones() -> None:
    kpis = kpis_reading(DOCS, ["2013-03-20", "2013-03-21"], ["2013-03"])
    again = decode.daily_rows([d for d in DOCS["kpi_daily"] if d["_id"] == "2013-03-21"],
                         ["2013-03-21"])  # fmt: skip
    merged = kpis.with_rows(again)
    for name in ("hourly", "carrier_daily", "weather_impact", "route_monthly"):
        assert len(getattr(merged, name)) == len(getattr(kpis, name)), name
    assert set(merged.rows.read) == {"2013-03-20", "2013-03-21"}


# ------------------------------------------------------------------- reads (FerretDB, ci)

CLOCK = ny("2013-03-10", 14, 30).astimezone(UTC)  # 18:30Z on the DST day


@pytest.fixture
def year_db(stack: Settings) -> Iterator[tuple[object, dict]]:
    """A fresh database with 40 days (Feb 1 .. Mar 12) and the state of a clock on Mar 10."""
    name = f"tarmac_dr_{uuid.uuid4().hex[:10]}"
    db = mongo.database(stack).client[name]
    near = [CLOCK.replace(minute=0) + timedelta(hours=h) for h in (-1, 0, 1)]
    rows = S.synthetic(date(2013, 2, 1), 40, seed=3, carriers=8, dests=20, flights_at=near)
    S.publish(db, **rows)
    db.pipeline_state.insert_one(
        {"_id": "flights_stream", "newest_event_time": CLOCK, "updated_at": NOW}
    )
    db.weather_hourly.insert_many(
        [{"_id": S.hour_id(o, h), "origin": o, "hour_utc": h, "visib_band": "10+ mi",
          "wind_band": "0-10 mph", "precip": False} for o in ("EWR", "JFK", "LGA") for h in near]
    )  # fmt: skip
    yield db, rows
    db.client.drop_database(name)


def _reference(rows, scope, clock=CLOCK):
    hourly, carrier_daily, _ = frames(rows)
    return reference_summary(hourly, carrier_daily, scope, clock)


def test_first_read_is_bounded_and_refresh_reads_what_moved(year_db) -> None:
    db, rows = year_db
    snap = queries.load_snapshot(db, NOW)
    assert snap.clock == CLOCK and snap.clock_day == "2013-03-10"
    assert sorted(snap.kpis.rows.read) == ["2013-03-10", "2013-03-11", "2013-03-12"]
    assert snap.reads == {"kpi_profile": 1, "kpi_daily": 3, "kpi_route_monthly": 1,
                          "flights_by_hour": 9, "flights_by_hour_hot": 9,
                          "weather_hourly": 3, "pipeline_health": 3}  # fmt: skip
    today = Scope(date_from=date(2013, 3, 10), date_to=date(2013, 3, 10))
    assert snap.needed(today) == ([], [])
    assert_same_summary(analytics.kpi_summary(snap.kpis, today, CLOCK), _reference(rows, today))
    hourly, _, impact = frames(rows)
    pd.testing.assert_frame_equal(
        analytics.weekday_hour_heatmap(snap.kpis, (), "2013-03-10"),
        reference_heatmap(hourly, (), "2013-03-10"),
    )
    board = analytics.live_board(snap.board, Scope(), CLOCK)
    assert len(board) > 0 and len(snap.board) == len(board)
    assert len(analytics.routes(snap.kpis, today)) == 20

    # nothing moved: the profile only
    again = queries.load_snapshot(db, NOW, previous=snap)
    assert again.reads["kpi_profile"] == 1
    assert again.reads["kpi_daily"] == again.reads["kpi_route_monthly"] == 0
    assert sorted(again.kpis.rows.read) == sorted(snap.kpis.rows.read)

    # a batch rewrites the clock's day (read) and 20 Feb (not read)
    for r in rows["hourly"]:
        if S.hour_row(r)["date"] in ("2013-03-10", "2013-02-20") and r["origin"] == "JFK":
            r.update(flights=r["flights"] + 5, cancelled=r["cancelled"] + 5)
    moved = {"2013-03-10": LATER, "2013-03": LATER, "2013-02-20": LATER, "2013-02": LATER}
    S.publish(db, **rows, updated_at=moved, profile_at=LATER)
    fresh = queries.load_snapshot(db, NOW, previous=again)
    assert fresh.reads["kpi_daily"] == 1 and fresh.reads["kpi_route_monthly"] == 1
    assert_same_summary(analytics.kpi_summary(fresh.kpis, today, CLOCK), _reference(rows, today))
    hourly, _, impact = frames(rows)
    pd.testing.assert_frame_equal(
        analytics.weekday_hour_heatmap(fresh.kpis, ("JFK",), "2013-03-10"),
        reference_heatmap(hourly, ("JFK",), "2013-03-10"),
    )

    # "All loaded": read on demand, once; the next refresh reads nothing more
    everything = Scope(date_from=date(2013, 2, 1), date_to=date(2013, 3, 12))
    dates, months = fresh.needed(everything)
    assert len(dates) == 37 and months == ["2013-02"]
    fresh.add(queries.read_more(db, dates, months))
    assert fresh.needed(everything) == ([], [])
    assert_same_summary(
        analytics.kpi_summary(fresh.kpis, everything, CLOCK), _reference(rows, everything)
    )
    later = queries.load_snapshot(db, NOW, dates=everything.dates(), previous=fresh)
    assert later.reads["kpi_daily"] == 0 and later.needed(everything) == ([], [])


def test_a_day_newer_than_the_profile_has_the_profile_read_again(year_db) -> None:
    db, _ = year_db
    db.kpi_daily.update_one({"_id": "2013-03-11"}, {"$set": {"updated_at": LATER}})
    snap = queries.load_snapshot(db, NOW)
    assert snap.reads["kpi_profile"] == 2  # once more; then the documents agree with it
    assert snap.kpis.rows.read["2013-03-11"] == LATER
    assert queries.load_snapshot(db, NOW, previous=snap).reads["kpi_daily"] == 0
