"""The alert rules (``pipelines/serving/alerts/rules.py``): pure, on hand-made read-model
documents; the store's plan (which alert opens, stays, closes) and the webhook's payload."""

from __future__ import annotations

import html
from datetime import UTC, datetime, timedelta

import pandas as pd

from pipelines.core.config import AlertRuleSettings, AlertSettings
from pipelines.dashboard import kpi_frames, queries
from pipelines.dashboard.health import freshness
from pipelines.dashboard.panels.attention import attention_items, candidates
from pipelines.dashboard.state import State
from pipelines.jobs.alerts import sources
from pipelines.serving.alerts import notify, rules, store
from pipelines.serving.alerts.levels import Inputs

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)  # the wall clock
CLOCK = datetime(2013, 1, 8, 15, 0, tzinfo=UTC)  # a Tuesday, 10:00 in New York
TH = AlertRuleSettings()


def stream_state(clock: datetime = CLOCK, age_s: float = 1.0) -> dict:
    at = (NOW - timedelta(seconds=age_s)).replace(tzinfo=None)
    batch = {"batch_id": 3, "at": at, "rows": 10, "lag": 5, "seconds": 0.3}
    return {"_id": "flights_stream", "newest_event_time": clock.replace(tzinfo=None),
            "updated_at": at, "hot": batch, "lake": batch}  # fmt: skip


def flight(key: str, origin: str, minutes_before: float, rank: int, **more) -> dict:
    sched = (CLOCK - timedelta(minutes=minutes_before)).replace(tzinfo=None)
    return {"flight_key": key, "origin": origin, "sched_dep_utc": sched, "status_rank": rank,
            "carrier": key[:2], **more}  # fmt: skip


def inputs(**kw) -> Inputs:
    return Inputs(now=NOW, states={"flights_stream": stream_state()}, **kw)


def keys(found: list[rules.Candidate]) -> list[tuple[str, str]]:
    return [(c.key, c.severity) for c in found]


def test_flights_past_their_time_and_not_departed_per_airport() -> None:
    found = rules.not_departed(inputs(flights=[
        flight("UA1", "EWR", 20, 1), flight("UA2", "EWR", 50, 1), flight("B61", "JFK", 30, 1),
        flight("B62", "JFK", 10, 1),  # 10 min: not yet
        flight("AA1", "LGA", 90, 2, dep_delay=90), flight("AA2", "LGA", 90, 4),  # gone, cancelled
    ]), TH)  # fmt: skip
    assert keys(found) == [("not_departed:EWR", "red"), ("not_departed:JFK", "amber")]
    assert found[0].facts == {"origin": "EWR", "flights": 2, "max_late_min": 50,
                              "flight_keys": ["UA1", "UA2"]}  # fmt: skip
    assert found[1].message == (
        "JFK: 1 flight(s) past departure time and not departed yet (up to 30 min)"
    )


def test_departures_of_the_last_hour_over_60_min_late() -> None:
    found = rules.late_departures(inputs(flights=[
        flight("UA1", "EWR", 30, 2, dep_delay=61), flight("UA2", "EWR", 50, 3, dep_delay=75),
        flight("UA3", "EWR", 30, 2, dep_delay=60),  # not over 60
        flight("UA4", "EWR", 90, 2, dep_delay=200),  # scheduled before the last hour
        flight("UA5", "EWR", -20, 1),  # later: not scheduled yet
    ]), TH)  # fmt: skip
    assert keys(found) == [("late_departures:EWR", "red")]
    assert found[0].facts["flights"] == 2 and found[0].facts["max_delay_min"] == 75


def test_delay_above_the_usual_for_the_weekday_and_hour() -> None:
    # 10:00 and 09:00 New York on a Tuesday (weekday 2): usual 5 min and 7 min
    profile = [
        {"origin": "EWR", "weekday": 2, "local_hour": 10, "dep_delay_sum": 500.0,
         "dep_delay_n": 100.0},
        {"origin": "EWR", "weekday": 2, "local_hour": 9, "dep_delay_sum": 700.0,
         "dep_delay_n": 100.0},
    ]  # fmt: skip
    days = [{"date": f"2013-01-0{d}", "weekday": 2} for d in (1, 8)] + [{"weekday": 2}]
    board = [flight(f"UA{i}", "EWR", 0 if i < 3 else 40, 2, dep_delay=25) for i in range(5)]
    found = rules.above_usual(inputs(flights=board, weekday_hour=profile, days=days), TH)
    # 3 flights at 10:00 (usual 5), 2 at 09:00 (usual 7): usual 5.8, delay 25
    assert keys(found) == [("above_usual:EWR", "amber")]
    assert found[0].facts == {"origin": "EWR", "avg_delay_min": 25.0, "usual_delay_min": 5.8,
                              "departures": 5}  # fmt: skip
    assert "above the usual 6 min for a Tuesday" in found[0].message
    few_days = inputs(flights=board, weekday_hour=profile, days=days[:2])
    assert rules.above_usual(few_days, TH) == []  # 2 Tuesdays loaded: no usual yet
    assert rules.above_usual(inputs(flights=board[:4], weekday_hour=profile, days=days), TH) == []
    calm = [flight(f"UA{i}", "EWR", 0, 2, dep_delay=14) for i in range(5)]
    assert rules.above_usual(inputs(flights=calm, weekday_hour=profile, days=days), TH) == []


def test_a_slipping_airline_over_every_airport_of_the_day() -> None:
    rows = [
        {"carrier": "UA", "carrier_name": "United", "origin": "EWR", "departed": 8,
         "on_time": 2, "dep_delay_sum": 280.0, "dep_delay_n": 8},
        {"carrier": "UA", "carrier_name": "United", "origin": "LGA", "departed": 4,
         "on_time": 1, "dep_delay_sum": 140.0, "dep_delay_n": 4},
        {"carrier": "DL", "carrier_name": "Delta", "origin": "JFK", "departed": 9,
         "on_time": 0, "dep_delay_sum": 900.0, "dep_delay_n": 9},  # too few departures
    ]  # fmt: skip
    found = rules.slipping_airlines(inputs(carriers=rows), TH)
    assert keys(found) == [("slipping_airline:UA", "amber")]
    assert found[0].facts == {"carrier": "UA", "avg_delay_min": 35.0, "on_time_pct": 25.0,
                              "departed": 12}  # fmt: skip


def test_delay_risk_fires_only_where_a_model_scored_flights() -> None:
    board = [flight("UA1", "EWR", -30, 1), flight("UA2", "EWR", -10, 1)]
    assert rules.delay_risk(inputs(flights=board), TH) == []
    board += [flight("UA3", "EWR", -20, 1, delay_risk=0.75),
              flight("UA4", "JFK", -50, 1, delay_risk=0.95),
              flight("UA5", "JFK", -90, 1, delay_risk=0.99),  # beyond the next hour
              flight("UA6", "LGA", -5, 2, delay_risk=0.99)]  # departed  # fmt: skip
    found = rules.delay_risk(inputs(flights=board), TH)
    assert keys(found) == [("delay_risk:EWR", "amber"), ("delay_risk:JFK", "red")]


def test_failed_job_and_failures_of_the_last_day() -> None:
    start = NOW.replace(tzinfo=None) - timedelta(hours=1)
    health = {
        "weather_hourly": {"last": {"run_id": "r2", "status": "failed", "start": start,
                                    "error": "broker did not answer"},
                           "failures": [{"run_id": "r2", "start": start}]},
        "reference_daily": {"last": {"run_id": "r9", "status": "success", "start": start},
                            "failures": [{"run_id": "r8", "start": start - timedelta(hours=2)}]},
        "flights_stream": {"last": {"run_id": "r5", "status": "success", "start": start},
                           "failures": [{"start": start - timedelta(hours=30)}]},
    }  # fmt: skip
    found = rules.failed_jobs(inputs(health=health))
    assert keys(found) == [("failed_job:weather_hourly", "red"), ("failed_job:reference_daily",
                                                                   "amber")]  # fmt: skip
    assert found[0].message == "weather_hourly: last run failed — broker did not answer"
    assert "`tarmac run weather_hourly`" in found[0].action


def test_stale_sources_use_the_page_s_freshness() -> None:
    old = (NOW - timedelta(hours=4)).replace(tzinfo=None)
    newest = (CLOCK - timedelta(hours=7)).replace(tzinfo=None)
    states = {"flights_stream": stream_state(),
              "weather_hourly": {"newest_event_time": newest, "updated_at": old}}  # fmt: skip
    found = rules.stale_sources(Inputs(now=NOW, states=states), sources())
    assert keys(found) == [("stale_source:weather_hourly", "red"),
                           ("stale_source:reference_daily", "red")][:1]  # fmt: skip
    assert found[0].message == (
        "weather_hourly is stale: 7 h behind the replay clock, last updated 4 h ago"
    )
    # the page's pills say the same
    pills = {r["source"]: r["level"] for r in freshness(states, CLOCK, NOW)}
    assert pills["weather_hourly"] == "red" and pills["reference_daily"] == "missing"


def test_the_stream_behind_and_everything_red_first() -> None:
    state = stream_state()
    state["lake"] = {**state["lake"], "at": (NOW - timedelta(minutes=6)).replace(tzinfo=None),
                     "lag": 900}  # fmt: skip
    board = [flight("UA1", "EWR", 20, 1)]
    found = rules.evaluate(Inputs(now=NOW, states={"flights_stream": state}, flights=board),
                           TH, {})  # fmt: skip
    assert keys(found) == [("stream_behind:lake", "red"), ("not_departed:EWR", "amber")]
    assert found[0].message == (
        "flights_stream lake path is stale: last batch 6 min ago, 900 records behind Kafka"
    )


def test_the_page_lists_the_rules_candidates_in_its_filters() -> None:
    board = pd.DataFrame([flight("UA1", "EWR", 20, 1), flight("B61", "JFK", 50, 1)])
    board["sched_dep_utc"] = pd.to_datetime(board["sched_dep_utc"], utc=True)
    board["dep_delay"] = float("nan")
    snap = queries.Snapshot(read_at=NOW, clock=CLOCK, states={"flights_stream": stream_state()},
                      kpis=kpi_frames.Kpis.empty(), weather_now=pd.DataFrame(), board=board,
                      jobs={}, rejects=pd.DataFrame(), rejects_total=0, airlines={})  # fmt: skip
    state = State(snap=snap)
    assert keys(candidates(state, NOW)) == [("not_departed:JFK", "red"),
                                            ("not_departed:EWR", "amber")]  # fmt: skip
    # what the job finds in the same documents (the board's flights, as read)
    job = rules.evaluate(inputs(flights=board.to_dict("records")), TH, {})
    assert keys(job) == keys(candidates(state, NOW))
    only_ewr = candidates(state, NOW, kpi_frames.Scope(airports=("EWR",)))
    assert keys(only_ewr) == [("not_departed:EWR", "amber")]
    items = attention_items(state, NOW, kpi_frames.Scope(airports=("EWR",)))
    assert items == [
        '<li style="border-left-color:#b26a00" data-alert="not_departed:EWR" title="What to '
        f'do: {html.escape(only_ewr[0].action)}">EWR: 1 flight(s) past departure time and not '
        "departed yet (up to 20 min)</li>"
    ]


def test_plan_opens_keeps_and_closes_by_key() -> None:
    a = rules.Candidate("not_departed", "EWR", "red", "m", "a")
    b = rules.Candidate("slipping_airline", "UA", "amber", "m", "a")
    index = store.Index(open={"not_departed:EWR": "not_departed:EWR#2",
                              "failed_job:smoke": "failed_job:smoke#1"},
                        seq={"not_departed:EWR": 2, "slipping_airline:UA": 4})  # fmt: skip
    todo = store.plan(index, [a, b])
    assert todo.kept == [(a, "not_departed:EWR#2")]
    assert todo.opened == [(b, "slipping_airline:UA#5")]
    assert todo.closed == ["failed_job:smoke#1"]
    again = store.Index.of(index.doc(NOW))
    assert again.open == index.open and again.seq == index.seq


def test_the_webhook_payload_carries_the_idempotency_key() -> None:
    opened = datetime(2026, 1, 5, 12, 0)
    doc = {"_id": "not_departed:EWR#1", "key": "not_departed:EWR", "rule": "not_departed",
           "subject": "EWR", "severity": "red", "message": "m", "action": "a",
           "facts": {"flights": 2}, "opened_at": opened, "last_seen": opened,
           "closed_at": None}  # fmt: skip
    body = notify.payload(doc, "open", "ci")
    assert body == {
        "idempotency_key": "not_departed:EWR#1:open", "event": "open", "env": "ci",
        "alert": {"id": "not_departed:EWR#1", "key": "not_departed:EWR", "rule": "not_departed",
                  "subject": "EWR", "severity": "red", "message": "m", "action": "a",
                  "facts": {"flights": 2}, "opened_at": "2026-01-05T12:00:00Z",
                  "last_seen": "2026-01-05T12:00:00Z", "closed_at": None},
    }  # fmt: skip
    msg = notify.message(doc, "close", "ci", AlertSettings().email)
    assert msg["X-Tarmac-Idempotency-Key"] == "not_departed:EWR#1:close"
    assert msg["Subject"] == "[Tarmac ci] CLOSED red: m"
