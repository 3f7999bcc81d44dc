"""The look-ahead's and the search's reads on the real FerretDB (``TARMAC_TEST_ENV``), each
test in its own database seeded by ``serving_docs``: every command they send is a ``find`` of
exactly ``{_id: value}`` (watched with pymongo's command monitoring), they read the ids they
should, a hot bucket that knows more wins over the lake's (its flight, and its delay risk, is
counted), and the page (in-process) draws the next hours and lists what a search or a click
asks for, equal to an independent computation from the rows."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from pymongo import MongoClient, monitoring

from pipelines.clients import mongo
from pipelines.core import domain
from pipelines.core.config import Settings
from pipelines.dashboard import kpi_frames, queries
from pipelines.dashboard import lookups as L
from pipelines.dashboard.ahead import AHEAD_MAX, ahead_table
from pipelines.dashboard.search import Ask, answer, flights_frame
from pipelines.serving import readmodels as RM
from tests import serving_docs as S

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
CLOCK = datetime(2013, 3, 20, 14, 30, tzinfo=domain.NEW_YORK).astimezone(UTC)  # Wednesday, 18:30Z
HOUR = CLOCK.replace(minute=0)
DAY = "2013-03-20"


class Commands(monitoring.CommandListener):
    """The commands a client sent (name, the command), as the server received them."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.sent.append((event.command_name, dict(event.command)))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture
def seeded(stack: Settings) -> Iterator[tuple[Settings, object, dict]]:
    """A fresh database: 12 days to Mar 21, the buckets of every hour of Mar 20 and of the
    next hours, the weather of the clock's hour and the 3 before it, the stream's state."""
    name = f"tarmac_la_{uuid.uuid4().hex[:10]}"
    settings = stack.model_copy(update={"mongo": stack.mongo.model_copy(update={"database": name})})
    db = mongo.database(settings)
    hours = [datetime(2013, 3, 20, 4, tzinfo=UTC) + timedelta(hours=h) for h in range(30)]
    rows = S.synthetic(date(2013, 3, 10), 12, seed=5, carriers=4, dests=5, flights_at=hours,
                       per_bucket=6)  # fmt: skip
    S.publish(db, **rows)
    weather = [{"_id": S.hour_id(o, HOUR - timedelta(hours=h)), "origin": o,
                "hour_utc": HOUR - timedelta(hours=h), "visib_km": 16.0 - 3 * h,
                "wind_speed_kmh": 10.0 + h, "precip_mm": 0.0}
               for o in ("EWR", "JFK") for h in range(4)]  # fmt: skip
    db.weather_hourly.insert_many(weather)
    db.pipeline_state.insert_one(
        {"_id": "flights_stream", "newest_event_time": CLOCK, "updated_at": NOW}
    )
    yield settings, db, rows
    db.client.drop_database(name)


def hot_flight(db, rows: dict) -> dict:
    """The live board raised a new flight into the JFK bucket of the next hour: its hot
    bucket knows more than the lake's. A model scored one flight of the hour after (the lake
    path's bucket: the hot map keeps ``readmodels.FLIGHT_FIELDS`` only). Returns the flight."""
    sched = HOUR + timedelta(hours=1, minutes=20)
    new = {
        "flight_key": f"{DAY}|ZZ|9999|JFK|1050",
        "carrier": "ZZ",
        "flight": 9999,
        "tailnum": "N999ZZ",
        "dest": "BOS",
        "sched_dep_utc": sched,
        "status_rank": 1,
    }
    scored = S.hour_id("JFK", HOUR + timedelta(hours=2))
    db.flights_by_hour.update_one({"_id": scored}, {"$set": {"flights.0.delay_risk": 0.8}})
    key = S.hour_id("JFK", sched.replace(minute=0))
    lake = db.flights_by_hour.find_one({"_id": key})
    flights = {RM.slot_key(f["flight_key"]): {k: v for k, v in f.items() if k != "status"}
               for f in [*lake["flights"], new]}  # fmt: skip
    db.flights_by_hour_hot.insert_one(
        {
            "_id": key,
            "origin": "JFK",
            "hour_utc": lake["hour_utc"],
            "date": lake["date"],
            "flights": flights,
            "updated_at": NOW,
        }  # fmt: skip
    )
    return {**new, "origin": "JFK", "status": "scheduled"}


def watched(settings: Settings) -> tuple[object, Commands]:
    commands = Commands()
    client = MongoClient(settings.mongo.uri, tz_aware=True, event_listeners=[commands])
    db = client[settings.mongo.database]
    # the reader asks each server once per process whether it is FerretDB (buildInfo): asked
    # here, so that what is counted is what the page reads whichever test ran before
    mongo.is_ferretdb(db[RM.STATE])
    commands.sent.clear()
    return db, commands


def only_by_id(commands: Commands) -> Counter:
    """Every command is a ``find`` of exactly ``{_id: value}`` (limit 1: ``find_one``);
    returns how many per collection."""
    per = Counter()
    for name, command in commands.sent:
        assert name == "find", (name, command)
        assert list(command["filter"]) == ["_id"], command["filter"]
        assert not isinstance(command["filter"]["_id"], dict), command["filter"]
        per[command["find"]] += 1
    return per


def test_the_look_ahead_reads_its_buckets_and_weather_by_id(seeded) -> None:
    settings, db, rows = seeded
    new = hot_flight(db, rows)
    read_db, commands = watched(settings)
    data = L.read_ahead(read_db, CLOCK)
    assert only_by_id(commands) == {"flights_by_hour": 21, "flights_by_hour_hot": 21,
                                    "weather_hourly": 12}  # fmt: skip
    assert data.reads == only_by_id(commands)
    assert len(data.buckets) == 3 * (AHEAD_MAX + 1)  # every hour has flights here
    assert sorted(d["origin"] for d in data.weather) == ["EWR"] * 4 + ["JFK"] * 4

    snap = queries.load_snapshot(db, NOW)
    got = ahead_table(data.buckets, snap.kpis, CLOCK, hours=4)
    # independently: the rows' flights per bucket, the hot flight added
    flights = [*rows["flights"], new]
    for rec in got.to_dict("records"):
        end = rec["hour_utc"] + timedelta(hours=1)
        mine = [f for f in flights if f["origin"] == rec["origin"]
                and rec["hour_utc"] <= f["sched_dep_utc"] < end]  # fmt: skip
        assert rec["scheduled"] == len(mine), rec
        assert rec["not_departed"] == sum(f["status_rank"] == 1 for f in mine), rec
    jfk = got[(got["origin"] == "JFK") & (got["hour_utc"] == HOUR + timedelta(hours=1))].iloc[0]
    assert jfk["risk_n"] == 0
    scored = got[(got["origin"] == "JFK") & (got["hour_utc"] == HOUR + timedelta(hours=2))]
    assert (scored["risk"].iloc[0], scored["risk_n"].iloc[0]) == (0.8, 1)
    assert got["risk_n"].sum() == 1
    # the usual: Wednesday Mar 13 only (Mar 20 is the clock's day), at 15:00 New York
    (wed,) = [r for r in rows["hourly"] if r["origin"] == "JFK" and r["hour_utc"]
              == datetime(2013, 3, 13, 15, tzinfo=domain.NEW_YORK).astimezone(UTC)]  # fmt: skip
    assert (jfk["usual"], jfk["usual_days"], jfk["usual_basis"]) == (
        wed["flights"], 1, "Wednesday")  # fmt: skip
    assert jfk["usual_delay"] == pytest.approx(wed["dep_delay_sum"] / wed["dep_delay_n"])
    read_db.client.close()


def test_the_search_reads_the_days_buckets_by_id(seeded) -> None:
    settings, db, rows = seeded
    new = hot_flight(db, rows)
    read_db, commands = watched(settings)
    held = L.read_day_flights(read_db, [DAY])
    assert only_by_id(commands) == {"flights_by_hour": 72, "flights_by_hour_hot": 72}
    want = sorted(
        f["flight_key"]
        for f in [*rows["flights"], new]
        if f["sched_dep_utc"].astimezone(domain.NEW_YORK).date().isoformat() == DAY
    )
    assert sorted(held.flights["flight_key"]) == want
    found = answer(held.flights, Ask("search", "ZZ 9999"), kpi_frames.Scope(), CLOCK)
    assert list(found["flight_key"]) == [new["flight_key"]]
    tail = rows["flights"][0]["tailnum"]
    found = answer(held.flights, Ask("search", tail.lower()), kpi_frames.Scope(), CLOCK)
    assert sorted(found["flight_key"]) == sorted(
        f["flight_key"] for f in rows["flights"] if f["tailnum"] == tail and f["flight_key"]
        in want)  # fmt: skip
    read_db.client.close()


def test_the_page_draws_the_next_hours_and_lists_what_is_asked(seeded) -> None:
    from pipelines.dashboard import Dashboard

    settings, db, rows = seeded
    new = hot_flight(db, rows)
    page = Dashboard(settings, now=lambda: NOW)
    page.refresh()
    assert 'data-table="ahead"' in page.ahead_panel.table.value
    assert page.ahead_panel.table.value.count("<tr") == 1 + 3 * 5  # 4 h: 5 hours x 3 airports
    assert "80% (1)" in page.ahead_panel.table.value  # the scored flight's bank
    assert 'data-table="ahead-weather"' in page.ahead_panel.weather.value
    page.ahead_panel.w_hours.value = 6
    assert page.ahead_panel.table.value.count("<tr") == 1 + 3 * 7
    assert 'data-scope="departures"' in page.header.value

    page.search_panel.w_query.value = "zz9999"  # Enter in the box
    assert 'data-found="1"' in page.search_panel.note.value
    assert "N999ZZ" in page.search_panel.listing.value
    page.drill(Ask("tile", "flights"))  # a click on the Flights tile
    held = flights_frame(queries.resolved(db, RM.BOARD, RM.board_keys([DAY])))
    want = answer(held, Ask("tile", "flights"), page.scope(), CLOCK)
    assert f'data-found="{len(want)}"' in page.search_panel.note.value
    page.drill(Ask("carrier", "C01"))
    want = held[(held["carrier"] == "C01") & (held["local_hour"] <= 14)]
    assert f'data-found="{len(want)}"' in page.search_panel.note.value
    assert new["flight_key"] not in page.search_panel.listing.value
