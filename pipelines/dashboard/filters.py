"""The filter bar at the top of the page and its state: which airports, airlines and days the
duty manager looks at (the :class:`~pipelines.dashboard.kpi_frames.Scope` of every panel), the
auto-refresh switch and interval, "Refresh now", "Reset filters", and the line saying what is
being read.

The period buttons (Today, Yesterday, Last 7 days, All loaded) set the date range relative to
the replay clock's day; while one is chosen the range follows the clock into the next day, a
date picked by hand stays put. Changes made here in code (a new snapshot, a reset) are muted:
only the duty manager's own changes call ``on_scope``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import ipywidgets as W

from pipelines.core import domain

from . import kpi_frames, queries
from .state import clock_day

PERIODS = ("Today", "Yesterday", "Last 7 days", "All loaded")


class FilterBar:
    """The filters' widgets (``box``, DOM class ``tm-filters``) and what they select."""

    def __init__(
        self,
        refresh_s: float,
        snapshot: Callable[[], queries.Snapshot | None],
        on_scope: Callable[[], None],
    ) -> None:
        """``snapshot``: the page's current snapshot (the days the periods mean); ``on_scope``:
        called when the duty manager changes the airports, airlines or days."""
        self._snapshot = snapshot
        self._on_scope = on_scope
        self.follow_today = True  # the date range follows the replay clock's day
        self._mute = False  # programmatic filter changes do not trigger redraws
        lay = W.Layout
        self.w_airports = W.SelectMultiple(
            options=[(f"{o} {kpi_frames.ORIGIN_NAMES[o]}", o) for o in domain.ORIGINS],
            value=domain.ORIGINS,
            rows=3,
            description="Airports",
            layout=lay(width="210px"),
        )
        self.w_carriers = W.SelectMultiple(
            options=[], rows=4, description="Airlines", layout=lay(width="300px")
        )
        self.w_period = W.ToggleButtons(
            options=PERIODS, value="Today", style={"button_width": "96px"}
        )
        self.w_from = W.DatePicker(description="From", layout=lay(width="200px"))
        self.w_to = W.DatePicker(description="To", layout=lay(width="200px"))
        self.w_auto = W.ToggleButton(
            value=True, description="Auto-refresh", icon="refresh", layout=lay(width="130px")
        )
        self.w_interval = W.BoundedIntText(
            value=int(refresh_s),
            min=5,
            max=3600,
            description="every (s)",
            layout=lay(width="150px"),
        )
        self.w_refresh = W.Button(description="Refresh now", layout=lay(width="120px"))
        self.w_reset = W.Button(description="Reset filters", layout=lay(width="120px"))
        self.busy = W.HTML()  # "reading MongoDB…", "read at 12:03:04 (wall) in 0.4 s"
        for widget in (self.w_airports, self.w_carriers, self.w_from, self.w_to):
            widget.style.description_width = "60px"
        self.w_interval.style.description_width = "65px"
        self.box = W.HBox(
            [
                self.w_airports,
                self.w_carriers,
                W.VBox([self.w_period, W.HBox([self.w_from, self.w_to])]),
                W.VBox(
                    [
                        W.HBox([self.w_auto, self.w_interval]),
                        W.HBox([self.w_refresh, self.w_reset]),
                        self.busy,
                    ]
                ),
            ],
            layout=lay(flex_flow="row wrap", align_items="flex-start"),
        )
        self.box.add_class("tm-filters")
        self.box.add_class("tm-gap")
        for widget in (self.w_airports, self.w_carriers):
            widget.observe(self._on_filter, names="value")
        for widget in (self.w_from, self.w_to):
            widget.observe(self._on_dates, names="value")
        self.w_period.observe(self._on_period, names="value")

    def scope(self) -> kpi_frames.Scope:
        """What the filters select (no airport, or all three, is every airport)."""
        airports = tuple(self.w_airports.value)
        return kpi_frames.Scope(
            airports=() if len(airports) in (0, len(domain.ORIGINS)) else airports,
            carriers=tuple(self.w_carriers.value),
            date_from=self.w_from.value,
            date_to=self.w_to.value,
        )

    def sync(self, snap: queries.Snapshot | None) -> None:
        """After a read: the airlines of ``snap`` as options (the selected ones kept), and the
        date range moved with the clock while a period is followed."""
        carriers = snap.carriers() if snap else []
        options = [(f"{code} · {name}"[:34], code) for code, name in carriers]
        with self.muted():
            if list(self.w_carriers.options) != options:
                keep = tuple(c for c in self.w_carriers.value if c in dict(carriers))
                self.w_carriers.options = options
                self.w_carriers.value = keep
            if self.follow_today:
                self.apply_period(self.w_period.value)

    def reset(self) -> None:
        """Every airport, every airline, today (the caller redraws)."""
        with self.muted():
            self.w_airports.value = domain.ORIGINS
            self.w_carriers.value = ()
            self.follow_today = True
            self.w_period.value = "Today"
            self.apply_period("Today")

    def apply_period(self, period: str | None) -> None:
        """Set the date range of ``period`` around the replay clock's day (None: unchanged)."""
        snap = self._snapshot()
        day = clock_day(snap)
        if day is None or snap is None:
            return
        first = snap.first or day
        start, end = {
            "Today": (day, day),
            "Yesterday": (day - timedelta(days=1), day - timedelta(days=1)),
            "Last 7 days": (max(first, day - timedelta(days=6)), day),
            "All loaded": (first, max(day, snap.last or day)),
        }.get(period, (self.w_from.value or day, self.w_to.value or day))
        self.w_from.value, self.w_to.value = start, end

    @contextlib.contextmanager
    def muted(self) -> Iterator[None]:
        """Widget changes inside do not call ``on_scope``."""
        previous, self._mute = self._mute, True
        try:
            yield
        finally:
            self._mute = previous

    def _on_period(self, change: dict[str, Any]) -> None:
        if self._mute:
            return
        with self.muted():
            self.follow_today = True
            self.apply_period(change["new"])
        self._on_scope()

    def _on_dates(self, change: dict[str, Any]) -> None:
        if self._mute:
            return
        self.follow_today = False  # a date picked by hand stays put
        with self.muted():
            if self.w_from.value and self.w_to.value and self.w_from.value > self.w_to.value:
                other = self.w_to if change["owner"] is self.w_from else self.w_from
                other.value = change["new"]
            self.w_period.value = None
        self._on_scope()

    def _on_filter(self, change: dict[str, Any]) -> None:
        if not self._mute:
            self._on_scope()


def scope_text(scope: kpi_frames.Scope, carriers: bool = True, dates: bool = True) -> str:
    """'JFK · AA + DL · Wed 02 Jan 2013': the scope in a panel's subtitle."""
    parts = [" + ".join(scope.airports) if scope.airports else "all airports"]
    if carriers:
        parts.append(" + ".join(scope.carriers) if scope.carriers else "all airlines")
    if dates and scope.date_from and scope.date_to:
        a, b = scope.date_from, scope.date_to
        parts.append(a.strftime("%a %d %b %Y") if a == b else f"{a:%d %b} – {b:%d %b %Y}")
    return " · ".join(parts)
