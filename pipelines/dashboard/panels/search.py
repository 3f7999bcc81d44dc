"""Find flights: a search box (a flight number ``UA1545`` or ``1545``, a tail number
``N14228``) and the flights a click on the page asks for (a KPI tile, an airline of the
leaderboard, a route of the map's table), listed with date, scheduled time, flight, tail,
origin, destination, status and delay. Which flight is that, where is that aircraft, which
flights make up that figure.

Reads, in a thread, the board buckets of the selected days (at most ``search.SEARCH_DAYS``,
the latest up to the clock's day: the line above the list says which), every hour at the
three airports, each resolved with its hot bucket, by ``_id`` (``lookups.read_day_flights``);
kept for the snapshot, so the next question on the same days reads nothing.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as W

from pipelines.core import domain

from .. import kpi_frames
from .. import widgets as H
from ..filters import scope_text
from ..lookups import DayFlights, read_day_flights
from ..reading import attempt, read_then_draw, running_loop
from ..search import LISTED, SEARCH_DAYS, Ask, answer, listing, search_days
from .base import Page, Panel, gap

TITLE = "Find flights"
COLUMNS = [
    ("date", "Date", ""),
    ("sched", "Sched", ""),
    ("flight_no", "Flight", ""),
    ("tailnum", "Tail", ""),
    ("origin", "From", ""),
    ("dest", "To", ""),
    ("status", "Status", ""),
    ("delay", "Delay (min)", "num"),
]


class SearchPanel(Panel):
    name = "Find flights"
    key = "search"

    def __init__(self, page: Page) -> None:
        super().__init__(page)
        self.flights: DayFlights | None = None
        self._for: Any = None  # the snapshot the flights were read for
        self.ask: Ask | None = None
        self.w_query = W.Text(
            placeholder="UA1545, 1545 or N14228", continuous_update=False,
            layout=W.Layout(width="240px"),
        )  # fmt: skip
        self.w_query.add_class("tm-search")
        self.w_find = W.Button(description="Find", layout=W.Layout(width="80px"))
        self.w_find.add_class("tm-find")
        self.title = W.HTML(H.card_title(TITLE, "a flight or tail number; or click a tile, an "
                                                "airline bar or a route"))  # fmt: skip
        self.note = W.HTML()
        self.listing = self.target = W.HTML()
        self.listing.add_class("tm-scroll")
        self.card(
            self.title, gap(W.HBox([self.w_query, self.w_find])), self.note, self.listing,
            flex="2 1 0", min_width="560px",
        )  # fmt: skip
        self.w_find.on_click(lambda _: self.page.guarded(self.find))
        self.w_query.observe(lambda _: self.page.guarded(self.find), names="value")

    def find(self) -> None:
        """Search what the box holds (Enter, or "Find")."""
        if self.w_query.value.strip():
            self.show(Ask("search", self.w_query.value))

    def show(self, ask: Ask) -> None:
        """List the flights ``ask`` names, reading the days' buckets first when they are not
        held for this snapshot."""
        snap = self.snap
        self.ask = ask
        days = tuple(search_days(kpi_frames.date_range(*self._range()), snap.clock_day))
        if self.flights is not None and self._for is snap and self.flights.days == days:
            self.render()
            return
        self.note.value = '<div class="tm-loading">Reading the flights of ' + H.esc(
            ", ".join(days)) + "…</div>"  # fmt: skip
        timings = self.page.reader.timings

        def arrive(result: DayFlights | BaseException) -> None:
            if isinstance(result, BaseException):
                self.note.value = H.empty(
                    f"The flights could not be read ({type(result).__name__}); try again."
                )
                return
            self.flights, self._for = result, snap
            self.page.guarded(self.render)

        read_then_draw(
            running_loop(),
            lambda: attempt(
                lambda: read_day_flights(self.page.reader.connect(), days),
                "flights read",
                timings,
                "search_read",
            ),  # fmt: skip
            arrive,
        )

    def _range(self) -> tuple[Any, Any]:
        scope = self.page.scope()
        if scope.date_from is None or scope.date_to is None:
            day = kpi_frames.local_date(self.snap.clock) if self.snap.clock else None
            return day, day
        return scope.date_from, scope.date_to

    def render(self) -> None:
        """List the flights of the current question from the flights held."""
        ask, held, snap = self.ask, self.flights, self.page.state.snap
        if ask is None or held is None or snap is None:
            return
        scope = self.page.scope()
        found = answer(held.flights, ask, scope, snap.clock)
        selected = kpi_frames.date_range(*self._range()) if all(self._range()) else []
        capped = len([d for d in selected if not snap.clock_day or d <= snap.clock_day]) > len(
            held.days)  # fmt: skip
        days = ", ".join(held.days) or "—"
        where = scope_text(scope, carriers=ask.kind != "search", dates=False)
        note = (
            f'<div class="tm-card-sub" data-found="{len(found)}" data-ask="{H.esc(ask.kind)}">'
            f"<b>{H.esc(ask.label)}</b> · {len(found)} flight{'s' if len(found) != 1 else ''}"
            f" · {H.esc(where)} · searched {H.esc(days)} ({held.reads.total()} lookups by _id "
            f"in {held.seconds * 1000:.0f} ms)"
        )
        if capped:
            note += f" · <b>only the last {SEARCH_DAYS} days of the selection are searched</b>"
        if len(found) > LISTED:
            note += f" · the first {LISTED} listed"
        if ask.kind != "search" and snap.clock is not None:
            note += (
                f" · today up to {snap.clock.astimezone(domain.NEW_YORK):%H}:59, as the tiles count"
            )
        # the list first, the note last: when the browser shows the note, the list is there
        if found.empty:
            self.listing.value = H.empty("No flight found in those days.")
        else:
            self.listing.value = H.table(listing(found), COLUMNS, attrs='data-table="flights"')
        self.note.value = note + "</div>"

    def clear(self) -> None:
        self.note.value = ""
        self.listing.value = ""
