"""The latency bench's view of the events and of MongoDB (``bench/latency.py``).

A Kafka consumer thread learns every produced event (its ``produced_at`` and its record's
millisecond CreateTime); two poll threads read the documents of the pending events by ``_id``
and stamp, per event, the wall time each stage was first read:

1. ``board``: the resolved ``flights_by_hour`` bucket (``readmodels.resolve``: the hot path's
   ``flights_by_hour_hot`` bucket where its ``version`` is higher) shows the event's flight
   with ``last_event_time >= event_time``; the resolved ``version`` of that moment is kept
   (fast thread, ``--poll``);
2. ``hour``: the resolved ``kpi_hourly`` document of the bucket has ``version >=`` that board
   version (fast thread);
3. ``day`` (slow thread, ``--lake-poll``): the lake path's own fields of the bucket include the
   event (top-level ``flights`` with ``last_event_time >= event_time``, or top-level ``version``
   >= the version of 1); then the lake's own ``kpi_hourly`` fields of the bucket reach that
   lake version (the same refresh or a later one: that refresh's ``updated_at`` U); then
   ``kpi_daily[date].updated_at >= U`` (a refresh writes the day document with the
   ``updated_at`` of its hourly rows).

The poll cycles are the measurement's resolution (reported). Each thread also notes the
stream's replay clock (``pipeline_state.flights_stream.newest_event_time``), which the page's
board window follows.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from kafka import KafkaConsumer, TopicPartition

from pipelines.clients import mongo
from pipelines.core.config import Settings
from pipelines.core.domain import STATUS_RANK
from pipelines.serving import readmodels as RM

STAGES = ("board", "hour", "day")
READ_THREADS = 4  # lookups by _id in flight at once, as the page does
# the lake's buckets in part; a hot board bucket whole (its version counts every known field)
LAKE_BOARD_PROJECTION = {"flights.flight_key": 1, "flights.last_event_time": 1, "version": 1}
HOURLY_PROJECTION = {"version": 1, "updated_at": 1}


def utc(text: str) -> datetime:
    """An ISO-8601 'Z' time of an event as an aware UTC datetime."""
    return datetime.fromisoformat(text).astimezone(UTC)


@dataclass
class Tracked:
    """One produced event as the consumer saw it, and when each stage first showed it."""

    event_id: str
    event_type: str
    phase: str  # "warmup" or "measured"
    bucket: str  # the flights_by_hour / kpi_hourly _id
    date: str  # the local date: the kpi_daily _id
    flight_key: str
    label: str  # how the page's board names the flight: origin|flight_no|sched_local
    sched_dep: datetime
    event_time: datetime
    produced_at: float  # epoch seconds, floored to the second by the producer
    sent_at: float  # the record's Kafka CreateTime (epoch seconds, ms precision)
    consumed_at: float
    at: dict[str, float] = field(default_factory=dict)  # stage -> wall time first read
    board_version: int | None = None  # resolved version when first on the board
    lake_version: int | None = None  # lake's own version when it first included the event
    lake_hour_updated: datetime | None = None  # U: the refresh that served the bucket
    page_at: float | None = None  # wall time the page first showed it (page_watch)
    day_page_at: float | None = None  # the day's figures on the page next changed (page_watch)

    @property
    def rank(self) -> int:
        return STATUS_RANK[self.event_type]

    def latency(self, stage: str, since: str = "sent_at") -> float | None:
        """Seconds from the event's production to the first read of ``stage`` (or the page):
        from the moment the producer handed it to Kafka (``sent_at``, the record's timestamp to
        the millisecond), or from ``since="produced_at"`` (the message's field, floored to the
        second: up to 1 s more)."""
        on_page = {"page": self.page_at, "day_page": self.day_page_at}
        at = on_page[stage] if stage in on_page else self.at.get(stage)
        return None if at is None else at - getattr(self, since)


def page_label(msg: dict[str, Any]) -> str:
    """The board's row of a flight: origin, 'CARRIER FLIGHT', scheduled local HH:MM."""
    from pipelines.core.domain import NEW_YORK

    sched = utc(msg["sched_dep_utc"]).astimezone(NEW_YORK)
    return f"{msg['origin']}|{msg['carrier']} {msg['flight']}|{sched:%H:%M}"


@dataclass
class Tracker:
    """Every event consumed (:meth:`consume`) and the stages read (:meth:`poll_fast`,
    :meth:`poll_lake`), each in its own thread."""

    settings: Settings
    measured_from: datetime  # events at or after this event_time are measured
    poll_s: float
    lake_poll_s: float
    events: dict[str, Tracked] = field(default_factory=dict)
    cycles: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    reads: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    clocks: list[tuple[float, datetime]] = field(default_factory=list)  # (wall, replay clock)
    duplicates: int = 0
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)

    # -- reading the tracker --------------------------------------------------------------
    def of(self, phase: str) -> list[Tracked]:
        with self.lock:
            return [e for e in self.events.values() if e.phase == phase]

    def count(self, phase: str) -> dict[str, int]:
        """Events of ``phase`` consumed and, per stage, read."""
        mine = self.of(phase)
        return {"consumed": len(mine), **{s: sum(s in e.at for e in mine) for s in STAGES}}

    def clock_at(self, wall: float) -> datetime | None:
        """The replay clock last read at or before ``wall``."""
        with self.lock:
            i = bisect.bisect_right(self.clocks, wall, key=lambda c: c[0])
            return self.clocks[i - 1][1] if i else None

    # -- the consumer ---------------------------------------------------------------------
    def consume(self, consumer: KafkaConsumer) -> None:
        try:
            while not self.stop.is_set():
                batches = consumer.poll(timeout_ms=200)
                now = time.time()
                for records in batches.values():
                    for rec in records:
                        self._add(orjson.loads(rec.value), rec.timestamp / 1000, now)
        except Exception as exc:  # reported in the result, never swallowed
            self.errors.append(f"consumer: {exc!r}")
            raise
        finally:
            consumer.close()

    def _add(self, msg: dict[str, Any], sent_at: float, now: float) -> None:
        event_time = utc(msg["event_time"])
        sched = utc(msg["sched_dep_utc"])
        ev = Tracked(
            event_id=msg["event_id"],
            event_type=msg["event_type"],
            phase="measured" if event_time >= self.measured_from else "warmup",
            bucket=RM.hour_key(msg["origin"], sched.replace(minute=0, second=0, microsecond=0)),
            date=msg["date"],
            flight_key=msg["flight_key"],
            label=page_label(msg),
            sched_dep=sched,
            event_time=event_time,
            produced_at=utc(msg["produced_at"]).timestamp(),
            sent_at=sent_at,
            consumed_at=now,
        )
        with self.lock:
            if ev.event_id in self.events:
                self.duplicates += 1
                return
            self.events[ev.event_id] = ev

    # -- the poll threads -----------------------------------------------------------------
    def _loop(self, name: str, every: float, cycle: Callable[[Any, ThreadPoolExecutor], None]):
        db = mongo.database(self.settings)
        last = None
        try:
            with ThreadPoolExecutor(READ_THREADS) as pool:
                while not self.stop.is_set():
                    start = time.monotonic()
                    if last is not None:
                        self.cycles[name].append(start - last)
                    last = start
                    self._read_clock(db)
                    cycle(db, pool)
                    self.stop.wait(max(0.0, every - (time.monotonic() - start)))
        except Exception as exc:
            self.errors.append(f"{name} poller: {exc!r}")
            raise

    def poll_fast(self) -> None:
        """Every ``poll_s``: stages ``board`` and ``hour``."""
        self._loop("fast", self.poll_s, self._fast_cycle)

    def poll_lake(self) -> None:
        """Every ``lake_poll_s``: stage ``day`` (the lake path's own fields)."""
        self._loop("lake", self.lake_poll_s, self._lake_cycle)

    def _read_clock(self, db: Any) -> None:
        state = db[RM.STATE].find_one({"_id": "flights_stream"}, {"newest_event_time": 1})
        self.reads[RM.STATE] += 1
        if state and state.get("newest_event_time") is not None:
            with self.lock:
                self.clocks.append((time.time(), state["newest_event_time"].astimezone(UTC)))

    def _pending(self, test: Callable[[Tracked], bool]) -> dict[str, list[Tracked]]:
        out: dict[str, list[Tracked]] = defaultdict(list)
        with self.lock:
            for ev in self.events.values():
                if test(ev):
                    out[ev.bucket].append(ev)
        return out

    def _read(self, pool: ThreadPoolExecutor, collection: Any, ids: list[str],
              projection: dict | None) -> list[tuple[str, dict | None, float]]:  # fmt: skip
        """(id, document or None, wall time read) of each of ``ids``, by ``_id``."""

        def one(key: str) -> tuple[str, dict | None, float]:
            doc = collection.find_one({"_id": key}, projection)
            return key, doc, time.time()

        self.reads[collection.name] += len(ids)
        return list(pool.map(one, ids))

    def _resolved(self, pool: ThreadPoolExecutor, db: Any, collection: str, ids: list[str],
                  projection: dict[str, int]) -> list[tuple[str, dict | None, float]]:  # fmt: skip
        """:meth:`_read` of the lake path's and the hot path's buckets, each pair resolved as
        the page resolves it (the hot board bucket in ``collection``'s shape:
        ``readmodels.hot_view``; the wall time of the later read)."""
        hot = {k: (d and RM.hot_view(collection, d), t)
               for k, d, t in self._read(pool, db[RM.HOT_OF[collection]], ids, None)}  # fmt: skip
        return [(k, RM.resolve(d, hot[k][0]), max(t, hot[k][1]))
                for k, d, t in self._read(pool, db[collection], ids, projection)]  # fmt: skip

    def _fast_cycle(self, db: Any, pool: ThreadPoolExecutor) -> None:
        board = self._pending(lambda e: "board" not in e.at)
        for bucket, shown, seen in self._resolved(pool, db, RM.BOARD, list(board),
                                                  LAKE_BOARD_PROJECTION):  # fmt: skip
            if shown is None:
                continue
            newest = {f["flight_key"]: f.get("last_event_time") for f in shown.get("flights", [])}
            with self.lock:
                for ev in board[bucket]:
                    t = newest.get(ev.flight_key)
                    if t is not None and t >= ev.event_time:
                        ev.at["board"] = seen
                        ev.board_version = shown.get("version")
        hour = self._pending(lambda e: "board" in e.at and "hour" not in e.at)
        for bucket, doc, seen in self._resolved(pool, db, RM.KPI_HOURLY, list(hour),
                                                HOURLY_PROJECTION):  # fmt: skip
            version = doc.get("version") if doc is not None else None
            if version is None:
                continue
            with self.lock:
                for ev in hour[bucket]:
                    if ev.board_version is not None and version >= ev.board_version:
                        ev.at["hour"] = seen

    def _lake_cycle(self, db: Any, pool: ThreadPoolExecutor) -> None:
        lake = self._pending(lambda e: "board" in e.at and e.lake_version is None)
        for bucket, doc, _ in self._read(pool, db[RM.BOARD], list(lake), LAKE_BOARD_PROJECTION):
            if doc is None or doc.get("version") is None:
                continue
            newest = {f["flight_key"]: f.get("last_event_time") for f in doc.get("flights", [])}
            with self.lock:
                for ev in lake[bucket]:
                    t = newest.get(ev.flight_key)
                    if (t is not None and t >= ev.event_time) or (
                        ev.board_version is not None and doc["version"] >= ev.board_version
                    ):
                        ev.lake_version = doc["version"]
        hour = self._pending(lambda e: e.lake_version is not None and e.lake_hour_updated is None)
        for bucket, doc, _ in self._read(pool, db[RM.KPI_HOURLY], list(hour), HOURLY_PROJECTION):
            if doc is None or doc.get("version") is None or doc.get("updated_at") is None:
                continue
            with self.lock:
                for ev in hour[bucket]:
                    if doc["version"] >= ev.lake_version:
                        ev.lake_hour_updated = doc["updated_at"]
        waiting: dict[str, list[Tracked]] = defaultdict(list)
        with self.lock:
            for ev in self.events.values():
                if ev.lake_hour_updated is not None and "day" not in ev.at:
                    waiting[ev.date].append(ev)
        for day, doc, seen in self._read(pool, db[RM.KPI_DAILY], list(waiting),
                                         {"updated_at": 1}):  # fmt: skip
            if doc is None or doc.get("updated_at") is None:
                continue
            with self.lock:
                for ev in waiting[day]:
                    if doc["updated_at"] >= ev.lake_hour_updated:
                        ev.at["day"] = seen


def consumer(settings: Settings) -> KafkaConsumer:
    """A group-less consumer of every partition of the flights topic, from the beginning."""
    topic = settings.kafka.topic("flights").name
    out = KafkaConsumer(
        bootstrap_servers=settings.kafka.bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id="tarmac-bench-latency",
    )
    deadline = time.monotonic() + 30
    while not (partitions := out.partitions_for_topic(topic)):
        if time.monotonic() > deadline:
            out.close()
            raise RuntimeError(f"topic {topic} has no partitions after 30 s")
        time.sleep(0.2)
    out.assign([TopicPartition(topic, p) for p in sorted(partitions)])
    out.seek_to_beginning()
    return out
