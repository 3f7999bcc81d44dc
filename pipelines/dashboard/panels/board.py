"""Live departures board: the flights of the selected airports and airlines scheduled within
an hour either side of the replay clock, late ones shaded (> 15 min, > 60 min, cancelled),
"so far" on the delay of a flight past its time and not departed, the model's delay risk of
a flight not departed yet (``delay_risk``, where the lake path scored it); sortable, "late /
cancelled only", and CSV exports of the board and of the airline leaderboard. Redrawn after
every batch of the stream (``Dashboard.follow``), in place: the table scrolls where it was.

Reads ``snap.board`` (the ``flights_by_hour`` documents around the clock, read after the
snapshot: until it arrives the panel says so, and a board of the previous read is marked
"updating…") through ``analytics.live_board``; keeps the scoped board in ``state.board`` for
the "Needs attention" list.
"""

from __future__ import annotations

import ipywidgets as W
import pandas as pd

from pipelines.core import domain

from .. import analytics, kpi_frames, live
from .. import widgets as H
from ..filters import scope_text
from .base import Page, Panel, gap

TITLE = "Live departures board"
SORTS = {
    "Scheduled time": (["sched_dep_utc"], [True]),
    "Delay (longest first)": (["delay", "sched_dep_utc"], [False, True]),
    "Status": (["status", "sched_dep_utc"], [True, True]),
    "Airline": (["carrier", "sched_dep_utc"], [True, True]),
    "Destination": (["dest", "sched_dep_utc"], [True, True]),
    "Airport": (["origin", "sched_dep_utc"], [True, True]),
}
COLUMNS = [
    ("sched_local", "Sched", ""),
    ("flight_no", "Flight", ""),
    ("airline", "Airline", ""),
    ("origin", "From", ""),
    ("dest_txt", "To", "html"),
    ("status", "Status", ""),
    ("delay_txt", "Delay (min)", "num"),
    ("risk_txt", "Risk > 15 min", "num"),
    ("dep_local", "Departed", ""),
    ("tailnum", "Tail", ""),
]


class BoardPanel(Panel):
    name = "Live board"
    key = "board"

    def __init__(self, page: Page) -> None:
        super().__init__(page)
        self.w_sort = W.Dropdown(options=list(SORTS), value="Scheduled time", description="Sort")
        self.w_sort.style.description_width = "40px"
        self.w_late_only = W.Checkbox(
            value=False, description="late / cancelled only", indent=False
        )
        self.title = W.HTML()
        self.board = self.target = W.HTML()
        # the widget scrolls, not its HTML: a redraw (after every batch) keeps the scroll
        self.board.add_class("tm-scroll")
        self.export = W.HTML()
        self.export.add_class("tm-export")
        controls = W.HBox(
            [self.w_sort, self.w_late_only, self.export], layout=W.Layout(align_items="center")
        )
        self.card(self.title, gap(controls), self.board, flex="3 1 0", min_width="720px")
        self.on_change(self.w_sort, self.draw_table)
        self.on_change(self.w_late_only, self.draw_table)

    def draw(self, scope: kpi_frames.Scope) -> None:
        snap, state = self.snap, self.page.state
        if snap.clock is None:
            state.board = None
            self.board.value = H.empty("No replay clock yet: the flight stream has not run.")
            return
        if snap.board is None:
            state.board = None
            self.title.value = H.card_title(TITLE)
            self.board.value = '<div class="tm-loading">Reading the departures around now…</div>'
            return
        state.board = analytics.live_board(snap.board, scope, snap.clock)
        self.draw_table()

    def draw_table(self) -> None:
        """Draw ``state.board`` again (sorted, filtered): a sort or "late only" change."""
        frame, snap = self.page.state.board, self.page.state.snap
        if frame is None or snap is None or snap.clock is None:
            return
        local = snap.clock.astimezone(domain.NEW_YORK)
        late = frame[(frame["delay"] > 15) | (frame["status"] == "cancelled")]
        self.title.value = H.card_title(
            TITLE,
            f"{H.esc(scope_text(self.page.scope(), dates=False))} · scheduled "
            f"{(local - live.BOARD_BEFORE):%H:%M} – {(local + live.BOARD_AFTER):%H:%M} "
            f"(now {local:%H:%M}) · {len(frame)} departures, <b>{len(late)} late or cancelled</b>"
            + self._age()
            + "<br>"
            + H.legend(
                [
                    ("#fff4e0", "> 15 min late"),
                    ("#fdecea", "> 60 min late"),
                    ("#e0e0e0", "cancelled"),
                ]
            ),
        )
        if self.w_late_only.value:
            frame = late
        by, ascending = SORTS[self.w_sort.value]
        frame = frame.sort_values(by, ascending=ascending, na_position="last", kind="stable")
        stamp = local.strftime("%Y%m%dT%H%M")
        export = frame.assign(sched_dep_utc=frame["sched_dep_utc"].astype(str))
        self.export.value = H.csv_link(
            export, f"tarmac_live_board_{stamp}.csv", "Live board CSV"
        ) + self._carriers_link(stamp)
        if frame.empty:
            self.board.value = H.empty("No departures scheduled within an hour of now.")
            return
        classes = [
            "tm-cancelled"
            if st == "cancelled"
            else "tm-verylate"
            if (pd.notna(d) and d > 60)
            else "tm-late"
            if (pd.notna(d) and d > 15)
            else ""
            for st, d in zip(frame["status"], frame["delay"], strict=True)
        ]
        shown = frame.assign(
            delay_txt=[
                "" if pd.isna(d) else f"{d:+.0f}" + (" so far" if k == "late, not departed" else "")
                for d, k in zip(frame["delay"], frame["delay_kind"], strict=True)
            ],
            dest_txt=[
                f"{H.esc(d)} <span style='color:#5f6b76'>{H.esc(str(n)[:26])}</span>"
                for d, n in zip(frame["dest"], frame["dest_name"], strict=True)
            ],
            airline=[str(n)[:24] for n in frame["carrier_name"]],
            # the model's probability of leaving > 15 min late, while it has not departed
            risk_txt=[
                f"{r:.0%}" if pd.notna(r) and st == "scheduled" else ""
                for r, st in zip(frame["delay_risk"], frame["status"], strict=True)
            ],
        )
        self.board.value = H.table(shown, COLUMNS, row_class=classes, attrs='data-table="board"')

    def unreadable(self, exc: BaseException) -> None:
        """The board's read failed: the previous one, if any, is not shown as current."""
        self.board.value = H.empty(
            f"The live board could not be read ({type(exc).__name__}); "
            "it is retried at the next refresh."
        )

    def clear(self) -> None:
        self.title.value = H.card_title(TITLE)
        self.board.value = H.empty("No departures yet.")
        self.export.value = ""

    def _age(self) -> str:
        """' · read 12:03:04' (wall), marked when an older board waits for the new one."""
        snap = self.page.state.snap
        if snap is None or snap.board_read_at is None:
            return ""
        at = snap.board_read_at.astimezone(domain.NEW_YORK).strftime("%H:%M:%S")
        old = snap.board_read_at < snap.read_at
        return f" · read {at}" + (" <i>(updating…)</i>" if old else "")

    def _carriers_link(self, stamp: str) -> str:
        frame = self.page.state.carriers
        if frame is None or frame.empty:
            return ""
        cols = ["carrier", "carrier_name", *domain.MEASURES, *kpi_frames.DERIVED]
        return H.csv_link(frame[cols].round(2), f"tarmac_airlines_{stamp}.csv", "Airlines CSV")
