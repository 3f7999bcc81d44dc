"""What the page holds between reads: the last snapshot read and what the panels computed from
it that other panels use (the "Needs attention" list reads the live board, the KPI summary,
the airline table, the freshness, the stream's health and the job health), what the page
follows of the stream (:class:`Live`), and the dates the snapshot spans.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pandas as pd

from . import analytics, queries


@dataclass
class Live:
    """What the page shows of the stream, for the follower's thread (set on the kernel's loop,
    only read in the thread): the marks of the last batch drawn, the selected dates the stream
    still changes, the stream health levels drawn, what the live dates' rows held when the
    airlines and weather were last drawn (``Kpis.live_key``)."""

    seen: tuple | None = None
    dates: list[str] = field(default_factory=list)
    levels: tuple[str, ...] = ()
    day_key: tuple[int, ...] = ()
    day_drawn_at: float = float("-inf")  # time.perf_counter() of that draw


@dataclass
class State:
    snap: queries.Snapshot | None = None  # the last successful read
    online: bool = False
    board: pd.DataFrame | None = None  # live board of the current scope
    carriers: pd.DataFrame | None = None
    kpis: analytics.KpiSummary | None = None
    fresh: list[dict[str, Any]] | None = None
    stream: list[dict[str, Any]] | None = None  # health of the stream's hot and lake paths
    health: list[dict[str, Any]] | None = None
    loading: bool = False
    live: Live = field(default_factory=Live)


def clock_day(snap: queries.Snapshot | None) -> date | None:
    """The replay clock's local day, None before the first read or the first flight."""
    if snap is None:
        return None
    return date.fromisoformat(snap.clock_day) if snap.clock_day else None


def until(snap: queries.Snapshot | None) -> str | None:
    """The last day the "every loaded day" panels count: the replay clock's (ISO)."""
    day = clock_day(snap)
    return day.isoformat() if day else None


def period_text(snap: queries.Snapshot | None) -> str:
    """'01 Jan 2013 – 30 Dec 2013': the first loaded day to the replay clock's."""
    last = until(snap)
    if snap is None or snap.first is None or last is None:
        return "—"
    return f"{snap.first:%d %b %Y} – {date.fromisoformat(last):%d %b %Y}"
