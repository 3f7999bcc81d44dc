"""Replay against the real broker: exact event counts per type for a busy morning, unique ids,
kill-and-resume without loss, dead-letter routing, weather and reference files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from kafka import KafkaConsumer
from kafka.serializer import JsonSerializer

from pipelines.core.config import Settings
from pipelines.sources import catch_up, nycflights13, replay
from tests.conftest import write_parameters

START = datetime(2013, 1, 1, 10, tzinfo=UTC)
END = datetime(2013, 1, 1, 16, tzinfo=UTC)
BOARD_LEAD = timedelta(hours=2)
ZONE_FALLBACK = {
    "BQN": "America/Puerto_Rico",
    "PSE": "America/Puerto_Rico",
    "SJU": "America/Puerto_Rico",
    "STT": "America/St_Thomas",
}


# --- the expectation, computed from the raw CSV without pipeline code -----------------------
def _expected_counts(start: datetime, end: datetime) -> Counter:
    f = pd.read_csv(nycflights13.flights_csv(), na_values=["NA"])
    ap = pd.read_csv(nycflights13.airports_csv(), na_values=["NA"]).set_index("faa")["tzone"]
    day = pd.to_datetime(f[["year", "month", "day"]])
    sched_local = day + pd.to_timedelta(f["hour"] * 60 + f["minute"], unit="m")
    sched = sched_local.dt.tz_localize("America/New_York", ambiguous=True).dt.tz_convert("UTC")
    dep = sched + pd.to_timedelta(f["dep_delay"], unit="m")
    # arrival: local clock in the destination zone, on the departure's local day, rolled
    dep_local = dep.dt.tz_convert("America/New_York").dt.tz_localize(None).dt.normalize()
    arr_h, arr_m = f["arr_time"] // 100, f["arr_time"] % 100
    arr_naive = dep_local + pd.to_timedelta(arr_h * 60 + arr_m, unit="m")
    zone = f["dest"].map(ap).fillna(f["dest"].map(ZONE_FALLBACK))
    arr = pd.Series(pd.NaT, index=f.index, dtype="datetime64[ns, UTC]")
    for tz, idx in f.groupby(zone).groups.items():
        arr.loc[idx] = (
            arr_naive.loc[idx]
            .dt.tz_localize(tz, ambiguous=True, nonexistent="shift_forward")
            .dt.tz_convert("UTC")
        )
    arr = arr.where(arr >= dep, arr + pd.Timedelta(days=1))

    def inside(ts: pd.Series) -> int:
        return int(((ts >= start) & (ts < end)).sum())

    return Counter(
        scheduled=inside(sched - BOARD_LEAD),
        cancelled=inside(sched[f["dep_time"].isna()]),
        departed=inside(dep[f["dep_time"].notna()]),
        arrived=inside(arr[f["arr_time"].notna()]),
    )


def _consume(settings: Settings, topic_key: str, idle_ms: int = 4000) -> list[dict]:
    consumer = KafkaConsumer(
        settings.kafka.topic(topic_key).name,
        bootstrap_servers=settings.kafka.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=f"test-{uuid.uuid4().hex[:8]}",
        consumer_timeout_ms=idle_ms,
        value_deserializer=JsonSerializer(),
    )
    try:
        return [{**m.value, "_partition": m.partition} for m in consumer]
    finally:
        consumer.close()


# --- unit: clock and options ------------------------------------------------------------------
def test_clock_paces_replayed_time_and_catch_up_never_sleeps(monkeypatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(replay.time, "sleep", slept.append)
    monkeypatch.setattr(replay.time, "monotonic", lambda: 100.0)
    clock = replay.Clock(START, speed=3600, catch_up=False, max_rate=None)
    clock.wait_until(START + timedelta(hours=2))
    assert slept == [pytest.approx(2.0)]
    fast = replay.Clock(START, speed=3600, catch_up=True, max_rate=None)
    fast.wait_until(START + timedelta(days=30))
    assert slept == [pytest.approx(2.0)]


def test_max_rate_spaces_events_even_in_catch_up(monkeypatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(replay.time, "sleep", slept.append)
    monkeypatch.setattr(replay.time, "monotonic", lambda: 0.0)
    clock = replay.Clock(START, speed=1, catch_up=True, max_rate=10)
    for _ in range(3):
        clock.wait_until(START)
    assert slept == [pytest.approx(0.1), pytest.approx(0.2)]


def test_bad_options_are_refused_before_anything_runs(settings) -> None:
    from pipelines.core.exceptions import ConfigError

    with pytest.raises(ConfigError, match="speed"):
        replay.make(settings, "flights", speed=-1)
    with pytest.raises(ConfigError, match="must be after start"):
        replay.make(settings, "flights", start="2013-02-01T00:00:00Z", end="2013-01-01T00:00:00Z")
    with pytest.raises(ConfigError, match="unknown replay source"):
        replay.make(settings, "tweets")


def test_reference_days_are_midnights_inside_the_window() -> None:
    days = list(replay.reference_days(START, START + timedelta(days=2)))
    assert days == [datetime(2013, 1, 2, tzinfo=UTC), datetime(2013, 1, 3, tzinfo=UTC)]


# --- integration: the real broker ---------------------------------------------------------
@pytest.mark.integration
def test_busy_morning_produces_exactly_the_expected_events(iso: Settings) -> None:
    stats = replay.make(iso, "flights", progress=False, start=START, end=END, catch_up=True).run()
    got = _consume(iso, "flights")
    expected = _expected_counts(START, END)
    assert Counter(m["event_type"] for m in got) == expected
    assert stats.sent["flights"] == sum(expected.values()) == len(got)
    assert len({m["event_id"] for m in got}) == len(got)
    times = [m["event_time"] for m in got]
    assert all(START <= datetime.fromisoformat(t.replace("Z", "+00:00")) < END for t in times)
    first = got[0]
    for key in ("event_id", "flight_key", "event_time", "produced_at", "schema_version"):
        assert first[key] not in (None, "")
    assert _consume(iso, "flights_dlq", idle_ms=1500) == []


@pytest.mark.integration
def test_two_workers_send_the_same_events_once(iso: Settings) -> None:
    run = replay.make(iso, "flights", progress=False, start=START, end=END, catch_up=True)
    stats = catch_up.run_parallel(run, workers=2)
    got = _consume(iso, "flights")
    assert Counter(m["event_type"] for m in got) == _expected_counts(START, END)
    assert len({m["event_id"] for m in got}) == len(got) == stats.sent["flights"]
    by_flight: dict[str, set[int]] = {}
    for m in got:  # every flight's events in one partition, in event-time order
        by_flight.setdefault(m["flight_key"], set()).add(m["_partition"])
    assert all(len(parts) == 1 for parts in by_flight.values())


@pytest.mark.integration
def test_a_load_replays_files_and_flights_side_by_side_as_one_ordered_replay(
    iso: Settings, tmp_path: Path
) -> None:
    """``run_window`` (what ``pipeline.load_window`` replays with): the files by one process,
    the flights by two producers beside it. The same events once each, byte-identical files to
    one ordered replay's, and positions a later replay resumes after (it sends nothing)."""
    end = START + timedelta(days=1)  # a midnight inside: one reference snapshot
    assert iso.replay.workers == 2
    stats = catch_up.run_window(iso, progress=False, start=START, end=end)
    got = _consume(iso, "flights")
    expected = _expected_counts(START, end)
    assert Counter(m["event_type"] for m in got) == expected
    assert len({m["event_id"] for m in got}) == len(got) == stats.sent["flights"]
    assert (stats.sent["weather"], stats.sent["reference"]) == (24, 1)

    ordered = iso.model_copy(update={"paths": iso.paths.model_copy(
        update={"data": tmp_path / "ordered"})})  # fmt: skip
    replay.make(ordered, "weather", progress=False, start=START, end=end, catch_up=True).run()
    replay.make(ordered, "reference", progress=False, start=START, end=end, catch_up=True).run()
    landing = Path(iso.paths.data) / "landing"

    def landed(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}

    assert landed(landing) == landed(tmp_path / "ordered" / "landing")

    newest = max((m["event_time"], m["event_id"]) for m in got)  # ISO times sort as times
    saved = json.loads((Path(iso.paths.data) / "replay" / "position.json").read_text())
    assert saved["flights"]["id"] == newest[1]
    assert {"weather", "reference"} <= set(saved)
    again = replay.make(iso, "all", progress=False, start=START, end=end, catch_up=True).run()
    assert again.sent == {"flights": 0, "weather": 0, "reference": 0}
    assert again.skipped_before_position == len(got)


@pytest.mark.integration
def test_replay_killed_half_way_resumes_without_missing_events(iso: Settings, tmp_path) -> None:
    params = tmp_path / "params"
    write_parameters(iso, params)
    env = {**os.environ, "TARMAC_PARAMETERS_DIR": str(params)}
    cmd = [
        sys.executable,
        "-m",
        "pipelines",
        "replay",
        "flights",
        "--env",
        iso.env,
        "--start",
        START.isoformat(),
        "--end",
        END.isoformat(),
        "--no-progress",
        "--workers",
        "1",
    ]
    slow = subprocess.Popen(
        [*cmd, "--catch-up", "--max-rate", "150"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    position = Path(iso.paths.data) / "replay" / "position.json"
    deadline = time.monotonic() + 120
    while not position.exists() and time.monotonic() < deadline:  # a first checkpoint
        time.sleep(0.2)
    time.sleep(1.0)
    slow.send_signal(signal.SIGKILL)
    slow.wait()
    saved = json.loads(position.read_text())["flights"]["time"]
    assert START.isoformat()[:10] <= saved < END.strftime("%Y-%m-%dT%H:%M:%SZ")

    done = subprocess.run([*cmd, "--catch-up"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["skipped_before_position"] > 0  # it resumed, not restarted

    got = _consume(iso, "flights")
    expected = _expected_counts(START, END)
    assert len({m["event_id"] for m in got}) == sum(expected.values())  # none missing
    by_id = {m["event_id"]: m["event_type"] for m in got}
    assert Counter(by_id.values()) == expected


@pytest.mark.integration
def test_invalid_event_goes_to_the_dead_letter_topic_with_reasons(iso: Settings) -> None:
    from pipelines.clients import kafka_io

    kafka_io.ensure_topics(iso, ["flights", "flights_dlq"])
    run = replay.make(iso, "flights", progress=False)
    stats = replay.ReplayStats()
    producer = run.producer()
    from pipelines.sources import events

    ev = replay.flight_events(START, START + timedelta(minutes=10), BOARD_LEAD)
    bad = next(events.iter_messages(ev.head(1)))
    bad["event_type"] = "teleported"
    run._send(producer, bad, stats)  # noqa: SLF001
    producer.flush()
    producer.close()
    assert stats.dead_lettered == 1 and stats.sent["flights"] == 0
    dlq = _consume(iso, "flights_dlq")
    assert len(dlq) == 1
    assert dlq[0]["payload"]["event_type"] == "teleported"
    assert any("event_type" in r for r in dlq[0]["reasons"])
    assert _consume(iso, "flights", idle_ms=1500) == []


def test_weather_files_one_per_hour_atomic_and_raw(settings, tmp_path, unique) -> None:
    from tests.conftest import isolate

    iso = isolate(settings, tmp_path, unique)
    stats = replay.make(iso, "weather", progress=False, start=START, end=END, catch_up=True).run()
    folder = tmp_path / "data" / "landing" / "weather"
    files = sorted(p.name for p in folder.iterdir())
    assert files == [f"weather_20130101T{h:02d}Z.csv" for h in range(10, 16)]
    assert stats.sent["weather"] == 6
    raw = pd.read_csv(nycflights13.weather_csv(), dtype=str, keep_default_na=False)
    for name in files:
        df = pd.read_csv(folder / name, dtype=str, keep_default_na=False)
        hour = datetime.strptime(name[8:19], "%Y%m%dT%H").replace(tzinfo=UTC)
        want = raw[raw["time_hour"] == hour.strftime("%Y-%m-%dT%H:%M:%SZ")]
        assert list(df.columns) == list(raw.columns)
        assert df.reset_index(drop=True).equals(want.reset_index(drop=True))


def test_reference_snapshots_per_replayed_day(settings, tmp_path, unique) -> None:
    from tests.conftest import isolate

    iso = isolate(settings, tmp_path, unique)
    replay.make(
        iso, "reference", progress=False, start=START, end=START + timedelta(days=2), catch_up=True
    ).run()
    root = tmp_path / "data" / "landing" / "reference"
    assert sorted(p.name for p in root.iterdir()) == ["2013-01-02", "2013-01-03"]
    for day in root.iterdir():
        assert sorted(p.name for p in day.iterdir()) == [
            "airlines.csv",
            "airports.csv",
            "planes.csv",
        ]
        assert (day / "planes.csv").read_bytes() == nycflights13.planes_csv().read_bytes()
