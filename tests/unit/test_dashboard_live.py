"""The page following the stream, pure parts: when it reads (the batch ids of the stream's two
paths), what it reads (the hours of the selected days the stream still changes), which KPI row
of an hour it shows (``kpi_hourly`` over ``kpi_daily``, the newer winning) and the health
levels of the two paths. Documents from the ``serving_docs`` oracle, no database."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest

from pipelines.core import domain
from pipelines.dashboard import analytics, decode, live, queries
from pipelines.dashboard.decode import hourly_frame
from pipelines.dashboard.health import STREAM_RULES, stream_health, stream_levels
from pipelines.dashboard.kpi_frames import Kpis, Scope, date_range
from pipelines.dashboard.panels.attention import attention_items
from pipelines.dashboard.state import State
from tests import serving_docs as S

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
LATER = S.STAMP + timedelta(seconds=5)
EARLIER = S.STAMP - timedelta(seconds=5)
CLOCK = datetime(2013, 3, 20, 14, 30, tzinfo=domain.NEW_YORK).astimezone(UTC)  # a Wednesday, 18:30Z
ROWS = S.synthetic(date(2013, 3, 1), 21, seed=5, carriers=3, dests=3, most=8)  # to Mar 21
TODAY = Scope(date_from=date(2013, 3, 20), date_to=date(2013, 3, 20))


def _kpis(rows: list[dict], hot: list[dict] | None = None, dates=("2013-03-20", "2013-03-21")):
    """The page's KPIs after reading ``rows`` (kpi_daily of ``dates`` + profile) and ``hot``
    (kpi_hourly documents)."""
    days = {S.hour_row(r)["date"] for r in rows}
    carriers = [c for c in ROWS["carriers"] if c["date"] in days]
    docs = S.documents(hourly=rows, carriers=carriers)
    read = [d for d in docs["kpi_daily"] if d["_id"] in dates]
    kpis = Kpis(decode.profile_of(docs["kpi_profile"][0]), decode.daily_rows(read, dates))
    return kpis.with_hot(hourly_frame(hot)) if hot is not None else kpis


def _today(row: dict) -> bool:
    return S.hour_row(row)["date"] == "2013-03-20"


def _bumped(rows: list[dict], hour: datetime, origin: str = "JFK") -> list[dict]:
    """``rows`` with one more flight, departed 70 min late, in ``origin``'s ``hour``."""
    out = []
    for r in rows:
        if r["origin"] == origin and r["hour_utc"] == hour:
            r = {**r, "flights": r["flights"] + 1, "departed": r["departed"] + 1,
                 "delayed_60": r["delayed_60"] + 1, "dep_delay_sum": r["dep_delay_sum"] + 70,
                 "dep_delay_n": r["dep_delay_n"] + 1}  # fmt: skip
        out.append(r)
    return out


# ------------------------------------------------------------------------- change detection


def test_marks_move_with_any_query_and_with_a_stream_before_them() -> None:
    state = {"_id": "flights_stream", "hot": {"batch_id": 7}, "lake": {"batch_id": 2}}
    assert live.marks(state) == (7, 2)
    assert live.marks({"hot": {"batch_id": 8}}) == (8, None)
    assert not live.moved((7, 2), live.marks(state))
    assert live.moved((7, 2), (8, 2)) and live.moved((7, 2), (7, 3))
    assert live.moved(None, (7, 2))
    legacy = {"last_batch_id": 41, "updated_at": NOW}
    assert live.marks(legacy) == ("legacy", 41, NOW)
    assert live.moved(live.marks(legacy), live.marks({**legacy, "updated_at": LATER}))
    assert live.marks(None) is None and not live.moved((7, 2), None)


def test_touched_names_the_buckets_of_the_board_batches_since_the_last_read() -> None:
    def state(hot: int | None, lake: int | None, recent=()) -> dict:
        doc: dict = {"_id": "flights_stream"}
        if hot is not None:
            doc["hot"] = {"batch_id": hot, "recent": [{"batch_id": b, "buckets": list(ids)}
                                                      for b, ids in recent]}  # fmt: skip
        if lake is not None:
            doc["lake"] = {"batch_id": lake}
        return doc

    recent = [(5, ["EWR|a"]), (6, ["JFK|b", "EWR|a"]), (7, ["LGA|c"])]
    assert live.touched((5, 2), state(7, 2, recent)) == {"JFK|b", "EWR|a", "LGA|c"}
    assert live.touched((6, 2), state(7, 2, recent)) == {"LGA|c"}
    assert live.touched((7, 2), state(7, 2, recent)) == set()  # nothing new
    assert live.touched((3, 2), state(7, 2, recent)) is None  # batch 4 is no longer listed
    assert live.touched((5, 2), state(7, 3, recent)) is None  # the lake path moved: read all
    assert live.touched(None, state(7, 2, recent)) is None  # a first read
    assert live.touched((9, 2), state(7, 2, recent)) is None  # a new checkpoint
    assert live.touched((None, 2), state(7, 2, recent)) is None
    assert live.touched(("legacy", 1, NOW), state(7, 2, recent)) is None


def test_the_hours_read_are_those_of_the_selected_days_the_stream_still_changes() -> None:
    assert live.live_dates(["2013-03-20"], "2013-03-20") == ["2013-03-20"]
    week = date_range(date(2013, 3, 14), date(2013, 3, 20))
    assert live.live_dates(week, "2013-03-20") == ["2013-03-19", "2013-03-20"]
    assert live.live_dates(["2013-03-12"], "2013-03-20") == []
    assert live.live_dates(week, None) == []
    ids = live.hour_ids(["2013-03-20"], CLOCK)  # 00:00 .. 14:00 New York, three airports
    assert len(ids) == 15 * 3 and ids[0] == "EWR|2013-03-20T04:00Z"
    assert ids[-1] == "LGA|2013-03-20T18:00Z"
    assert len(live.hour_ids(["2013-03-19", "2013-03-20"], CLOCK)) == (24 + 15) * 3
    spring = datetime(2013, 3, 10, 23, 30, tzinfo=domain.NEW_YORK)
    assert len(live.hour_ids(["2013-03-10"], spring)) == 23 * 3  # the DST day has 23 hours


# --------------------------------------------------------------------------------- overlay


def test_identical_rows_give_identical_figures() -> None:
    rows = ROWS["hourly"]
    hot = S.hourly_docs([r for r in rows if _today(r)])
    plain, laid = _kpis(rows), _kpis(rows, hot)
    assert len(laid.hourly_live) == len(plain.hourly)
    for scope in (TODAY, Scope(("JFK",), (), TODAY.date_from, TODAY.date_to)):
        a, b = analytics.kpi_summary(plain, scope, CLOCK), analytics.kpi_summary(laid, scope, CLOCK)
        assert a.value == pytest.approx(b.value, nan_ok=True)
        assert a.baseline == b.baseline


@pytest.mark.parametrize("origin", ["JFK", "EWR"])
def test_a_newer_hour_shows_now_what_the_lake_path_shows_later(origin) -> None:
    hour = CLOCK.replace(minute=0) - timedelta(hours=1)
    rows, bumped = ROWS["hourly"], _bumped(ROWS["hourly"], hour, origin)
    hot = S.hourly_docs([r for r in bumped if _today(r)], updated_at=LATER, version=2)
    now = analytics.kpi_summary(_kpis(rows, hot), TODAY, CLOCK)  # hot path ahead of the lake path
    later = analytics.kpi_summary(_kpis(bumped), TODAY, CLOCK)  # the lake path caught up
    before = analytics.kpi_summary(_kpis(rows), TODAY, CLOCK)
    assert now.value["flights"] == before.value["flights"] + 1
    assert now.value == pytest.approx(later.value, nan_ok=True)
    assert now.baseline == later.baseline == before.baseline  # the baseline stays exact
    series = analytics.hourly_series(_kpis(rows, hot), TODAY)
    want = analytics.hourly_series(_kpis(bumped), TODAY)
    pd.testing.assert_frame_equal(series, want, check_dtype=False)


def test_the_newer_of_the_two_writers_wins_hour_by_hour() -> None:
    hour = CLOCK.replace(minute=0)
    mine = [r for r in ROWS["hourly"] if r["hour_utc"] == hour]
    bumped = _bumped(mine, hour)
    daily = _kpis(ROWS["hourly"]).hourly
    stamps = {"2013-03-20": S.STAMP}

    def flights(frame: pd.DataFrame) -> float:
        at = (frame["origin"] == "JFK") & (frame["hour_utc"] == pd.Timestamp(hour))
        return float(frame.loc[at, "flights"].sum())

    base = flights(daily)
    for stamp, version, daily_version, want in [
        (LATER, 1, None, base + 1),  # newer updated_at than the day document: kpi_hourly
        (S.STAMP, 1, None, base + 1),  # as new: either (kpi_hourly)
        (EARLIER, 1, None, base),  # older: the day document's row
        (EARLIER, 3, 2, base + 1),  # both versioned: the higher version, whatever the stamps
        (LATER, 2, 3, base),
    ]:
        frame = daily if daily_version is None else daily.assign(version=daily_version)
        hot = hourly_frame(S.hourly_docs(bumped, updated_at=stamp, version=version))
        out = live.overlay(frame, stamps, hot)
        assert flights(out) == want, (stamp, version, daily_version)
        assert len(out) == len(daily)  # replaced, never doubled
    assert live.overlay(daily, stamps, None) is daily
    new_hour = [{**mine[0], "hour_utc": hour + timedelta(days=2)}]  # a day not read
    out = live.overlay(daily, stamps, hourly_frame(S.hourly_docs(new_hour)))
    assert len(out) == len(daily) + 1
    alone = live.overlay(daily.iloc[0:0], {}, hourly_frame(S.hourly_docs(bumped)))
    assert len(alone) == 3 and alone["flights"].sum() == sum(r["flights"] for r in bumped)


def test_a_day_the_lake_path_has_not_written_yet_shows_its_hot_hours() -> None:
    rows = [r for r in ROWS["hourly"] if S.hour_row(r)["date"] < "2013-03-20"]
    today = [r for r in ROWS["hourly"] if _today(r)]
    kpis = _kpis(rows, S.hourly_docs(today), dates=())
    assert "2013-03-20" not in kpis.dates
    summary = analytics.kpi_summary(kpis, TODAY, CLOCK)
    cut = CLOCK.astimezone(domain.NEW_YORK).hour
    want = sum(r["flights"] for r in today if S.hour_row(r)["local_hour"] <= cut)
    assert summary.value["flights"] == want > 0


# -------------------------------------------------------------------------- stream health


def _state(hot_age: float | None, hot_lag: int | None, lake_age: float = 20, lake_lag=0):
    state: dict = {"_id": "flights_stream", "newest_event_time": CLOCK}
    paths = (("hot", hot_age, hot_lag), ("lake", lake_age, lake_lag))
    for path, age, lag in paths:
        if age is not None:
            state[path] = {"batch_id": 3, "at": (NOW - timedelta(seconds=age)).replace(
                tzinfo=None), "rows": 40, "lag": lag, "seconds": 0.4}  # fmt: skip
    return {"flights_stream": state}


@pytest.mark.parametrize(
    "hot_age, hot_lag, level",
    [
        (2, 40, "ok"),
        (600, 0, "ok"),  # idle: nothing waits in Kafka
        (15, 40, "amber"),  # no batch for 15 s while records wait
        (120, 40, "red"),
        (2, 5_000, "amber"),  # batches, but far behind
        (2, 50_000, "red"),
        (30, None, "amber"),  # lag unknown: the age decides
    ],
)
def test_stream_levels(hot_age, hot_lag, level) -> None:
    rows = {r["path"]: r for r in stream_health(_state(hot_age, hot_lag), NOW)}
    assert rows["hot"]["level"] == level
    assert rows["hot"]["age"] == timedelta(seconds=hot_age)
    assert rows["lake"]["level"] == "ok"
    assert STREAM_RULES["hot"].age.amber < STREAM_RULES["lake"].age.amber


def test_a_stalled_path_needs_attention() -> None:
    assert stream_health({"flights_stream": {"last_batch_id": 4}}, NOW) == []  # before them
    states = _state(None, None, lake_age=360, lake_lag=900)
    assert stream_levels(states, NOW) == ("missing", "red")
    state = State(stream=stream_health(states, NOW), snap=_snap(states))
    items = attention_items(state, NOW)
    assert len(items) == 1 and 'data-alert="stream_behind:lake"' in items[0]
    assert "lake path" in items[0] and "900 records behind Kafka" in items[0]
    assert "6 min ago" in items[0]
    state.stream = stream_health(_state(2, 40), NOW)
    state.snap = _snap(_state(2, 40))
    assert attention_items(state, NOW) == []
    assert not any(math.isnan(r["seconds"]) for r in state.stream)


def _snap(states: dict) -> queries.Snapshot:
    """A snapshot holding only ``states`` (no KPIs, no board)."""
    return queries.Snapshot(read_at=NOW, clock=None, states=states, kpis=Kpis.empty(),
                      weather_now=pd.DataFrame(), board=None, jobs={}, rejects=pd.DataFrame(),
                      rejects_total=0, airlines={})  # fmt: skip


def test_the_dashboard_notebook_polls_as_often_as_the_page_does() -> None:
    """Voila runs ``notebooks/dashboard.ipynb``: its default ``live_s`` is ``LIVE_S`` (a
    default of its own kept the served page at 2.5 s while the page said 1 s)."""
    import re
    from pathlib import Path

    source = (Path(__file__).resolve().parents[2] / "notebooks" / "dashboard.ipynb").read_text()
    found = re.search(r'TARMAC_LIVE_S\\", \\"([0-9.]+)\\"', source)
    assert found and float(found[1]) == live.LIVE_S


# ------------------------------------------------------------------ a live date's day rows


def _day_kpis(carriers: list[dict], weather: list[dict], live: list[dict] | None = None):
    """The page's KPIs after reading the kpi_daily of 03-20 and 03-21 with ``carriers`` and
    ``weather`` rows, and (``live``) the rows of 03-20 derived from its buckets."""
    docs = S.documents(hourly=ROWS["hourly"], carriers=carriers, weather=weather)
    dates = ("2013-03-20", "2013-03-21")
    read = [d for d in docs["kpi_daily"] if d["_id"] in dates]
    kpis = Kpis(decode.profile_of(docs["kpi_profile"][0]), decode.daily_rows(read, dates))
    if live is None:
        return kpis
    mine = [r for r in live if "carrier" in r], [r for r in live if "visib_band" in r]
    day = [d for d in S.daily_docs(ROWS["hourly"], *mine) if d["_id"] == "2013-03-20"]
    return kpis.with_hot(None, decode.daily_rows(day, ["2013-03-20"]))


def _late(row: dict) -> dict:
    """``row`` with one more flight, departed 70 min late."""
    return {**row, "flights": row["flights"] + 1, "departed": row["departed"] + 1,
            "delayed_60": row["delayed_60"] + 1, "dep_delay_sum": row["dep_delay_sum"] + 70,
            "dep_delay_n": row["dep_delay_n"] + 1}  # fmt: skip


def _figures(kpis: Kpis, scope: Scope) -> dict:
    return {
        "carriers": analytics.carrier_table(kpis, scope),
        "airports": analytics.airport_table(kpis, scope),
        **analytics.weather_impact(kpis, scope.airports, "2013-03-20"),
    }


def test_a_live_dates_rows_from_its_buckets_show_now_what_its_day_document_shows_later() -> None:
    """A live date's airlines and weather come from its buckets (``Kpis.live``, derived by
    ``readmodels.day_doc``) in place of its ``kpi_daily`` rows: the same rows give the same
    figures; a flight the buckets hold and the day document not yet shows now what the day
    document shows once the lake path caught up; the baseline (the profile minus the
    ``kpi_daily`` rows it was computed with) stays exact."""
    carriers, weather = ROWS["carriers"], ROWS["weather"]
    today = [r for r in [*carriers, *weather] if r["date"] == "2013-03-20"]
    plain, same = _day_kpis(carriers, weather), _day_kpis(carriers, weather, today)
    assert same.live_dates == ["2013-03-20"] and same.live_key == same.live_key
    jfk = Scope(("JFK",), (), TODAY.date_from, TODAY.date_to)
    for scope in (TODAY, jfk, Scope((), ("C01",), TODAY.date_from, TODAY.date_to)):
        for name, frame in _figures(plain, scope).items():
            pd.testing.assert_frame_equal(frame, _figures(same, scope)[name], obj=name)

    def bumped(rows: list[dict]) -> list[dict]:
        first_carrier = next((r for r in rows if r["origin"] == "JFK" and "carrier" in r
                              and r["date"] == "2013-03-20"), None)  # fmt: skip
        first_weather = next((r for r in rows if r["origin"] == "JFK" and "visib_band" in r
                              and r["date"] == "2013-03-20"), None)  # fmt: skip
        return [_late(r) if r is first_carrier or r is first_weather else r for r in rows]

    live = _day_kpis(carriers, weather, bumped(today))  # the buckets know one more flight
    later = _day_kpis(bumped(carriers), bumped(weather))  # the lake path caught up
    assert live.live_key != same.live_key
    for scope in (TODAY, jfk):
        for name, frame in _figures(later, scope).items():
            pd.testing.assert_frame_equal(_figures(live, scope)[name], frame, obj=name)
            if name in ("carriers", "visib_band", "precip") or (name, scope) == ("airports", TODAY):
                assert not _figures(plain, scope)[name].equals(frame), name  # (wind: unknown)
    code = next(r["carrier"] for r in today if r["origin"] == "JFK" and "carrier" in r)
    with_carrier = Scope((), (code,), TODAY.date_from, TODAY.date_to)
    now, then = (analytics.kpi_summary(k, with_carrier, CLOCK) for k in (live, later))
    before = analytics.kpi_summary(plain, with_carrier, CLOCK)
    assert now.value["flights"] == before.value["flights"] + 1
    assert now.value == pytest.approx(then.value, nan_ok=True)
    assert now.baseline == before.baseline  # the profile's other days, exact either way


def test_a_live_date_whose_buckets_count_fewer_flights_keeps_its_day_documents_rows() -> None:
    """Buckets missing (beyond the serving horizon, or never written) count fewer flights
    than the date's ``kpi_daily``: its rows stay the day document's."""
    carriers, weather = ROWS["carriers"], ROWS["weather"]
    today = [r for r in [*carriers, *weather] if r["date"] == "2013-03-20"]
    live = _day_kpis(carriers, weather, today)
    assert live.live_dates == ["2013-03-20"]  # as many flights: the buckets' rows
    rows = live.live.carrier_daily
    rows = rows.assign(flights=rows["flights"] - 1)  # buckets missing: fewer flights
    short = Kpis(live.profile, live.rows, None, replace(live.live, carrier_daily=rows))
    assert short.live_dates == []
    assert short.carrier_live is short.carrier_daily and short.weather_live is short.weather_impact
