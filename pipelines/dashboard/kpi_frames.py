"""The KPI documents of docs/data-model.md as frames, and what holds them: pure, no I/O
(``queries`` reads the documents, ``analytics`` computes the figures).

The KPI rows live in a :class:`Kpis`: the whole-period sums of ``kpi_profile`` (every loaded day
in one document) and the rows of the ``kpi_daily`` documents read so far (the selected dates, the
replay clock's day and the days after it). A figure over "every day but these" is the profile
minus the rows of those days, exact because every measure is additive: sums and counts are
stored, every average or percentage is computed from the summed ones (``dep_delay_sum /
dep_delay_n``, ``on_time / departed``). A figure that needs a day not read raises
:class:`NotRead` rather than answer from part of the data.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from pipelines.core.domain import MEASURES
from pipelines.core.domain import NEW_YORK as NY
from pipelines.serving.readmodels import utc

from .live import overlay

ORIGIN_NAMES = {"EWR": "Newark", "JFK": "Kennedy", "LGA": "LaGuardia"}
DERIVED = ("on_time_pct", "avg_dep_delay", "avg_arr_delay", "cancel_pct")
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

# the key columns of each frame (beside the measures): what a row of its document holds
HOURLY_KEYS = ("date", "weekday", "origin", "hour_utc", "local_hour")
CARRIER_KEYS = ("date", "weekday", "carrier", "carrier_name", "origin")
IMPACT_KEYS = ("date", "origin", "visib_band", "precip", "wind_band")
ROUTE_KEYS = ("month", "origin", "dest", "dest_name", "dest_lat", "dest_lon")
WEEKDAY_HOUR_KEYS = ("origin", "weekday", "local_hour")
CARRIER_WEEKDAY_KEYS = ("carrier", "carrier_name", "origin", "weekday")
WEATHER_KEYS = ("origin", "visib_band", "precip", "wind_band")
DAY_COLUMNS = ("date", "weekday", "flights", "updated_at")


# ------------------------------------------------------------------------------- helpers


def local_date(ts: datetime) -> date:
    """The America/New_York calendar day of ``ts``."""
    return ts.astimezone(NY).date()


def date_range(start: date, end: date) -> list[str]:
    """Inclusive list of ``YYYY-MM-DD`` strings."""
    if end < start:
        return []
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


def iso_weekday(day: str) -> int:
    """1 = Monday ... 7 = Sunday of a ``YYYY-MM-DD`` string (computed, not read: robust)."""
    return date.fromisoformat(day).isoweekday()


def frame_of(docs: Iterable[Mapping[str, Any]], columns: Iterable[str]) -> pd.DataFrame:
    """Rows as a frame with at least ``columns`` (absent ones empty)."""
    frame = pd.DataFrame(list(docs))
    for column in columns:
        if column not in frame.columns:
            frame[column] = pd.Series(dtype="object")
    return frame


def measures(frame: pd.DataFrame) -> pd.DataFrame:
    """Measure columns as floats, missing = 0 (an absent measure counted nothing)."""
    for m in MEASURES:
        if m not in frame.columns:
            frame[m] = 0.0
            continue
        if frame[m].dtype != "float64":
            frame[m] = pd.to_numeric(frame[m], errors="coerce").astype("float64")
        if frame[m].hasnans:
            frame[m] = frame[m].fillna(0.0)
    return frame


def kpi_frame(rows: Iterable[Mapping[str, Any]], keys: Iterable[str]) -> pd.DataFrame:
    """KPI rows as a frame: ``keys`` (present or not) and float measures."""
    return measures(frame_of(rows, keys))


# (derived, numerator, denominator, scale): every ratio from summed measures
RATIOS = (
    ("on_time_pct", "on_time", "departed", 100.0),
    ("avg_dep_delay", "dep_delay_sum", "dep_delay_n", 1.0),
    ("avg_arr_delay", "arr_delay_sum", "arr_delay_n", 1.0),
    ("cancel_pct", "cancelled", "flights", 100.0),
)


def ratio(num: Any, den: Any, scale: float = 1.0) -> Any:
    num = np.asarray(num, dtype="float64")
    den = np.asarray(den, dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(den > 0, num * scale / np.where(den > 0, den, 1.0), np.nan)
    return out if np.ndim(out) else float(out)


def derive(frame: pd.DataFrame) -> pd.DataFrame:
    """Add on-time %, average delays and cancellation % computed from the summed measures."""
    return frame.assign(
        **{name: ratio(frame[num], frame[den], scale) for name, num, den, scale in RATIOS}
    )


def summarize(sums: pd.Series | Mapping[str, float]) -> dict[str, float]:
    """Measures + derived values of one set of sums."""
    out = {m: float(sums.get(m, 0.0) or 0.0) for m in MEASURES}
    for name, num, den, scale in RATIOS:
        out[name] = out[num] * scale / out[den] if out[den] > 0 else math.nan
    return out


def rollup(frame: pd.DataFrame, by: str | list[str]) -> pd.DataFrame:
    """Sum the measures per ``by`` and derive the ratios (an empty frame keeps its columns)."""
    keys = [by] if isinstance(by, str) else list(by)
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in (*keys, *MEASURES, *DERIVED)})
    summed = frame.groupby(keys, as_index=False, sort=True)[list(MEASURES)].sum()
    return derive(summed)


def cat(first: pd.DataFrame, *more: pd.DataFrame) -> pd.DataFrame:
    """The frames' rows in order; empty ones add nothing, one alone is returned as it is."""
    parts = [f for f in (first, *more) if len(f)]
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else (parts or [first])[0]


def signed(
    whole: pd.DataFrame, minus: pd.DataFrame, keys: Sequence[str]
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The ``keys`` columns and the measures (floats, ``MEASURES`` order) of the rows of
    ``whole`` and, negated, of ``minus``: summed over any subset of keys, the profile minus
    those days' rows ("every day but these"), exact because the measures are additive
    integers."""
    cols = {k: np.concatenate([whole[k].to_numpy(), minus[k].to_numpy()]) for k in keys}
    values = np.concatenate(
        [
            whole[list(MEASURES)].to_numpy(dtype="float64"),
            -minus[list(MEASURES)].to_numpy(dtype="float64"),
        ]  # fmt: skip
    )
    return cols, values


def numbers(values: np.ndarray) -> np.ndarray:
    """An array of numbers (or of anything) as floats, NaN where not a number."""
    return pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype="float64")


def sums_by(labels: np.ndarray, order: Sequence[Any], values: np.ndarray) -> np.ndarray:
    """``values`` rows summed per label, one row per item of ``order`` (labels not in it, or
    missing, are left out)."""
    index = {v: i for i, v in enumerate(order)}
    at = np.fromiter((index.get(v, -1) for v in labels), dtype="int64", count=len(labels))
    out = np.zeros((len(order), values.shape[1]))
    np.add.at(out, at[at >= 0], values[at >= 0])
    return out


def table(key: str, order: Sequence[Any], sums: np.ndarray) -> pd.DataFrame:
    """``key`` (the items of ``order``), the measures of ``sums`` rows and the ratios."""
    data: dict[str, Any] = {key: list(order)}
    data.update({m: sums[:, i] for i, m in enumerate(MEASURES)})
    for name, num, den, scale in RATIOS:
        data[name] = ratio(data[num], data[den], scale)
    return pd.DataFrame(data)


# ---------------------------------------------------------------------------------- scope


@dataclass(frozen=True)
class Scope:
    """What the filters select. Empty ``airports`` / ``carriers`` mean all; dates inclusive,
    ``None`` = the whole loaded period."""

    airports: tuple[str, ...] = ()
    carriers: tuple[str, ...] = ()
    date_from: date | None = None
    date_to: date | None = None

    def dates(self) -> list[str] | None:
        if self.date_from is None or self.date_to is None:
            return None
        return date_range(self.date_from, self.date_to)

    def months(self) -> list[str] | None:
        days = self.dates()
        return None if days is None else sorted({d[:7] for d in days})

    def select(
        self,
        frame: pd.DataFrame,
        *,
        airports: bool = True,
        carriers: bool = True,
        dates: bool = True,
    ) -> pd.DataFrame:
        """Rows of ``frame`` in the scope (columns ``origin``, ``carrier``, ``date``)."""
        mask = pd.Series(True, index=frame.index)
        if airports and self.airports and "origin" in frame:
            mask &= frame["origin"].isin(self.airports)
        if carriers and self.carriers and "carrier" in frame:
            mask &= frame["carrier"].isin(self.carriers)
        if dates and (days := self.dates()) is not None and "date" in frame:
            mask &= frame["date"].isin(days)
        return frame[mask]


# ----------------------------------------------------------------------------- KPI rows


class NotRead(LookupError):
    """A figure needs ``kpi_daily`` / ``kpi_route_monthly`` documents that were not read."""


@dataclass(frozen=True)
class Profile:
    """``kpi_profile``: every loaded local date (``days``: date, weekday, flights, updated_at)
    and the sums of the whole loaded period."""

    days: pd.DataFrame
    weekday_hour: pd.DataFrame
    carrier_weekday: pd.DataFrame
    weather: pd.DataFrame
    updated_at: datetime | None = None

    @classmethod
    def empty(cls) -> Profile:
        return cls(
            frame_of([], DAY_COLUMNS),
            kpi_frame([], WEEKDAY_HOUR_KEYS),
            kpi_frame([], CARRIER_WEEKDAY_KEYS),
            kpi_frame([], WEATHER_KEYS),
        )

    @cached_property
    def dates(self) -> list[str]:
        return sorted(self.days["date"].dropna().unique()) if len(self.days) else []

    @cached_property
    def stamps(self) -> dict[str, datetime | None]:
        """``updated_at`` of each loaded date's ``kpi_daily`` document."""
        return {d: utc(t) for d, t in zip(self.days["date"], self.days["updated_at"], strict=True)}

    @cached_property
    def weekdays(self) -> dict[str, int]:
        """ISO weekday of each loaded date (``days.weekday``, computed where absent)."""
        return {
            d: int(w) if pd.notna(w) else iso_weekday(d)
            for d, w in zip(self.days["date"], self.days["weekday"], strict=True)
        }


@dataclass(frozen=True)
class Rows:
    """The rows of the ``kpi_daily`` / ``kpi_route_monthly`` documents read: ``read`` and
    ``months_read`` map each date / month asked for to its document's ``updated_at`` (None:
    no document, or none stamped)."""

    hourly: pd.DataFrame
    carrier_daily: pd.DataFrame
    weather_impact: pd.DataFrame
    route_monthly: pd.DataFrame
    read: Mapping[str, datetime | None] = field(default_factory=dict)
    months_read: Mapping[str, datetime | None] = field(default_factory=dict)

    @classmethod
    def empty(cls) -> Rows:
        return cls(
            kpi_frame([], HOURLY_KEYS),
            kpi_frame([], CARRIER_KEYS),
            kpi_frame([], IMPACT_KEYS),
            kpi_frame([], ROUTE_KEYS),
        )

    def merge(self, other: Rows) -> Rows:
        """These rows with the dates and months of ``other`` replaced by ``other``'s."""
        return self.keep(
            [d for d in self.read if d not in other.read],
            [m for m in self.months_read if m not in other.months_read],
        )._plus(other)

    def keep(self, dates: Iterable[str], months: Iterable[str]) -> Rows:
        """Only the rows of ``dates`` and ``months``."""
        dates, months = set(dates), set(months)

        def only(frame: pd.DataFrame, column: str, values: set[str]) -> pd.DataFrame:
            return frame[frame[column].isin(values)]

        return Rows(
            only(self.hourly, "date", dates),
            only(self.carrier_daily, "date", dates),
            only(self.weather_impact, "date", dates),
            only(self.route_monthly, "month", months),
            {d: t for d, t in self.read.items() if d in dates},
            {m: t for m, t in self.months_read.items() if m in months},
        )

    def _plus(self, other: Rows) -> Rows:
        return Rows(
            cat(self.hourly, other.hourly),
            cat(self.carrier_daily, other.carrier_daily),
            cat(self.weather_impact, other.weather_impact),
            cat(self.route_monthly, other.route_monthly),
            {**self.read, **other.read},
            {**self.months_read, **other.months_read},
        )


@dataclass(frozen=True)
class Kpis:
    """What the KPI panels are computed from: the profile and the rows read; ``hot``: the
    ``kpi_hourly`` rows read since (the stream's hot path), laid over ``rows.hourly`` in
    :attr:`hourly_live`; ``live``: the airline and weather rows of the dates the stream still
    changes, derived from their board buckets as the page reads them
    (``readmodels.day_doc``; its hours come from ``hot``), in place of those dates'
    ``kpi_daily`` rows in :attr:`carrier_live` and :attr:`weather_live`."""

    profile: Profile
    rows: Rows
    hot: pd.DataFrame | None = None
    live: Rows | None = None

    @classmethod
    def empty(cls) -> Kpis:
        return cls(Profile.empty(), Rows.empty())

    @property
    def dates(self) -> list[str]:
        """Every loaded local date, sorted."""
        return self.profile.dates

    @property
    def hourly(self) -> pd.DataFrame:
        """The ``kpi_daily`` hourly rows: what the profile was computed with."""
        return self.rows.hourly

    @cached_property
    def hourly_live(self) -> pd.DataFrame:
        """The hourly rows shown: the newest of ``kpi_daily`` and ``kpi_hourly`` per hour."""
        return overlay(self.rows.hourly, self.rows.read, self.hot)

    @property
    def carrier_daily(self) -> pd.DataFrame:
        """The ``kpi_daily`` carrier rows: what the profile was computed with."""
        return self.rows.carrier_daily

    @property
    def weather_impact(self) -> pd.DataFrame:
        """The ``kpi_daily`` weather rows: what the profile was computed with."""
        return self.rows.weather_impact

    @cached_property
    def live_dates(self) -> list[str]:
        """The dates whose rows :attr:`live` gives: those whose buckets count at least the
        flights of their ``kpi_daily`` (``readmodels.newer_day``'s rule: fewer means buckets
        are missing, as beyond the serving horizon; every flight is in one airline row)."""
        if self.live is None:
            return []
        theirs = self.rows.carrier_daily.groupby("date")["flights"].sum()
        mine = self.live.carrier_daily.groupby("date")["flights"].sum()
        return sorted(d for d in self.live.read if mine.get(d, 0) >= theirs.get(d, 0))

    @cached_property
    def carrier_live(self) -> pd.DataFrame:
        """The carrier rows shown: a live date's derived from its buckets, else ``kpi_daily``'s."""
        return self._over(self.rows.carrier_daily, "carrier_daily")

    @cached_property
    def weather_live(self) -> pd.DataFrame:
        """The weather rows shown: a live date's derived from its buckets, else ``kpi_daily``'s."""
        return self._over(self.rows.weather_impact, "weather_impact")

    @cached_property
    def live_key(self) -> tuple[int, ...]:
        """What :attr:`live` holds, as numbers that change when a row of it does (the page
        draws its airlines and weather again only then)."""
        if self.live is None:
            return ()
        frames = (self.live.carrier_daily, self.live.weather_impact)
        return tuple(int(pd.util.hash_pandas_object(f, index=False).sum()) for f in frames)

    def _over(self, lake: pd.DataFrame, name: str) -> pd.DataFrame:
        if not self.live_dates:
            return lake
        kept, derived = lake[~lake["date"].isin(self.live_dates)], getattr(self.live, name)
        return cat(kept, derived[derived["date"].isin(self.live_dates)])

    @property
    def route_monthly(self) -> pd.DataFrame:
        return self.rows.route_monthly

    @cached_property
    def months(self) -> list[str]:
        return sorted({d[:7] for d in self.dates})

    def with_rows(self, rows: Rows) -> Kpis:
        return Kpis(self.profile, self.rows.merge(rows), self.hot, self.live)

    def with_hot(self, hot: pd.DataFrame | None, live: Rows | None = None) -> Kpis:
        """These KPIs with ``hot`` as the ``kpi_hourly`` rows and ``live`` as the live dates'
        rows (each read has every hour and every live date)."""
        return Kpis(self.profile, self.rows, hot, live)

    def missing(self, dates: Iterable[str]) -> list[str]:
        """Loaded dates of ``dates`` whose ``kpi_daily`` document was not read."""
        loaded = set(self.dates)
        return sorted({d for d in dates if d in loaded and d not in self.rows.read})

    def missing_months(self, months: Iterable[str]) -> list[str]:
        loaded = set(self.months)
        return sorted({m for m in months if m in loaded and m not in self.rows.months_read})

    def require(self, dates: Iterable[str] = (), months: Iterable[str] = ()) -> None:
        days, mon = self.missing(dates), self.missing_months(months)
        if days or mon:
            raise NotRead(f"not read yet: kpi_daily {days[:5]}, kpi_route_monthly {mon[:5]}")

    def selected(self, scope: Scope) -> list[str]:
        """The dates of ``scope``; every loaded date when it selects none."""
        dates = scope.dates()
        return self.dates if dates is None else dates

    def after(self, day: str | None) -> list[str]:
        """Loaded dates after ``day`` (none when ``day`` is None)."""
        return [d for d in self.dates if day is not None and d > day]

    def needed(self, scope: Scope, clock_day: str | None) -> tuple[list[str], list[str]]:
        """The (dates, months) not read yet that every panel of ``scope`` needs, the replay
        clock being on ``clock_day``: the selected dates (all when none), the clock's day and
        every day after it; the selected months."""
        dates = set(self.selected(scope))
        if clock_day is not None:
            dates |= {clock_day, *self.after(clock_day)}
        months = scope.months()
        return self.missing(dates), self.missing_months(self.months if months is None else months)
