"""The dashboard's read side on documents of docs/data-model.md in the real FerretDB (env ci),
each test in its own database (seeded by ``serving_docs``): averages come from stored sums and
counts, the same-weekday comparison, the live board, freshness / health levels, rejects, and
the empty states."""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest

from pipelines.clients import mongo
from pipelines.core import domain
from pipelines.core.config import Settings
from pipelines.dashboard import analytics, queries
from pipelines.dashboard.health import FreshnessRule, freshness, pipeline_health, rejects_summary
from pipelines.dashboard.kpi_frames import Kpis, Scope, local_date
from pipelines.jobs import registry
from pipelines.orchestration.ledger import Ledger
from tests import serving_docs

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)  # wall clock of the tests


@pytest.fixture
def dash(stack: Settings) -> Iterator[tuple[Settings, object]]:
    """Settings pointing at a fresh database, and that database; dropped afterwards."""
    name = f"tarmac_dq_{uuid.uuid4().hex[:10]}"
    settings = stack.model_copy(update={"mongo": stack.mongo.model_copy(update={"database": name})})
    db = mongo.database(settings)
    yield settings, db
    db.client.drop_database(name)


def measures(flights=0, departed=0, cancelled=0, on_time=0, delayed_60=0, dsum=0, dn=0):
    return {
        "flights": flights, "departed": departed, "cancelled": cancelled, "on_time": on_time,
        "delayed_60": delayed_60, "dep_delay_sum": dsum, "dep_delay_n": dn,
        "arr_delay_sum": dsum, "arr_delay_n": dn,
    }  # fmt: skip


def hourly_doc(origin: str, day: str, local_hour: int, **m) -> dict:
    hour_utc = (
        datetime.fromisoformat(day).replace(hour=local_hour, tzinfo=domain.NEW_YORK).astimezone(UTC)
    )
    return {
        "origin": origin,
        "hour_utc": hour_utc,
        "date": day,
        "local_hour": local_hour,
        "weekday": date.fromisoformat(day).isoweekday(),
        **measures(**m),
    }


def carrier_doc(carrier: str, origin: str, day: str, **m) -> dict:
    return {
        "carrier": carrier,
        "carrier_name": f"{carrier} Airways",
        "origin": origin,
        "date": day,
        "weekday": date.fromisoformat(day).isoweekday(),
        **measures(**m),
    }


def snapshot(db, **rows) -> queries.Snapshot:
    """The page's first read after ``serving_docs.publish(db, **rows)``."""
    serving_docs.publish(db, **rows)
    return queries.load_snapshot(db, NOW)


def reading(db, snap: queries.Snapshot, scope: Scope, clock: datetime | None) -> Kpis:
    """``snap``'s KPIs with what ``scope`` needs at ``clock`` read on demand, as the page does
    when the filters select dates it has not read yet."""
    clock_day = local_date(clock).isoformat() if clock else snap.clock_day
    dates, months = snap.kpis.needed(scope, clock_day)
    snap.add(queries.read_more(db, dates, months))
    return snap.kpis


# ------------------------------------------------------------------------------------ tests


def test_averages_come_from_sums_and_counts_not_from_averages(dash) -> None:
    _, db = dash
    # EWR: 10 departures, 100 min of delay (avg 10); JFK: 30 departures, 900 min (avg 30).
    # The right average is 1000 / 40 = 25 (the mean of the two averages would be 20).
    snap = snapshot(
        db,
        hourly=[
            hourly_doc(
                "EWR",
                "2013-01-02",
                9,
                flights=11,
                departed=10,
                cancelled=1,
                on_time=8,
                dsum=100,
                dn=10,
            ),
            hourly_doc(
                "JFK",
                "2013-01-02",
                9,
                flights=30,
                departed=30,
                on_time=12,
                delayed_60=4,
                dsum=900,
                dn=30,
            ),
        ],
    )
    clock = datetime(2013, 1, 2, 23, 0, tzinfo=UTC)
    scope = Scope(date_from=date(2013, 1, 2), date_to=date(2013, 1, 2))
    summary = analytics.kpi_summary(reading(db, snap, scope, clock), scope, clock)
    assert summary.value["flights"] == 41
    assert summary.value["avg_dep_delay"] == pytest.approx(25.0)
    assert summary.value["on_time_pct"] == pytest.approx(20 / 40 * 100)
    assert summary.value["cancel_pct"] == pytest.approx(1 / 41 * 100)
    assert summary.value["delayed_60"] == 4
    series = analytics.hourly_series(snap.kpis, scope)
    assert len(series) == 1 and series["avg_dep_delay"].iloc[0] == pytest.approx(25.0)
    assert series["label"].iloc[0] == "09:00"  # local hour
    only_jfk = analytics.kpi_summary(snap.kpis, Scope(("JFK",), (), *[date(2013, 1, 2)] * 2), clock)
    assert only_jfk.value["avg_dep_delay"] == pytest.approx(30.0)


def test_no_group_with_several_accumulators_anywhere() -> None:
    """FerretDB v1.24 computes only the first accumulator of a $group: none is used (nor any
    aggregation) by the read side or the page."""
    import importlib
    import pkgutil

    import pipelines.dashboard as package

    names = [m.name for m in pkgutil.walk_packages(package.__path__, f"{package.__name__}.")]
    assert {"pipelines.dashboard.app", "pipelines.dashboard.panels.board"} <= set(names)
    for module in (queries, *map(importlib.import_module, names)):
        source = inspect.getsource(module)
        assert '"$group"' not in source and "'$group'" not in source, module.__name__
        assert ".aggregate(" not in source, module.__name__


def test_same_weekday_baseline_is_time_of_day_aligned(dash) -> None:
    _, db = dash
    # Three Wednesdays (Jan 2, 9, 16) and a Tuesday; the clock is Wednesday 16th at 14:30 local.
    docs = []
    for day, delay in (("2013-01-02", 10), ("2013-01-09", 20), ("2013-01-16", 40)):
        docs.append(
            hourly_doc("EWR", day, 8, flights=10, departed=10, on_time=5, dsum=delay * 10, dn=10)
        )
        docs.append(
            hourly_doc("EWR", day, 20, flights=10, departed=10, on_time=0, dsum=1000, dn=10)
        )  # evening: after the clock's hour
    docs.append(hourly_doc("EWR", "2013-01-15", 8, flights=99, departed=99, dsum=0, dn=99))
    snap = snapshot(db, hourly=docs)
    clock = datetime(2013, 1, 16, 14, 30, tzinfo=domain.NEW_YORK).astimezone(UTC)
    today = Scope(date_from=date(2013, 1, 16), date_to=date(2013, 1, 16))
    summary = analytics.kpi_summary(reading(db, snap, today, clock), today, clock)
    assert summary.cut_hour == 14
    assert summary.value["flights"] == 10  # the evening hour has not come yet
    assert summary.value["avg_dep_delay"] == pytest.approx(40.0)
    assert summary.baseline_dates == ["2013-01-02", "2013-01-09"]  # Wednesdays, not Tuesday
    assert summary.baseline_label == "Wednesday"
    assert summary.baseline["flights"] == pytest.approx(10.0)  # same hours only
    assert summary.baseline["avg_dep_delay"] == pytest.approx(15.0)  # (100 + 200) / 20

    # a complete past day is compared with whole days
    past = Scope(date_from=date(2013, 1, 9), date_to=date(2013, 1, 9))
    summary = analytics.kpi_summary(reading(db, snap, past, clock), past, clock)
    assert summary.cut_hour is None
    assert summary.value["flights"] == 20
    assert summary.baseline_dates == ["2013-01-02"]  # the clock's day is not complete
    assert summary.baseline["avg_dep_delay"] == pytest.approx((100 + 1000) / 20)

    # no earlier same weekday: the average of the other complete days, said so
    tuesday = Scope(date_from=date(2013, 1, 15), date_to=date(2013, 1, 15))
    summary = analytics.kpi_summary(reading(db, snap, tuesday, clock), tuesday, clock)
    assert summary.baseline_label == "day"
    assert "no earlier same weekday" in summary.note


def test_carrier_filter_uses_daily_carrier_kpis(dash) -> None:
    _, db = dash
    snap = snapshot(
        db,
        carriers=[
            carrier_doc("UA", "EWR", "2013-01-02", flights=4, departed=4, on_time=2, dsum=80, dn=4),
            carrier_doc("UA", "EWR", "2013-01-09", flights=6, departed=6, on_time=6, dsum=0, dn=6),
            carrier_doc("UA", "JFK", "2013-01-09", flights=2, departed=2, on_time=2, dsum=6, dn=2),
            carrier_doc(
                "AA", "EWR", "2013-01-09", flights=9, departed=9, on_time=0, dsum=900, dn=9
            ),
        ],
        hourly=[hourly_doc("EWR", "2013-01-09", 8, flights=1)],
    )
    clock = datetime(2013, 1, 10, 12, tzinfo=UTC)
    scope = Scope((), ("UA",), date(2013, 1, 9), date(2013, 1, 9))
    summary = analytics.kpi_summary(reading(db, snap, scope, clock), scope, clock)
    assert summary.basis == "kpi_carrier_daily"
    assert summary.value["flights"] == 8
    assert summary.value["avg_dep_delay"] == pytest.approx(6 / 8)
    assert summary.baseline["flights"] == pytest.approx(4.0)
    board = analytics.carrier_table(
        snap.kpis, Scope(date_from=date(2013, 1, 9), date_to=date(2013, 1, 9))
    )
    assert list(board.sort_values("carrier")["carrier"]) == ["AA", "UA"]
    assert board.set_index("carrier").loc["AA", "avg_dep_delay"] == pytest.approx(100.0)
    airports = analytics.airport_table(snap.kpis, scope).set_index("origin")
    assert list(airports.index) == list(domain.ORIGINS)  # all three, even without flights
    assert airports.loc["LGA", "flights"] == 0
    assert airports.loc["JFK", "avg_dep_delay"] == pytest.approx(3.0)
    assert dict(snap.carriers()) == {"AA": "AA Airways", "UA": "UA Airways"}


def test_heatmap_routes_and_weather_are_weighted(dash) -> None:
    _, db = dash
    hourly = [
        hourly_doc("EWR", "2013-01-02", 8, flights=1, departed=1, dsum=10, dn=1),
        hourly_doc("EWR", "2013-01-09", 8, flights=3, departed=3, dsum=90, dn=3),
        hourly_doc("JFK", "2013-01-09", 8, flights=1, departed=1, dsum=1000, dn=1),
    ]
    snap = snapshot(
        db,
        hourly=hourly,
        routes=[
            {
                "origin": "EWR",
                "dest": "IAH",
                "month": "2013-01",
                "dest_name": "Houston",
                "dest_lat": 29.98,
                "dest_lon": -95.34,
                **measures(flights=5, departed=5, dsum=50, dn=5),
            },
            {
                "origin": "JFK",
                "dest": "IAH",
                "month": "2013-01",
                "dest_name": "Houston",
                "dest_lat": 29.98,
                "dest_lon": -95.34,
                **measures(flights=15, departed=15, dsum=450, dn=15),
            },
            {
                "origin": "JFK",
                "dest": "IAH",
                "month": "2013-02",
                "dest_name": "Houston",
                "dest_lat": 29.98,
                "dest_lon": -95.34,
                **measures(flights=7, departed=7, dsum=7000, dn=7),
            },
        ],
        weather=[
            {
                "origin": "EWR",
                "date": "2013-01-02",
                "visib_band": "1-3 mi",
                "precip": True,
                "wind_band": "20-30 mph",
                **measures(flights=2, departed=2, dsum=120, dn=2),
            },
            {
                "origin": "EWR",
                "date": "2013-01-02",
                "visib_band": "10+ mi",
                "precip": False,
                "wind_band": "0-10 mph",
                **measures(flights=8, departed=8, dsum=40, dn=8),
            },
        ],
    )
    # whole-period figures: from kpi_profile alone (no day after the clock is left out)
    grid = analytics.weekday_hour_heatmap(snap.kpis, ("EWR",))
    assert grid.loc[3, 8] == pytest.approx(100 / 4)  # Wednesdays, 08:00: (10 + 90) / (1 + 3)
    assert grid.isna().sum().sum() == 7 * 24 - 1
    assert analytics.weekday_hour_heatmap(snap.kpis).loc[3, 8] == pytest.approx(1100 / 5)
    # up to Jan 2: the profile minus the rows of Jan 9 (read as kpi_daily)
    january = Scope(date_from=date(2013, 1, 1), date_to=date(2013, 1, 31))
    kpis = reading(db, snap, january, None)
    assert analytics.weekday_hour_heatmap(kpis, ("EWR",), "2013-01-02").loc[3, 8] == pytest.approx(
        10.0
    )
    routes = analytics.routes(kpis, january)
    assert routes.loc[0, "dest"] == "IAH" and routes.loc[0, "flights"] == 20
    assert routes.loc[0, "avg_dep_delay"] == pytest.approx(500 / 20)
    impact = analytics.weather_impact(snap.kpis)
    visib = impact["visib_band"].set_index("visib_band")
    assert list(visib.index) == list(domain.VISIB_BANDS)
    assert visib.loc["1-3 mi", "avg_dep_delay"] == pytest.approx(60.0)
    assert visib["avg_dep_delay"].isna().sum() == 3  # bands without flights
    assert impact["precip"].set_index("precip").loc["dry", "avg_dep_delay"] == pytest.approx(5.0)


def test_live_board_status_delay_and_filters(dash) -> None:
    _, db = dash
    clock = datetime(2013, 1, 2, 18, 0, tzinfo=UTC)

    def flight(key, carrier, origin, minutes, status, **extra):
        sched = clock + timedelta(minutes=minutes)
        return {
            "flight_key": key,
            "carrier": carrier,
            "carrier_name": carrier + " Air",
            "flight": 100,
            "origin": origin,
            "dest": "ORD",
            "dest_name": "Chicago",
            "status": status,
            "status_rank": {"scheduled": 1, "departed": 2, "cancelled": 4}[status],
            "sched_dep_utc": sched,
            "tailnum": "N1",
            **extra,
        }

    serving_docs.publish(
        db,
        flights=[
            flight(
                "a",
                "UA",
                "EWR",
                -50,
                "departed",
                dep_delay=75,
                dep_time_utc=clock + timedelta(minutes=25),
            ),
            flight("b", "UA", "JFK", -30, "scheduled"),  # 30 min late, not departed
            flight("c", "AA", "EWR", -10, "cancelled", cancelled=True),
            flight("d", "AA", "LGA", 40, "scheduled"),
            flight("e", "AA", "LGA", 180, "scheduled"),  # outside the window
            flight("f", "AA", "LGA", -120, "departed", dep_delay=0),  # outside the window
            flight("g", "AA", "JFK", 70, "scheduled"),  # in an hour read, after the window
        ],
    )
    frame = queries.read_board(db, clock)
    assert sorted(frame["flight_key"]) == ["a", "b", "c", "d"]
    assert set(frame.loc[frame["flight_key"] == "b", "origin"]) == {"JFK"}  # the bucket's
    board = analytics.live_board(frame, Scope(), clock)  # clock = 13:00 local
    rows = {r["sched_local"]: r for r in board.to_dict("records")}
    assert list(rows) == ["12:10", "12:30", "12:50", "13:40"]
    departed, late, cancelled, coming = rows.values()
    assert departed["delay"] == 75 and departed["dep_local"] == "13:25"
    assert departed["flight_no"] == "UA 100" and departed["delay_kind"] == "actual"
    assert late["status"] == "scheduled" and late["delay"] == 30
    assert late["delay_kind"] == "late, not departed"
    assert cancelled["status"] == "cancelled" and pd.isna(cancelled["delay"])
    assert coming["status"] == "scheduled" and pd.isna(coming["delay"])  # not due yet
    only = analytics.live_board(frame, Scope(("EWR",), ("UA",)), clock)
    assert list(only["origin"]) == ["EWR"] and list(only["carrier"]) == ["UA"]


def test_freshness_health_and_rejects(dash, tmp_path) -> None:
    settings, db = dash
    clock = datetime(2013, 1, 2, 18, 0, tzinfo=UTC)
    db.pipeline_state.insert_many(
        [
            {
                "_id": "flights_stream",
                "newest_event_time": clock,
                "updated_at": NOW - timedelta(minutes=1),
            },
            {
                "_id": "weather_hourly",
                "newest_event_time": clock - timedelta(hours=3),
                "updated_at": NOW - timedelta(minutes=10),
            },
            {
                "_id": "reference_daily",
                "newest_event_time": clock - timedelta(days=1),
                "updated_at": NOW - timedelta(hours=60),
            },
        ]
    )
    runs = []
    for i, status in enumerate(["success", "failed", "failed", "success"]):
        runs.append(
            {
                "_id": f"f{i}",
                "job": "flights_stream",
                "env": "ci",
                "status": status,
                "start": NOW - timedelta(hours=i * 10 + 1),
                "end": NOW - timedelta(hours=i * 10),
            }
        )
    runs.append(
        {
            "_id": "w0",
            "job": "weather_hourly",
            "status": "failed",
            "start": NOW - timedelta(minutes=30),
            "end": NOW - timedelta(minutes=29),
            "error": {"type": "X", "message": "landing dir missing"},
        }
    )
    ledger = Ledger(settings, tmp_path)  # the runner's writes: the ledger and each job's health
    for run in runs:
        assert ledger.write({**run, "run_id": run["_id"]})
    db.rejects.insert_many(
        [
            {"_id": f"r{i}", "source": s, "reason": r, "at": NOW - timedelta(minutes=i)}
            for i, (s, r) in enumerate(
                [("flights_stream", "bad type")] * 3
                + [("flights_stream", "no time")]
                + [("weather_hourly", "bad type")] * 2
            )
        ]
    )
    snap = snapshot(db)
    assert snap.clock == clock
    assert not snap.has_data
    fresh = {r["source"]: r for r in freshness(snap.states, snap.clock, NOW)}
    assert fresh["flights_stream"]["level"] == "ok"
    assert fresh["flights_stream"]["replay_age"] is None  # it defines the clock
    assert fresh["weather_hourly"]["replay_age"] == timedelta(hours=3)
    assert fresh["weather_hourly"]["level"] == "amber"  # 3 h behind the clock
    assert fresh["reference_daily"]["level"] == "red"  # updated 60 h ago (wall)
    strict = {
        "weather_hourly": FreshnessRule(
            wall=registry.Staleness(timedelta(minutes=1), timedelta(minutes=5))
        )
    }
    assert freshness(snap.states, snap.clock, NOW, strict)[0]["level"] == "red"
    no_newest = {"reference_daily": {"_id": "reference_daily", "updated_at": NOW}}
    (ref,) = [r for r in freshness(no_newest, clock, NOW) if r["source"] == "reference_daily"]
    assert ref["level"] == "ok" and ref["newest"] is None  # ran, newest unknown: wall age only

    health = {r["job"]: r for r in pipeline_health(snap.jobs, NOW)}
    assert health["flights_stream"]["status"] == "success"
    assert health["flights_stream"]["failures_24h"] == 2  # runs 11 h and 21 h ago
    assert health["flights_stream"]["level"] == "amber"
    assert health["flights_stream"]["start"] == NOW - timedelta(hours=1)
    assert health["flights_stream"]["end"] == NOW
    assert health["weather_hourly"]["level"] == "red"
    assert health["weather_hourly"]["error"] == "landing dir missing"
    assert health["reference_daily"]["level"] == "missing"

    rejects = rejects_summary(snap.rejects, snap.rejects_total)
    assert rejects.total == 6
    counts = {(r["source"], r["reason"]): r["count"] for r in rejects.by_reason.to_dict("records")}
    assert counts == {
        ("flights_stream", "bad type"): 3,
        ("flights_stream", "no time"): 1,
        ("weather_hourly", "bad type"): 2,
    }
    assert dict(zip(rejects.by_source["source"], rejects.by_source["count"], strict=True)) == {
        "flights_stream": 4,
        "weather_hourly": 2,
    }


def test_empty_database_gives_empty_states(dash) -> None:
    settings, db = dash
    snap = snapshot(db)
    assert snap.clock is None and not snap.has_data and snap.dates == []
    summary = analytics.kpi_summary(snap.kpis, Scope(), None)
    assert summary.baseline is None and summary.value["flights"] == 0
    assert summary.value["avg_dep_delay"] != summary.value["avg_dep_delay"]  # NaN, not 0
    assert analytics.hourly_series(snap.kpis, Scope()).empty
    assert analytics.carrier_table(snap.kpis, Scope()).empty
    assert analytics.routes(snap.kpis, Scope()).empty
    assert analytics.live_board(snap.board, Scope(), NOW).empty
    assert analytics.weekday_hour_heatmap(snap.kpis).isna().all().all()
    assert {r["level"] for r in freshness(snap.states, None, NOW)} == {"missing"}
    assert {r["level"] for r in pipeline_health(snap.jobs, NOW)} == {"missing"}
    assert rejects_summary(snap.rejects, snap.rejects_total).total == 0

    from pipelines.dashboard import Dashboard

    page = Dashboard(settings)
    page.refresh()
    assert "No flight data yet" in page.banner.value
    assert "Traceback" not in page.banner.value
    assert "Nothing rejected" in page.rejects.value


def test_unreachable_database_is_a_message(stack: Settings) -> None:
    from pipelines.dashboard import Dashboard

    settings = stack.model_copy(
        update={"mongo": stack.mongo.model_copy(update={"uri": "mongodb://127.0.0.1:9/"})}
    )
    page = Dashboard(settings)
    page.refresh()
    assert "Database not reachable" in page.banner.value
    assert "make stack-up" in page.banner.value


def test_job_health_follows_every_ledger_path(dash, tmp_path) -> None:
    """The ``pipeline_health`` documents the page reads are kept by every ledger path: a ledger
    kept before them (folded in at a job's first write), a write, a pending file replayed once
    MongoDB is back (stale versions change nothing), a run marked abandoned."""
    settings, db = dash
    start = datetime.now(UTC) - timedelta(hours=3)

    def run(i: int, status: str, hours: float, **extra) -> dict:
        at = start + timedelta(hours=hours)
        return {"_id": f"w{i}", "run_id": f"w{i}", "job": "weather_hourly", "env": "ci",
                "status": status, "start": at, "end": at + timedelta(seconds=30),
                "error": {"type": "X", "message": f"boom {i}"} if status == "failed" else None,
                **extra}  # fmt: skip

    db.pipeline_runs.insert_one({**run(0, "failed", 0), "updated_at": start})  # before issue 18
    ledger = Ledger(settings, tmp_path)
    assert ledger.write(run(1, "success", 1))
    doc = db.pipeline_health.find_one({"_id": "weather_hourly"})
    assert doc["last"]["run_id"] == "w1" and [f["run_id"] for f in doc["failures"]] == ["w0"]
    assert doc["last_failure"]["error"] == "boom 0"

    ledger._append_pending({**run(2, "running", 2), "updated_at": start})  # noqa: SLF001
    ledger._append_pending({**run(2, "failed", 2), "updated_at": start + timedelta(hours=2)})  # noqa: SLF001
    assert ledger.flush_pending() == 1
    ledger._append_pending({**run(2, "running", 2), "updated_at": start})  # noqa: SLF001 - stale
    ledger.flush_pending()
    doc = db.pipeline_health.find_one({"_id": "weather_hourly"})
    assert doc["last"]["run_id"] == "w2" and doc["last"]["status"] == "failed"
    assert [f["run_id"] for f in doc["failures"]] == ["w2", "w0"]

    assert ledger.write(run(3, "running", 2.5))
    ledger.mark_abandoned("w3", {"pid": 1, "host": "h"})
    (health,) = [r for r in pipeline_health(queries.read_health(db), datetime.now(UTC))
                 if r["job"] == "weather_hourly"]  # fmt: skip
    assert health["status"] == "failed" and health["failures_24h"] == 3
    assert health["error"].startswith("run abandoned") and health["level"] == "red"
