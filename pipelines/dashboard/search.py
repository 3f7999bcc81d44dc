"""Search and drill-down (issue 20, part 3), the pure part: which days are searched, the
flights of board buckets as one frame, which of them a question asks for, and the listing.
No I/O (``lookups.read_day_flights`` reads the buckets, by ``_id``).

A question (:class:`Ask`) is a search (a flight number ``UA1545`` / ``UA 1545`` / ``1545``, or
a tail number ``N14228``: exact, case and spaces ignored) or a slice the page was clicked on:
a KPI tile (:data:`TILE_SLICES`), an airline of the leaderboard, a route. Each is answered from
the flights of the selected days (at most :data:`SEARCH_DAYS`, the latest ones up to the
clock's day: said on the page) in the airport and airline filters (a search ignores the
airline filter: a flight number names its airline). The clock's day counts, like the tiles,
the flights scheduled up to the clock's hour.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from .kpi_frames import NY, Scope, frame_of, local_date, utc

SEARCH_DAYS = 3  # days of board buckets a question reads at most (3 x 24 h x 3 airports)
LISTED = 200  # flights listed at most (the count says how many matched)
FLIGHT_COLUMNS = (
    "flight_key", "origin", "carrier", "carrier_name", "flight", "tailnum", "dest", "dest_name",
    "sched_dep_utc", "dep_time_utc", "dep_delay", "status", "status_rank", "cancelled",
    "date", "local_hour",
)  # fmt: skip
# a KPI tile -> (what its flights are, the flights it counts); see ``widgets.TILES``
TILE_SLICES = {
    "flights": "every flight",
    "on_time_pct": "departures more than 15 min late (not on time)",
    "avg_dep_delay": "departures, longest delay first",
    "cancelled": "cancelled flights",
    "delayed_60": "departures more than 60 min late",
}
LISTING_COLUMNS = ("date", "sched", "flight_no", "tailnum", "origin", "dest", "status", "delay")


@dataclass(frozen=True)
class Ask:
    """A question to the flights: ``kind`` "search" (``value``: the text typed), "tile"
    (a key of :data:`TILE_SLICES`), "carrier" (a carrier code) or "route" (``DEST``: from the
    selected airports, or ``ORIGIN-DEST``)."""

    kind: str
    value: str

    @property
    def label(self) -> str:
        """What the listing shows, in words."""
        if self.kind == "search":
            return f"search “{self.value.strip()}”"
        if self.kind == "tile":
            return f"tile: {TILE_SLICES.get(self.value, self.value)}"
        if self.kind == "carrier":
            return f"airline {self.value}"
        origin, _, dest = self.value.rpartition("-")
        return f"route {origin or 'New York'} → {dest}"


def search_days(
    selected: Sequence[str], clock_day: str | None, cap: int = SEARCH_DAYS
) -> list[str]:
    """The days a question reads: the selected ones up to the clock's day, the latest ``cap``
    of them (the clock's day alone when none is selected)."""
    days = sorted(d for d in selected if clock_day is None or d <= clock_day)
    if not days and clock_day is not None:
        days = [clock_day]
    return days[-cap:]


def flights_frame(docs: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """The flights of board buckets (``flights_by_hour`` documents, resolved) as rows of
    :data:`FLIGHT_COLUMNS`: a flight's ``origin`` is its bucket's, ``date`` and
    ``local_hour`` the New York day and hour of its scheduled departure."""
    rows = []
    for doc in docs:
        origin = doc.get("origin") or str(doc["_id"]).split("|")[0]
        for f in doc.get("flights") or ():
            sched = utc(f.get("sched_dep_utc"))
            if sched is None:
                continue
            local = sched.astimezone(NY)
            rows.append({**{c: f.get(c) for c in FLIGHT_COLUMNS if c in f}, "origin": origin,
                         "sched_dep_utc": sched, "date": local.date().isoformat(),
                         "local_hour": local.hour})  # fmt: skip
    frame = frame_of(rows, FLIGHT_COLUMNS)
    return frame[list(FLIGHT_COLUMNS)]


def normalized(text: str) -> str:
    """``" ua 1545 "`` -> ``"UA1545"``."""
    return re.sub(r"\s+", "", text or "").upper()


def matches(frame: pd.DataFrame, text: str) -> pd.DataFrame:
    """The flights whose flight number (``1545``), carrier and number (``UA1545``) or tail
    number (``N14228``) is ``text`` (case and spaces ignored; nothing for an empty text)."""
    query = normalized(text)
    if not query or frame.empty:
        return frame.iloc[:0]
    numbers = [
        str(int(n)) if isinstance(n, int | float) and n == n else "" for n in frame["flight"]
    ]
    codes = [f"{c or ''}{n}" for c, n in zip(frame["carrier"], numbers, strict=True)]
    tails = [str(t or "").upper() for t in frame["tailnum"]]
    plain = query.lstrip("0") if query.isdigit() else None
    hit = [
        (plain is not None and n == plain) or (bool(n) and code == query) or tail == query
        for n, code, tail in zip(numbers, codes, tails, strict=True)
    ]
    return frame[hit]


def _started(frame: pd.DataFrame, clock: datetime | None) -> pd.Series:
    """Flights counted by the tiles: the clock's day up to its hour, every earlier day."""
    if clock is None:
        return pd.Series(True, index=frame.index)
    day, hour = local_date(clock).isoformat(), clock.astimezone(NY).hour
    return (frame["date"] < day) | ((frame["date"] == day) & (frame["local_hour"] <= hour))


def answer(frame: pd.DataFrame, ask: Ask, scope: Scope, clock: datetime | None) -> pd.DataFrame:
    """The flights of ``frame`` that ``ask`` names in ``scope``'s airports (and airlines,
    except for a search), sorted: by delay (longest first) for the delay slices, else by
    scheduled departure."""
    if frame.empty:
        return frame
    in_scope = scope.select(frame, carriers=ask.kind != "search", dates=False)
    if ask.kind == "search":
        return _sorted(matches(in_scope, ask.value))
    counted = in_scope[_started(in_scope, clock)]
    delay = pd.to_numeric(counted["dep_delay"], errors="coerce")
    departed = counted["dep_time_utc"].notna()
    if ask.kind == "tile":
        keep = {
            "flights": pd.Series(True, index=counted.index),
            "on_time_pct": departed & (delay > 15),
            "avg_dep_delay": departed & delay.notna(),
            "cancelled": counted["cancelled"].eq(True),
            "delayed_60": delay > 60,
        }.get(ask.value)
        if keep is None:
            return counted.iloc[:0]
        return _sorted(counted[keep], by_delay=ask.value != "flights" and ask.value != "cancelled")
    if ask.kind == "carrier":
        return _sorted(counted[counted["carrier"] == ask.value])
    if ask.kind == "route":  # "DEST" (from the selected airports) or "ORIGIN-DEST"
        origin, _, dest = ask.value.rpartition("-")
        hit = counted["dest"] == dest
        return _sorted(counted[hit & (counted["origin"] == origin) if origin else hit])
    return counted.iloc[:0]


def _sorted(frame: pd.DataFrame, by_delay: bool = False) -> pd.DataFrame:
    if by_delay:
        delay = pd.to_numeric(frame["dep_delay"], errors="coerce")
        order = frame.assign(_d=delay).sort_values(
            ["_d", "sched_dep_utc", "flight_key"], ascending=[False, True, True],
            na_position="last", kind="stable",
        )  # fmt: skip
        return order.drop(columns="_d")
    return frame.sort_values(["sched_dep_utc", "flight_key"], kind="stable")


def listing(frame: pd.DataFrame, cap: int = LISTED) -> pd.DataFrame:
    """The first ``cap`` flights as the page lists them (:data:`LISTING_COLUMNS`): local date,
    scheduled time (HH:MM New York), ``UA 1545``, tail, from, to, status, delay (min, signed;
    empty when not departed)."""
    head = frame.head(cap)
    sched = [utc(t).astimezone(NY) for t in head["sched_dep_utc"]]
    delay = pd.to_numeric(head["dep_delay"], errors="coerce")
    return pd.DataFrame({
        "date": list(head["date"]),
        "sched": [f"{t:%H:%M}" for t in sched],
        "flight_no": [f"{c or ''} {int(n)}" if n == n and n is not None else str(c or "")
                      for c, n in zip(head["carrier"], head["flight"], strict=True)],
        "tailnum": [t if isinstance(t, str) else "" for t in head["tailnum"]],
        "origin": list(head["origin"]),
        "dest": [d if isinstance(d, str) else "" for d in head["dest"]],
        "status": [s if isinstance(s, str) else "" for s in head["status"]],
        "delay": ["" if d != d else f"{d:+.0f}" for d in delay],
    }, columns=list(LISTING_COLUMNS))  # fmt: skip
