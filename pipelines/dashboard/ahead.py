"""The look-ahead (issue 20, part 2), the pure part: what the next hours hold at each airport,
built from documents. No I/O (``lookups.read_ahead`` reads them, by ``_id``).

- :func:`ahead_table`: per airport and scheduled hour, from the replay clock's hour to
  ``hours`` hours after it, the flights scheduled (the hour's board bucket, resolved with its
  hot bucket: ``readmodels.resolve``) against the usual for that weekday and local hour (the
  mean flights per day of that slot over the complete loaded days of that weekday, from
  ``kpi_profile.weekday_hour`` minus the ``kpi_daily`` rows of the clock's day and after, the
  way the tiles' same-weekday baseline is computed: exact, the measures are additive), the
  usual average departure delay of that slot, and the mean ``delay_risk`` of the bucket's
  flights that carry one (a model's score; none do yet).
- :func:`weather_trend`: per airport, the ``weather_hourly`` observations of the last
  :data:`WEATHER_HOURS` hours up to the clock's (visibility, wind, precipitation), oldest first,
  and which way each moved (an arrow; ``worse`` when it moved the bad way).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from pipelines.core.domain import MEASURES, ORIGINS
from pipelines.serving import readmodels as RM

from .kpi_frames import NY, WEEKDAY_NAMES, Kpis, local_date, numbers, signed, utc

AHEAD_CHOICES = (3, 4, 5, 6)  # hours after the clock's hour the panel can show
AHEAD_DEFAULT = 4
AHEAD_MAX = max(AHEAD_CHOICES)
WEATHER_HOURS = 3  # hours of weather before the clock's hour in the trend
# a change of at least this much (newest - oldest of the trend) shows an arrow up or down
STEADY = {"visib_km": 1.0, "wind_speed_kmh": 5.0, "precip_mm": 0.1}
# which way is bad: visibility down, wind and precipitation up
WORSE_WHEN = {"visib_km": -1, "wind_speed_kmh": +1, "precip_mm": +1}

AHEAD_COLUMNS = (
    "origin", "hour_utc", "local_hour", "weekday", "label", "now", "scheduled", "not_departed",
    "board", "usual", "vs_usual", "usual_delay", "usual_days", "usual_basis", "risk", "risk_n",
)  # fmt: skip


def clock_hour(clock: datetime) -> datetime:
    """The replay clock's hour (aware UTC)."""
    return clock.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def ahead_hours(clock: datetime, hours: int = AHEAD_MAX) -> list[datetime]:
    """The clock's hour and the ``hours`` hours after it (aware UTC)."""
    top = clock_hour(clock)
    return [top + timedelta(hours=k) for k in range(hours + 1)]


def ahead_ids(
    clock: datetime, hours: int = AHEAD_MAX, origins: Iterable[str] = ORIGINS
) -> list[str]:
    """``flights_by_hour`` ids of :func:`ahead_hours` at ``origins`` (hour by hour)."""
    origins = list(origins)
    return [RM.hour_key(o, h) for h in ahead_hours(clock, hours) for o in origins]


def weather_ids(
    clock: datetime, hours: int = WEATHER_HOURS, origins: Iterable[str] = ORIGINS
) -> list[str]:
    """``weather_hourly`` ids of the clock's hour and the ``hours`` hours before it."""
    top = clock_hour(clock)
    return [RM.hour_key(o, top - timedelta(hours=k)) for o in origins for k in range(hours + 1)]


# ----------------------------------------------------------------------------- the usual


@dataclass(frozen=True)
class Usual:
    """The usual of each (origin, weekday, local hour) over the complete loaded days (before
    the clock's day): ``sums`` (flights, dep_delay_sum, dep_delay_n) per (origin, weekday,
    local hour) over those days, weekday 0 holding every weekday's; ``per_weekday`` how many
    complete days each weekday has, ``complete`` how many in all."""

    sums: Mapping[tuple[str, int, int], tuple[float, float, float]]
    per_weekday: Mapping[int, int]
    complete: int

    def at(self, origin: str, weekday: int, hour: int) -> tuple[float, float, int, str]:
        """(flights per day, average departure delay, days, basis) of a slot: over the
        complete days of that weekday ("Wednesday"); when it has none, over every complete day
        ("any day", as the tiles fall back); none complete: (NaN, NaN, 0, ""). A slot without
        a row had no flight on those days: 0 flights, delay NaN."""
        days = self.per_weekday.get(weekday, 0)
        basis = WEEKDAY_NAMES[weekday - 1] if days else "any day"
        if not days:
            weekday, days = 0, self.complete
        if not days:
            return float("nan"), float("nan"), 0, ""
        flights, delay_sum, delay_n = self.sums.get((origin, weekday, hour), (0.0, 0.0, 0.0))
        delay = delay_sum / delay_n if delay_n else float("nan")
        return flights / days, delay, days, basis


def usual_slots(kpis: Kpis, clock: datetime) -> Usual:
    """The :class:`Usual` of the loaded days before the clock's day: the profile's
    ``weekday_hour`` minus the ``kpi_daily`` rows of the clock's day and the days after it
    (which the page always reads: ``Kpis.require``), exact (the measures are additive)."""
    clock_day = local_date(clock).isoformat()
    complete = [d for d in kpis.dates if d < clock_day]
    per_weekday: dict[int, int] = {}
    for day in complete:
        weekday = kpis.profile.weekdays[day]
        per_weekday[weekday] = per_weekday.get(weekday, 0) + 1
    if not complete:
        return Usual({}, per_weekday, 0)
    excluded = [d for d in kpis.dates if d >= clock_day]
    kpis.require(excluded)
    minus = kpis.hourly[kpis.hourly["date"].isin(excluded)]
    cols, values = signed(kpis.profile.weekday_hour, minus, ["origin", "weekday", "local_hour"])
    at = [MEASURES.index(m) for m in ("flights", "dep_delay_sum", "dep_delay_n")]
    sums: dict[tuple[str, int, int], list[float]] = {}
    weekdays, hours = numbers(cols["weekday"]), numbers(cols["local_hour"])
    for origin, weekday, hour, row in zip(cols["origin"], weekdays, hours, values, strict=True):
        if weekday != weekday or hour != hour or int(weekday) not in per_weekday:
            continue
        for key in ((str(origin), int(weekday), int(hour)), (str(origin), 0, int(hour))):
            acc = sums.setdefault(key, [0.0, 0.0, 0.0])
            for k, i in enumerate(at):
                acc[k] += float(row[i])
    return Usual({k: (v[0], v[1], v[2]) for k, v in sums.items()}, per_weekday, len(complete))


# ------------------------------------------------------------------------------- the table


def _announced(hour: datetime, clock: datetime, lead: timedelta | None) -> str:
    """How much of ``hour``'s flights the board holds at ``clock`` (see :func:`ahead_table`)."""
    if lead is None or hour + timedelta(minutes=59) <= clock + lead:
        return "complete"
    return "partial" if hour <= clock + lead else "not yet"


def _risk(flights: Sequence[Mapping[str, Any]]) -> tuple[float, int]:
    """The mean ``delay_risk`` of the flights carrying a number there, and how many do."""
    scores = []
    for f in flights:
        value = f.get("delay_risk")
        if isinstance(value, int | float) and not isinstance(value, bool) and value == value:
            scores.append(float(value))
    return (sum(scores) / len(scores) if scores else float("nan")), len(scores)


def ahead_table(
    buckets: Iterable[Mapping[str, Any]],
    kpis: Kpis,
    clock: datetime,
    hours: int = AHEAD_DEFAULT,
    airports: Sequence[str] = (),
    lead: timedelta | None = None,
) -> pd.DataFrame:
    """One row per airport (``airports``; empty: all) and hour of :func:`ahead_hours`: the
    flights its board bucket holds (``buckets``: resolved ``flights_by_hour`` documents; an
    hour without one has 0), how many are still ``scheduled`` (not departed nor cancelled),
    the usual for that weekday and local hour (:meth:`Usual.at`; NaN when no complete day is
    loaded), ``vs_usual`` (scheduled - usual), the usual delay, and the bank's mean
    ``delay_risk`` (NaN when no flight carries one) with ``risk_n``. Sorted by airport, then
    hour; ``now`` marks the clock's hour.

    ``lead``: how long before its departure a flight reaches the board (its ``scheduled``
    event; ``replay.board_lead_minutes``, 2 h). ``board`` says how much of an hour the board
    can know at the clock: "complete" (its last minute is within ``clock + lead``),
    "partial" or "not yet"; ``vs_usual`` is NaN unless complete (an hour not announced yet is
    not quieter than usual). None: every hour complete."""
    by_id = {str(b.get("_id")): b for b in buckets}
    usual_of = usual_slots(kpis, clock)
    top = clock_hour(clock)
    rows = []
    for origin in [o for o in ORIGINS if not airports or o in airports]:
        for hour in ahead_hours(clock, hours):
            flights = (by_id.get(RM.hour_key(origin, hour)) or {}).get("flights") or []
            local = hour.astimezone(NY)
            usual, delay, days, basis = usual_of.at(origin, local.isoweekday(), local.hour)
            risk, risk_n = _risk(flights)
            board = _announced(hour, clock, lead)
            rows.append({
                "origin": origin, "hour_utc": hour, "local_hour": local.hour,
                "weekday": local.isoweekday(), "label": f"{local:%H}:00", "now": hour == top,
                "scheduled": len(flights),
                "not_departed": sum(f.get("status_rank") in (None, 1) for f in flights),
                "board": board, "usual": usual,
                "vs_usual": len(flights) - usual if board == "complete" else float("nan"),
                "usual_delay": delay,
                "usual_days": days, "usual_basis": basis, "risk": risk, "risk_n": risk_n,
            })  # fmt: skip
    return pd.DataFrame(rows, columns=list(AHEAD_COLUMNS))


# ------------------------------------------------------------------------------ weather


def _arrow(field: str, values: Sequence[float]) -> tuple[str, bool]:
    """The arrow of a trend (newest - oldest against :data:`STEADY`) and whether it moved the
    bad way (:data:`WORSE_WHEN`)."""
    known = [v for v in values if v == v]
    if len(known) < 2:
        return "", False
    change = known[-1] - known[0]
    if abs(change) < STEADY[field]:
        return "→", False
    return ("↑" if change > 0 else "↓"), (change > 0) == (WORSE_WHEN[field] > 0)


def weather_trend(
    docs: Iterable[Mapping[str, Any]],
    clock: datetime,
    hours: int = WEATHER_HOURS,
    airports: Sequence[str] = (),
) -> pd.DataFrame:
    """Per airport: ``hours_utc`` (the observed hours of the clock's hour and the ``hours``
    before it, oldest first), the values of ``visib_km``, ``wind_speed_kmh`` and
    ``precip_mm`` at those hours (lists; an hour not landed is skipped, a value not measured
    is NaN), and per measure ``<field>_arrow`` and ``<field>_worse``."""
    top = clock_hour(clock)
    window = {top - timedelta(hours=k) for k in range(hours + 1)}
    found: dict[str, list[Mapping[str, Any]]] = {}
    for doc in docs:
        hour = utc(doc.get("hour_utc"))
        if hour in window:
            found.setdefault(str(doc.get("origin")), []).append(doc)
    rows = []
    for origin in [o for o in ORIGINS if not airports or o in airports]:
        seen = sorted(found.get(origin, []), key=lambda d: utc(d.get("hour_utc")))
        row: dict[str, Any] = {"origin": origin, "hours_utc": [utc(d["hour_utc"]) for d in seen]}
        for field in STEADY:
            values = [float(v) if isinstance(v := d.get(field), int | float) else float("nan")
                      for d in seen]  # fmt: skip
            row[field] = values
            row[f"{field}_arrow"], row[f"{field}_worse"] = _arrow(field, values)
        rows.append(row)
    return pd.DataFrame(rows)
