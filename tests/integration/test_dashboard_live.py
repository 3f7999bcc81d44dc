"""The page following the stream on the real FerretDB (env ci), seeded by ``serving_docs``: a
poll reads the one ``pipeline_state`` document by ``_id`` and nothing else until a batch id of
the stream moves; then the board buckets on screen and the selected day's ``kpi_hourly`` hours,
by ``_id``; the page (in-process, no kernel: ``Dashboard.follow``) redraws the board and the
tiles with the new flight and the hour's new row, the tiles equal to an independent computation
from every row, the baseline unchanged; a stalled path shows in the header and "Needs
attention"."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest

from pipelines.clients import mongo
from pipelines.core import domain
from pipelines.core.config import Settings
from pipelines.dashboard import kpi_frames, queries
from pipelines.dashboard.follow import DAY_DRAW_S, Buckets, poll
from pipelines.dashboard.health import stream_levels
from pipelines.dashboard.live import board_window, hour_ids, marks
from pipelines.dashboard.state import Live
from pipelines.serving import readmodels as RM
from tests import serving_docs as S
from tests.integration.test_dashboard_reads import frames, reference_summary

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
LATER = S.STAMP + timedelta(seconds=5)
CLOCK = datetime(2013, 3, 20, 14, 30, tzinfo=domain.NEW_YORK).astimezone(UTC)  # 18:30Z
HOUR = CLOCK.replace(minute=0)
TODAY = kpi_frames.Scope(date_from=date(2013, 3, 20), date_to=date(2013, 3, 20))


def batch(batch_id: int, age_s: float = 1.0, lag: int = 0) -> dict:
    return {"batch_id": batch_id, "at": NOW - timedelta(seconds=age_s), "rows": 40, "lag": lag,
            "seconds": 0.3}  # fmt: skip


@pytest.fixture
def live_db(stack: Settings) -> Iterator[tuple[Settings, object, dict]]:
    """A fresh database: 12 days to Mar 21 (kpi_daily, kpi_hourly, profile), the board of the
    hours around the clock, the stream's state with both paths; dropped afterwards."""
    name = f"tarmac_dl_{uuid.uuid4().hex[:10]}"
    settings = stack.model_copy(update={"mongo": stack.mongo.model_copy(update={"database": name})})
    db = mongo.database(settings)
    near = [HOUR + timedelta(hours=h) for h in (-1, 0, 1)]
    rows = S.synthetic(date(2013, 3, 10), 12, seed=11, carriers=4, dests=5, flights_at=near)
    S.publish(db, **rows)
    db.pipeline_state.insert_one(
        {
            "_id": "flights_stream",
            "newest_event_time": CLOCK,
            "updated_at": NOW,
            "hot": batch(10),
            "lake": batch(3, age_s=12),
        }  # fmt: skip
    )
    yield settings, db, rows
    db.client.drop_database(name)


def land(db, rows: dict, batch_id: int) -> dict:
    """What one batch of the hot path writes: a new JFK flight departed 70 min late in the
    clock's hour, in its board bucket and its hour's ``kpi_hourly`` row (version 2), then the
    state (``hot.batch_id``). Returns the rows as they are now."""
    flight = {"flight_key": "2013-03-20|ZZ|9999|JFK|1405", "origin": "JFK", "carrier": "ZZ",
              "carrier_name": "Zulu Air", "flight": 9999, "dest": "D01",
              "dest_name": "Airport 1", "sched_dep_utc": HOUR + timedelta(minutes=5),
              "dep_time_utc": HOUR + timedelta(minutes=75), "dep_delay": 70,
              "status_rank": 2, "status": "departed", "cancelled": False}  # fmt: skip
    rows = {**rows, "flights": [*rows["flights"], flight]}
    bucket = [f for f in rows["flights"] if f["origin"] == "JFK" and f["sched_dep_utc"] >= HOUR
              and f["sched_dep_utc"] < HOUR + timedelta(hours=1)]  # fmt: skip
    (doc,) = S.board_docs(bucket, version=2)
    db.flights_by_hour.replace_one({"_id": doc["_id"]}, doc)
    hourly = []
    for r in rows["hourly"]:
        if r["origin"] == "JFK" and r["hour_utc"] == HOUR:
            r = {**r, "flights": r["flights"] + 1, "departed": r["departed"] + 1,
                 "delayed_60": r["delayed_60"] + 1, "dep_delay_sum": r["dep_delay_sum"] + 70,
                 "dep_delay_n": r["dep_delay_n"] + 1}  # fmt: skip
            (hot,) = S.hourly_docs([r], updated_at=LATER, version=2)
            db.kpi_hourly.replace_one({"_id": hot["_id"]}, hot)
        hourly.append(r)
    db.pipeline_state.update_one({"_id": "flights_stream"}, {"$set": {"hot": batch(batch_id)}})
    return {**rows, "hourly": hourly}


def test_a_poll_reads_the_state_alone_until_a_batch_id_moves(live_db) -> None:
    _, db, _ = live_db
    state = db.pipeline_state.find_one({"_id": "flights_stream"})
    states = {"flights_stream": state}
    shown = Live(seen=marks(state), dates=["2013-03-20"], levels=stream_levels(states, NOW))
    reads: Counter = Counter()
    assert poll(db, shown, NOW, reads) is None
    assert reads == {"pipeline_state": 1}

    db.pipeline_state.update_one({"_id": "flights_stream"}, {"$set": {"hot": batch(11)}})
    reads.clear()
    read = poll(db, shown, NOW, reads)
    assert read is not None and read.full and read.marks == (11, 3) and read.clock == CLOCK
    # 3 airports x 3 hours of board, 3 airports x the 15 hours of the day up to the clock's,
    # each bucket as the lake path and as the hot path wrote it (an hour's hot row is derived
    # from its hot board bucket), and every bucket of the day (3 x 24: its airlines and
    # weather, readmodels.day_doc)
    assert reads == {"pipeline_state": 1, "flights_by_hour": 9 + 72,
                     "flights_by_hour_hot": 9 + 45 + 72, "kpi_hourly": 45}  # fmt: skip
    assert len(read.hot) == 45 and set(read.hot["date"]) == {"2013-03-20"}
    assert len(read.board) == len(queries.read_board(db, CLOCK)) > 0

    shown.seen = read.marks
    db.pipeline_state.update_one({"_id": "flights_stream"}, {"$set": {"lake": batch(4)}})
    assert poll(db, shown, NOW).marks == (11, 4)  # the lake path moves it too

    shown.seen = (11, 4)
    stalled = {"hot": batch(11, age_s=120, lag=300), "lake": batch(4)}
    db.pipeline_state.update_one({"_id": "flights_stream"}, {"$set": stalled})
    read = poll(db, shown, NOW)  # no batch, but the hot path's level changed: the state
    assert read is not None and not read.full and read.board is None
    assert stream_levels({"flights_stream": read.state}, NOW) == ("red", "ok")


def raise_a_hot_bucket(db) -> tuple[dict, list[dict]]:
    """Batch 11 of the live board alone: the hot bucket of JFK's clock hour with the lake's
    flights and a new one (ZZ 9999, departed 70 min late), the batch record naming it. The new
    flight and the lake's."""
    lake = db.flights_by_hour.find_one({"_id": RM.hour_key("JFK", HOUR)})
    flight = {"flight_key": "2013-03-20|ZZ|9999|JFK|1405", "carrier": "ZZ", "flight": 9999,
              "dest": "D01", "sched_dep_utc": HOUR + timedelta(minutes=5),
              "dep_time_utc": HOUR + timedelta(minutes=75), "dep_delay": 70,
              "status_rank": 2}  # fmt: skip
    known = [{k: v for k, v in f.items() if k not in RM.RANK_FIELDS} for f in lake["flights"]]
    hot = {"_id": lake["_id"], "origin": "JFK", "hour_utc": HOUR, "date": lake["date"],
           "updated_at": LATER, "flights": {RM.slot_key(f["flight_key"]): f
                                             for f in [*known, flight]}}  # fmt: skip
    db[RM.BOARD_HOT].insert_one(hot)
    recent = [{"batch_id": 11, "buckets": [lake["_id"]]}]
    db.pipeline_state.update_one({"_id": "flights_stream"},
                                 {"$set": {"hot": {**batch(11), "recent": recent}}})  # fmt: skip
    return flight, known


def test_after_a_board_batch_a_follower_reads_only_the_buckets_it_raised(live_db) -> None:
    """The live board's batch record lists the buckets each recent batch raised: a follower
    with a cache reads the state and those hot buckets alone, and shows what a full read
    shows (the new flight on the board, in its hour's row derived from the hot bucket)."""
    _, db, rows = live_db
    cache, shown = Buckets(), Live(seen=None, dates=["2013-03-20"], levels=())
    first = poll(db, shown, NOW, cache=cache)  # a first read: every bucket shown
    shown_ids = set(board_window(CLOCK)[0]) | set(hour_ids(["2013-03-20"], CLOCK))
    shown_ids |= set(RM.board_keys(["2013-03-20"]))  # the day's buckets: its airlines, weather
    assert first is not None and first.reads[RM.BOARD_HOT] == len(shown_ids) == 72  # each once
    shown.seen = first.marks

    flight, known = raise_a_hot_bucket(db)
    reads: Counter = Counter()
    read = poll(db, shown, NOW, reads, cache=cache)
    assert read is not None and read.full
    assert reads == {"pipeline_state": 1, RM.BOARD_HOT: 1}  # the one bucket it raised
    full = poll(db, Live(seen=None, dates=["2013-03-20"], levels=()), NOW)
    assert read.board.equals(full.board) and read.hot.equals(full.hot)
    assert flight["flight_key"] in set(read.board["flight_key"])
    row = read.hot[(read.hot["origin"] == "JFK") & (read.hot["hour_utc"] == HOUR)].iloc[0]
    assert row["flights"] == len(known) + 1 and row["delayed_60"] >= 1


def test_the_page_redraws_the_board_and_the_tiles_after_a_batch(live_db) -> None:
    from pipelines.dashboard import Dashboard

    settings, db, rows = live_db
    page = Dashboard(settings, now=lambda: NOW)
    page.refresh()
    assert page.scope() == TODAY
    before = page.state.kpis
    assert "data-stream" in page.header.value and "live board" in page.header.value
    assert page.follow().full  # the first poll reads (identical rows: identical tiles)
    assert page.state.kpis.value == before.value
    assert page.follow() is None and page.live_draws == 1  # nothing moved: nothing read

    now_rows = land(db, rows, batch_id=11)
    read = page.follow()
    assert read.full and page.live_draws == 2
    tiles = page.state.kpis
    assert tiles.value["flights"] == before.value["flights"] + 1
    assert tiles.value["delayed_60"] == before.value["delayed_60"] + 1
    hourly, carrier_daily, _ = frames(now_rows)
    want = reference_summary(hourly, carrier_daily, TODAY, CLOCK)
    assert tiles.value == pytest.approx(want["value"], nan_ok=True)
    assert tiles.baseline == before.baseline  # the profile and its days as read
    assert "ZZ 9999" in page.board_panel.board.value
    assert 'data-kpi="flights"' in page.tiles_panel.tiles["flights"].value
    assert f'data-value="{tiles.value["flights"]:.4f}"' in page.tiles_panel.tiles["flights"].value

    # the next full refresh keeps the hours read (kpi_daily has not caught up yet)
    page.refresh()
    assert page.state.kpis.value["flights"] == tiles.value["flights"]

    stalled = {"lake": batch(3, age_s=400, lag=900)}
    db.pipeline_state.update_one({"_id": "flights_stream"}, {"$set": stalled})
    read = page.follow()
    assert read is not None and not read.full
    attention = page.attention.value
    assert "lake path" in attention and "900 records behind Kafka" in attention
    assert 'data-level="red"' in page.header.value


def test_a_batch_of_the_next_day_refreshes_the_whole_page(live_db) -> None:
    from pipelines.dashboard import Dashboard

    settings, db, _ = live_db
    page = Dashboard(settings, now=lambda: NOW)
    page.refresh()
    page.follow()
    tomorrow = CLOCK + timedelta(hours=10)  # 00:30 New York, Mar 21
    db.pipeline_state.update_one(
        {"_id": "flights_stream"},
        {"$set": {"newest_event_time": tomorrow, "hot": batch(12)}},
    )
    page.follow()  # a full refresh (in the caller here): the snapshot moves to the new day
    assert page.state.snap.clock == tomorrow and page.state.snap.clock_day == "2013-03-21"
    assert page.scope().date_from == date(2013, 3, 21)  # "Today" followed the clock
    assert page.state.live.dates == ["2013-03-21"] and page.state.live.seen is None
    read = page.follow()  # the new day's hours started by the clock (00:00), by _id
    assert read.full and set(read.hot["date"]) == {"2013-03-21"} and len(read.hot) == 3


def test_a_refresh_landing_while_a_filter_reads_its_days_still_draws_the_filter(live_db) -> None:
    """A refresh started before the duty manager picks "Last 7 days" lands while the days the
    period needs are still being read: the page draws the 7 days once they arrive (it used to
    drop them as read for an older snapshot and kept showing today). Both reads are real
    (MongoDB); the test only holds each back until the moment of the race."""
    import asyncio
    import threading

    from pipelines.dashboard import Dashboard

    settings, _, _ = live_db
    alone = Dashboard(settings, now=lambda: NOW)  # no kernel loop: every read in the caller
    alone.refresh()
    alone.filters.w_period.value = "Last 7 days"
    want = alone.state.kpis.value
    assert want["flights"] > 0 and alone.scope().date_from == date(2013, 3, 14)

    page = Dashboard(settings, now=lambda: NOW)
    page.refresh()
    today = page.state.kpis.value
    assert today["flights"] < want["flights"]
    gates = {"snapshot": threading.Event(), "more": threading.Event()}

    def held(name: str, read):
        def wait_then_read(*args):
            assert gates[name].wait(60), f"{name} was never released"
            return read(*args)

        return wait_then_read

    page.reader.snapshot = held("snapshot", page.reader.snapshot)
    page.reader.more = held("more", page.reader.more)

    async def until(ready, what: str) -> None:
        for _ in range(600):
            if ready():
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"never {what}")

    async def race() -> None:
        first = page.state.snap
        page.refresh(background=True)  # reads today's dates, held
        page.filters.w_period.value = "Last 7 days"  # reads the 6 days before, held
        assert page._pending
        gates["snapshot"].set()
        await until(lambda: page.state.snap is not first, "drew the refresh")
        gates["more"].set()
        await until(lambda: not page._pending and not page.state.loading, "settled")
        await asyncio.sleep(0.2)  # a draw scheduled by the last read

    asyncio.run(race())
    assert page.scope() == alone.scope()
    assert page.state.kpis.value == pytest.approx(want, nan_ok=True)


def test_a_claimed_kernel_sends_again_what_its_claim_changed(live_db, monkeypatch) -> None:
    """A preheated kernel claimed by a link applies the link's view; every update that sends
    (the controls, the tiles, the charts, the URL) is sent again, with the same state, when the
    page says it has built its widgets and once more a moment later (``resync.AGAIN_S``): a
    page still building its widgets when the claim landed dropped the first updates (seen in
    Chromium under load: the default view's tiles, 797 flights for 70, under a link for JFK,
    one airline, 7 days). What changes later (the 7 days read by the claim) is sent again too.
    After the last send nothing is recorded any more."""
    import asyncio

    import ipywidgets

    from pipelines.dashboard import Dashboard, resync

    settings, _, _ = live_db
    monkeypatch.setattr(resync, "AFTER_S", (0.05, 0.1))
    monkeypatch.setattr(resync, "AGAIN_S", 0.2)
    sent: list[tuple[ipywidgets.Widget, dict]] = []  # what the page would receive

    def _send(widget, msg, buffers=None) -> None:
        sent.append((widget, msg["state"]))

    monkeypatch.setattr(ipywidgets.Widget, "_send", _send)
    page = Dashboard(settings, now=lambda: NOW)
    page.refresh()
    assert page.filters.w_airports.value == domain.ORIGINS
    flights = page.tiles_panel.tiles["flights"]
    default_tile = flights.value

    def updates(batch) -> set[tuple[int, str]]:  # the button's own answer (its title) aside
        return {(id(w), key) for w, state in batch for key in state if w is not page.resync.ready}

    async def claim() -> tuple[set, list, list]:
        sent.clear()
        page._claimed("airports=JFK&period=7d")
        claimed = updates(sent)
        sent.clear()
        page.resync.ready.click()  # the template, once the page has built its widgets
        on_ready = list(sent)
        sent.clear()
        await asyncio.sleep(0.4)
        for _ in range(600):  # the 7 days' read, drawn (a loaded machine takes longer)
            if not page._pending and not page.state.loading:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # a draw scheduled by the last read
        return claimed, on_ready, list(sent)

    claimed, on_ready, fallbacks = asyncio.run(claim())
    assert page.filters.w_airports.value == ("JFK",)
    assert claimed  # the claim changed the page
    assert updates(on_ready) == claimed  # everything it changed, once more
    # once more AGAIN_S later, the fallbacks cancelled (the 7 days the claim asked for are
    # drawn meanwhile: they are sent as they happen, and again)
    again = Counter((id(w), key) for w, state in fallbacks for key in state)
    assert min(again[item] for item in claimed) >= 1
    assert flights.value != default_tile  # JFK's 7 days, sent again as the kernel has it
    assert [state for w, state in fallbacks if w is flights][-1] == {"value": flights.value}
    jfk = (domain.ORIGINS.index("JFK"),)
    assert (page.filters.w_airports.model_id, jfk) in {
        (w.model_id, state.get("index")) for w, state in on_ready
    }
    assert not page.resync.active  # stopped at the last fallback
    sent.clear()
    page.resync.ready.click()
    assert [w for w, _ in sent if w is not page.resync.ready] == []  # nothing recorded


@pytest.fixture
def day_db(stack: Settings) -> Iterator[tuple[Settings, object, list[dict]]]:
    """A fresh database whose 2013-03-20 is whole in its board buckets (two flights in each
    of its 72 buckets) and its ``kpi_daily`` / ``kpi_hourly`` / profile agree with them."""
    name = f"tarmac_dd_{uuid.uuid4().hex[:10]}"
    settings = stack.model_copy(update={"mongo": stack.mongo.model_copy(update={"database": name})})
    db = mongo.database(settings)
    hours = [h.replace(tzinfo=UTC) for h in RM.hours_of_date("2013-03-20")]
    flights = S.synthetic_flights(hours, seed=4, carriers=4, per_bucket=2)
    day = RM.day_doc("2013-03-20", S.board_docs(flights))
    hourly = [{k: v for k, v in h.items() if k != "local_hour"} for h in day["hours"]]
    carriers = [{**c, "date": "2013-03-20"} for c in day["carriers"]]
    S.publish(db, hourly=hourly, carriers=carriers, flights=flights)
    state = {"newest_event_time": CLOCK, "updated_at": NOW, "hot": batch(10), "lake": batch(3)}
    db.pipeline_state.insert_one({"_id": "flights_stream", **state})
    yield settings, db, flights
    db.client.drop_database(name)


def test_the_airlines_of_the_day_follow_its_buckets_before_its_day_document(day_db) -> None:
    """A batch raises a bucket of the clock's day with a flight of a new airline: after the
    next poll the page's airlines show it, drawn with the board, while the day's
    ``kpi_daily`` does not have it yet; the day's figures read from the buckets otherwise
    equal the day document's."""
    from pipelines.dashboard import Dashboard

    settings, db, flights = day_db
    page = Dashboard(settings, now=lambda: NOW)
    page.refresh()
    before = page.state.carriers.copy()
    assert page.follow().full
    assert page.state.snap.kpis.live_dates == ["2013-03-20"]
    pd.testing.assert_frame_equal(page.state.carriers, before)  # the same figures either way

    zz = {"flight_key": "2013-03-20|ZZ|9999|JFK|1405", "origin": "JFK", "carrier": "ZZ",
          "carrier_name": "Zulu Air", "flight": 9999, "dest": "D01",
          "sched_dep_utc": HOUR + timedelta(minutes=5), "dep_time_utc": HOUR + timedelta(
          minutes=75), "dep_delay": 70, "status_rank": 2, "status": "departed",
          "cancelled": False}  # fmt: skip
    bucket = [f for f in [*flights, zz] if f["origin"] == "JFK"
              and HOUR <= f["sched_dep_utc"] < HOUR + timedelta(hours=1)]  # fmt: skip
    (doc,) = S.board_docs(bucket, version=2)
    db.flights_by_hour.replace_one({"_id": doc["_id"]}, doc)
    db.pipeline_state.update_one({"_id": "flights_stream"}, {"$set": {"hot": batch(11)}})
    assert page.follow().full  # within DAY_DRAW_S of the last draw: the figures, not drawn
    assert "ZZ" in set(page.state.snap.kpis.carrier_live["carrier"])
    assert "ZZ" not in set(page.state.carriers["carrier"])
    page.state.live.day_drawn_at -= DAY_DRAW_S  # later: the next batch draws them
    db.pipeline_state.update_one({"_id": "flights_stream"}, {"$set": {"hot": batch(12)}})
    assert page.follow().full
    shown = page.state.carriers.set_index("carrier")
    assert shown.loc["ZZ", "flights"] == 1 and shown.loc["ZZ", "carrier_name"] == "Zulu Air"
    assert shown.loc["ZZ", "delayed_60"] == 1
    assert "ZZ" not in set(page.state.snap.kpis.carrier_daily["carrier"])  # the day document
    assert "ZZ" in list(page.carriers_panel.chart.bars.x)  # drawn again after the batch
    assert "ZZ 9999" in page.board_panel.board.value  # in the same redraw as the board


def test_the_alert_rules_read_the_days_airlines_from_its_buckets_as_the_page_does(day_db) -> None:
    """``alerts.inputs.read_inputs`` takes the clock's day's airlines from its buckets
    (``readmodels.day_doc``) when they count every flight of its ``kpi_daily``, and that
    document's rows when they count fewer (a bucket missing)."""
    from pipelines.serving.alerts.inputs import read_inputs

    _, db, flights = day_db
    day = db.kpi_daily.find_one({"_id": "2013-03-20"})
    same = read_inputs(db, NOW, [])
    assert sorted(same.carriers, key=str) == sorted(day["carriers"], key=str)

    late = {**flights[0], "flight_key": "2013-03-20|ZZ|9999|JFK|1405", "origin": "JFK",
            "carrier": "ZZ", "carrier_name": "Zulu Air", "sched_dep_utc": HOUR + timedelta(
            minutes=5), "dep_time_utc": HOUR + timedelta(minutes=75), "dep_delay": 70,
            "status_rank": 2}  # fmt: skip
    bucket = [f for f in [*flights, late] if f["origin"] == "JFK"
              and HOUR <= f["sched_dep_utc"] < HOUR + timedelta(hours=1)]  # fmt: skip
    (doc,) = S.board_docs(bucket, version=2)
    db.flights_by_hour.replace_one({"_id": doc["_id"]}, doc)
    now = {c["carrier"]: c for c in read_inputs(db, NOW, []).carriers if c["origin"] == "JFK"}
    assert now["ZZ"]["flights"] == 1 and now["ZZ"]["dep_delay_sum"] == 70

    db.flights_by_hour.delete_one({"_id": RM.hour_key("EWR", HOUR)})  # a bucket missing
    short = read_inputs(db, NOW, [])
    assert sorted(short.carriers, key=str) == sorted(day["carriers"], key=str)


def test_the_alerts_service_reads_the_buckets_again_when_the_stream_wrote_or_after_kept_s(
    day_db,
) -> None:
    """With a ``Kept`` (the alerts service's), a bucket another job rewrote is seen once the
    stream writes (its marks move) or once its buckets' whole read is ``full_read_s`` old, not in
    between; without one (``tarmac run alerts``), at once. The states are read every round."""
    from pipelines.serving.alerts.inputs import Kept, read_inputs

    _, db, flights = day_db

    def airlines(inputs) -> set[str]:
        return {c["carrier"] for c in inputs.carriers}

    kept = Kept(buckets=Buckets(full_read_s=3600))
    first = read_inputs(db, NOW, [], kept)
    assert "ZZ" not in airlines(first) and first.flights

    def rewrite(carrier: str, version: int) -> None:  # a job other than the stream
        late = {**flights[0], "flight_key": f"2013-03-20|{carrier}|9999|JFK|1405",
                "origin": "JFK", "carrier": carrier, "carrier_name": "Zulu Air",
                "sched_dep_utc": HOUR + timedelta(minutes=5), "status_rank": 1}  # fmt: skip
        bucket = [f for f in [*flights, late] if f["origin"] == "JFK"
                  and HOUR <= f["sched_dep_utc"] < HOUR + timedelta(hours=1)]  # fmt: skip
        (doc,) = S.board_docs(bucket, version=version)
        db.flights_by_hour.replace_one({"_id": doc["_id"]}, doc)

    rewrite("ZZ", 2)
    assert "ZZ" in airlines(read_inputs(db, NOW, []))  # no Kept: read now
    kept_round = read_inputs(db, NOW, [], kept)
    assert airlines(kept_round) == airlines(first) and kept_round.flights == first.flights
    db.pipeline_state.update_one({"_id": "flights_stream"}, {"$set": {"stale": True}})
    assert read_inputs(db, NOW, [], kept).states["flights_stream"]["stale"]  # every round

    db.pipeline_state.update_one({"_id": "flights_stream"}, {"$set": {"hot": batch(11)}})
    assert "ZZ" in airlines(read_inputs(db, NOW, [], kept))  # the stream wrote: read again

    rewrite("ZY", 3)
    assert "ZY" not in airlines(read_inputs(db, NOW, [], kept))
    kept.buckets.read_at -= 3600  # the buckets' whole read is full_read_s old
    assert "ZY" in airlines(read_inputs(db, NOW, [], kept))


def test_after_a_board_batch_the_alerts_service_reads_only_the_buckets_it_raised(live_db) -> None:
    """The alerts service's ``Kept`` holds the page follower's ``Buckets``: after a batch of
    the live board alone it looks up the hot buckets that batch raised, no other, and its
    rules see the new flight (a departure 70 min late) as a full read does."""
    from pipelines.serving.alerts.inputs import Kept, read_inputs

    _, db, _ = live_db
    kept = Kept()
    first = read_inputs(db, NOW, [], kept)
    assert kept.reads[RM.BOARD_HOT] == kept.reads[RM.BOARD] > 0  # a first read: every bucket
    flight, known = raise_a_hot_bucket(db)
    kept.reads.clear()
    after = read_inputs(db, NOW, [], kept)
    assert kept.reads == {RM.BOARD_HOT: 1}  # the one bucket it raised
    full = read_inputs(db, NOW, [])
    assert after.flights == full.flights and after.carriers == full.carriers
    assert flight["flight_key"] in {f["flight_key"] for f in after.flights}
    assert len(after.flights) == len(first.flights) + 1
