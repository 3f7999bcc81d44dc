"""The next hours: per airport and scheduled hour, from the replay clock's hour to 3..6 hours
after it (the selector, 4 by default), the flights scheduled against the usual for that
weekday and local hour, how many are still to go, the usual delay of that slot, the bank's
mean delay risk where a model scored its flights ("—" otherwise), and the weather of the last
hours at each airport as a trend (visibility, wind, precipitation, an arrow each; amber when
it moves the bad way). What is coming, and whether it is busier or worse than usual.

Reads, once per snapshot and in a thread, the board buckets of those hours (resolved with
their hot buckets) and the weather of the last hours, by ``_id`` (``lookups.read_ahead``: 21 +
21 + 12 lookups); the usual is the snapshot's profile (``ahead.ahead_table``). Depends on the
airports filter only (the usual is per airport: the airline filter does not apply).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import ipywidgets as W
import pandas as pd

from pipelines.core import domain

from .. import kpi_frames, queries
from .. import widgets as H
from ..ahead import AHEAD_CHOICES, AHEAD_DEFAULT, ahead_table, weather_trend
from ..lookups import Ahead, read_ahead
from ..reading import attempt, read_then_draw, running_loop
from .base import Page, Panel, gap

TITLE = "Next hours"
COLUMNS = [
    ("airport", "Airport", ""),
    ("hour", "Hour", "html"),
    ("scheduled", "Scheduled", "num"),
    ("usual_txt", "Usual", "num"),
    ("vs_txt", "vs usual", "html"),
    ("to_go", "Still to go", "num"),
    ("delay_txt", "Usual delay (min)", "html"),
    ("risk_txt", "Bank delay risk", "num"),
]
WEATHER_COLUMNS = [
    ("airport", "Airport", ""),
    ("hours", "Hours (local)", ""),
    ("visib", "Visibility (km)", "html"),
    ("wind", "Wind (km/h)", "html"),
    ("precip", "Precip. (mm)", "html"),
]


class AheadPanel(Panel):
    name = "Next hours"
    key = "ahead"

    def __init__(self, page: Page) -> None:
        super().__init__(page)
        self.data: Ahead | None = None
        self._for: Any = None  # the snapshot the data was read for
        self._asked: Any = None  # the snapshot a read was started for
        self.w_hours = W.ToggleButtons(
            options=[(f"{h} h", h) for h in AHEAD_CHOICES],
            value=AHEAD_DEFAULT,
            style={"button_width": "52px"},
        )
        self.title = W.HTML()
        self.table = self.target = W.HTML()
        self.weather = W.HTML()
        self.card(
            self.title, gap(W.HBox([self.w_hours])), self.table, self.weather,
            flex="3 1 0", min_width="640px",
        )  # fmt: skip
        self.on_change(self.w_hours, self.render)

    def drawn_for(self, scope: kpi_frames.Scope) -> Any:
        return scope.airports, self._for is self.page.state.snap

    def draw(self, scope: kpi_frames.Scope) -> None:
        snap = self.snap
        if snap.clock is None:
            self.title.value = H.card_title(TITLE)
            self.table.value = H.empty("No replay clock yet: the flight stream has not run.")
            self.weather.value = ""
            return
        if self._for is not snap and self._asked is not snap:
            self._read(snap)
        self.render()

    def _read(self, snap: queries.Snapshot) -> None:
        """Read the next hours' buckets and the weather of the last hours (in a thread inside
        a kernel), then draw them."""
        self._asked = snap
        timings = self.page.reader.timings
        clock = snap.clock

        def arrive(result: Ahead | BaseException) -> None:
            if snap is not self.page.state.snap:  # a newer snapshot reads for itself
                return
            self._asked = None
            if isinstance(result, BaseException):
                self.table.value = H.empty(
                    f"The next hours could not be read ({type(result).__name__}); "
                    "they are retried at the next refresh."
                )
                return
            self.data, self._for = result, snap
            self.page.guarded(self.render)

        read_then_draw(
            running_loop(),
            lambda: attempt(
                lambda: read_ahead(self.page.reader.connect(), clock),
                "look-ahead read",
                timings,
                "ahead_read",
            ),  # fmt: skip
            arrive,
        )

    def render(self) -> None:
        """Draw the data read for the hours selected and the airports of the filters."""
        snap, data = self.page.state.snap, self.data
        if snap is None or snap.clock is None:
            return
        if data is None:
            self.title.value = H.card_title(TITLE)
            self.table.value = '<div class="tm-loading">Reading the next hours…</div>'
            return
        airports = self.page.scope().airports
        hours = int(self.w_hours.value or AHEAD_DEFAULT)
        lead = timedelta(minutes=self.page.settings.replay.board_lead_minutes)
        frame = ahead_table(data.buckets, snap.kpis, data.clock, hours, airports, lead)
        local = data.clock.astimezone(domain.NEW_YORK)
        old = "" if self._for is snap else " <i>(updating…)</i>"
        read_ms = self.page.reader.timings.get("ahead_read", data.seconds) * 1000
        basis = sorted({b for b in frame["usual_basis"] if b})
        sub = (
            f"{H.esc(' + '.join(airports) or 'all airports')} · scheduled departures of the "
            f"clock's hour ({local:%H:%M}) and the next {hours} h against the usual "
            f"{H.esc(' / '.join(basis) or '—')} at that hour (mean per day over the complete "
            f"loaded days) · a flight reaches the board {H.ago(lead)} before its departure: "
            "“so far” / — for the hours it cannot hold yet · airline filter not applied · "
            f"read in {read_ms:.0f} ms{old}"
        )
        self.title.value = H.card_title(TITLE, sub)
        self.table.value = H.table(ahead_rows(frame), COLUMNS, attrs='data-table="ahead"')
        trend = weather_trend(data.weather, data.clock, airports=airports)
        self.weather.value = (
            '<div class="tm-card-sub">Weather of the last hours, oldest first (amber arrow: '
            "getting worse)</div>"
            + H.table(weather_rows(trend), WEATHER_COLUMNS, attrs='data-table="ahead-weather"')
        )

    def clear(self) -> None:
        self.title.value = H.card_title(TITLE)
        self.table.value = H.empty("No departures yet.")
        self.weather.value = ""


def _signed(value: float) -> str:
    return "—" if value != value else f"{value:+.0f}"


def ahead_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The look-ahead table's cells (``ahead.ahead_table`` rows): the flights of an hour the
    board does not hold whole yet "so far" (none yet: —), busier than usual by a quarter or
    more in amber, the usual delay coloured like every delay of the page."""
    vs = []
    for n, usual, diff in zip(frame["scheduled"], frame["usual"], frame["vs_usual"], strict=True):
        busy = diff == diff and usual > 0 and n >= 1.25 * usual
        color = H.WATCH if busy else H.NEUTRAL
        vs.append(f'<span style="color:{color}">{H.esc(_signed(diff))}</span>')
    return pd.DataFrame({
        "airport": frame["origin"],
        "hour": [f"{lab} <b>now</b>" if now else lab
                 for lab, now in zip(frame["label"], frame["now"], strict=True)],
        "scheduled": [H.num(v) if b == "complete" else f"{H.num(v)} so far" if b == "partial"
                      else "—" for v, b in zip(frame["scheduled"], frame["board"], strict=True)],
        "usual_txt": [H.num(v, 1) for v in frame["usual"]],
        "vs_txt": vs,
        "to_go": [H.num(v) if b != "not yet" else "—"
                  for v, b in zip(frame["not_departed"], frame["board"], strict=True)],
        "delay_txt": [f'<b style="color:{H.delay_color(v)}">{H.num(v, 0)}</b>'
                      for v in frame["usual_delay"]],
        "risk_txt": ["—" if r != r else f"{r:.0%} ({n})"
                     for r, n in zip(frame["risk"], frame["risk_n"], strict=True)],
    })  # fmt: skip


def _trend(values: list[float], arrow: str, worse: bool, digits: int) -> str:
    shown = " · ".join(H.num(v, digits) for v in values) or "—"
    color = H.WATCH if worse else H.NEUTRAL
    return f'{H.esc(shown)} <b style="color:{color}">{arrow}</b>' if arrow else H.esc(shown)


def weather_rows(trend: pd.DataFrame) -> pd.DataFrame:
    """The weather trend's cells (``ahead.weather_trend`` rows)."""
    if trend.empty:
        return pd.DataFrame({c: [] for c, _, _ in WEATHER_COLUMNS})
    return pd.DataFrame({
        "airport": trend["origin"],
        "hours": [" · ".join(f"{h.astimezone(domain.NEW_YORK):%H}h" for h in hours) or "none landed"
                  for hours in trend["hours_utc"]],
        "visib": [_trend(v, a, w, 1) for v, a, w in zip(
            trend["visib_km"], trend["visib_km_arrow"], trend["visib_km_worse"], strict=True)],
        "wind": [_trend(v, a, w, 0) for v, a, w in zip(
            trend["wind_speed_kmh"], trend["wind_speed_kmh_arrow"],
            trend["wind_speed_kmh_worse"], strict=True)],
        "precip": [_trend(v, a, w, 1) for v, a, w in zip(
            trend["precip_mm"], trend["precip_mm_arrow"], trend["precip_mm_worse"], strict=True)],
    })  # fmt: skip
