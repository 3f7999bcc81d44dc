"""What the alert rules and the page's pills share: levels (amber / red) of an age and of the
stream's paths, the documents the rules read (:class:`Inputs`), and the values they hold (BSON
dates, pandas' NaN and Timestamps). Pure, no I/O."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from pipelines.serving.readmodels import utc

STREAM = "flights_stream"  # the pipeline_state document of the stream
PATHS = ("hot", "lake")
PATH_NAMES = {"hot": "live board", "lake": "lake path"}
# a source's newest data time in its ``pipeline_state`` document: the one key every job keeps
# there (``serving.sinks.set_state``, a ``$max``)
NEWEST_KEY = "newest_event_time"


class Level(Protocol):
    """Ages from which a source is amber, then red (:class:`Staleness` is one)."""

    def level(self, age: timedelta | None) -> str: ...


class SourceLimits(Protocol):
    """A source's freshness limits (``dashboard.health.FreshnessRule`` is one)."""

    @property
    def wall(self) -> Level: ...

    @property
    def replay(self) -> Level | None: ...


@dataclass(frozen=True)
class Staleness:
    """Ages from which a source (or a path of the stream) is amber, then red: the registry's
    ``stale_wall`` / ``stale_replay`` of each job, the stream's :data:`STREAM_LIMITS`."""

    amber: timedelta
    red: timedelta

    def level(self, age: timedelta | None) -> str:
        if age is None:
            return "missing"
        return "red" if age >= self.red else "amber" if age >= self.amber else "ok"


@dataclass(frozen=True)
class StreamLimits:
    """Levels of one path of the stream: the age of its last batch (wall clock) while Kafka
    records wait for it (``lag`` > 0 when it ran; none waiting, an old batch is an idle
    stream, not a late one), and how many wait (amber / red from)."""

    age: Staleness
    lag_amber: int
    lag_red: int

    def level(self, age: timedelta | None, lag: int | None) -> str:
        waiting = lag is None or lag > 0
        by_age = self.age.level(age) if waiting else "ok"
        by_lag = (
            "ok"
            if lag is None or lag < self.lag_amber
            else "amber"
            if lag < self.lag_red
            else "red"
        )
        return worst([by_age, by_lag])


# hot (the live board): a micro-batch every ~0.5 s; lake: every
# ~30 s, a batch taking up to ~20 s. Lags in records behind the topic's end offsets (at 20
# events/s the hot path runs ~40 behind).
STREAM_LIMITS: dict[str, StreamLimits] = {
    "hot": StreamLimits(Staleness(timedelta(seconds=10), timedelta(seconds=60)), 2_000, 20_000),
    "lake": StreamLimits(Staleness(timedelta(seconds=90), timedelta(minutes=5)), 10_000, 100_000),
}
_LEVEL_ORDER = {"ok": 0, "amber": 1, "red": 2, "missing": 3}


def worst(levels: Iterable[str]) -> str:
    levels = list(levels)
    return max(levels, key=lambda lv: _LEVEL_ORDER.get(lv, 0)) if levels else "ok"


# ------------------------------------------------------------------------------ values


def number(value: Any) -> float | None:
    """A finite number, or None (absent, NaN, not a number)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        try:
            value = float(value)  # numpy scalars
        except (TypeError, ValueError):
            return None
    value = float(value)
    return value if math.isfinite(value) else None


def ago(age: timedelta | None) -> str:
    if age is None:
        return "—"
    s = int(age.total_seconds())
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    if s < 172_800:
        return f"{s // 3600} h"
    return f"{s // 86400} d"


# ----------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Inputs:
    """The read-model documents the rules read (docs/data-model.md), as the page holds them.

    ``states``: ``pipeline_state`` by ``_id``; ``health``: ``pipeline_health`` by job;
    ``flights``: the flights of the resolved ``flights_by_hour`` buckets around the replay
    clock (each with its bucket's ``origin``); ``weekday_hour`` and ``days``: those arrays of
    ``kpi_profile``; ``carriers``: ``kpi_daily.carriers`` of the clock's local day; ``now``: the
    wall clock (UTC). The replay clock is ``pipeline_state.flights_stream.newest_event_time``."""

    now: datetime
    states: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    health: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    flights: Sequence[Mapping[str, Any]] = ()
    weekday_hour: Sequence[Mapping[str, Any]] = ()
    days: Sequence[Mapping[str, Any]] = ()
    carriers: Sequence[Mapping[str, Any]] = ()

    @property
    def clock(self) -> datetime | None:
        return utc((self.states.get(STREAM) or {}).get("newest_event_time"))


def source_freshness(
    state: Mapping[str, Any] | None, limits: SourceLimits, clock: datetime | None, now: datetime
) -> dict[str, Any]:
    """A source's newest data time, ``updated_at``, replay and wall ages and level (ok /
    amber / red / missing): the header's pill and the ``stale_source`` rule."""
    state = state or {}
    newest = utc(state.get(NEWEST_KEY))
    updated = utc(state.get("updated_at"))
    wall_age = now - updated if updated else None
    replay_age = clock - newest if (clock and newest) else None
    levels = [limits.wall.level(wall_age)]
    if limits.replay is not None and replay_age is not None:  # unknown newest: wall only
        levels.append(limits.replay.level(replay_age))
    return {
        "newest": newest,
        "updated_at": updated,
        "replay_age": replay_age if limits.replay is not None else None,
        "wall_age": wall_age,
        "level": "missing" if not state else worst(levels),
    }


def stream_paths(inputs: Inputs, limits: Mapping[str, StreamLimits] = STREAM_LIMITS) -> list[dict]:
    """One dict per query of the stream (``hot``, ``lake`` of
    ``pipeline_state.flights_stream``): its last batch, age, lag, level. Empty for a stream
    that notes none of them."""
    state = inputs.states.get(STREAM) or {}
    if not any(isinstance(state.get(p), Mapping) for p in PATHS):
        return []
    rows = []
    for path in PATHS:
        batch = state.get(path) if isinstance(state.get(path), Mapping) else {}
        at = utc(batch.get("at"))
        age = inputs.now - at if at else None
        lag = batch.get("lag")
        lag = int(lag) if isinstance(lag, int | float) else None
        rows.append({
            "path": path, "name": PATH_NAMES[path], "batch_id": batch.get("batch_id"),
            "at": at, "age": age, "rows": batch.get("rows"), "lag": lag,
            "seconds": batch.get("seconds"),
            "level": limits[path].level(age, lag) if batch else "missing",
        })  # fmt: skip
    return rows
