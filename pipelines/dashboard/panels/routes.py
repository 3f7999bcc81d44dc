"""Routes from New York: a map of every destination of the selected airports in the selected
months, coloured by average departure delay and sized by flights, beside the ten most
delayed routes (of those with at least 10 departures when there are any).

Reads ``snap.kpis`` ``kpi_route_monthly`` rows through ``analytics.routes``; depends on the
airports and the months only (a day change within the month leaves it as drawn). A click on a
route of the table lists its flights of the selected days in "Find flights".
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import ipywidgets as W

from .. import analytics, kpi_frames
from .. import widgets as H
from ..charts import RouteMap
from ..search import Ask
from .base import Page, Panel, delay_legend, gap, hit_box, waiting

WORST = 10  # routes in the table


class RoutesPanel(Panel):
    name = "Routes"
    key = "map"

    def __init__(self, page: Page) -> None:
        super().__init__(page)
        self.map = RouteMap()
        self.title = W.HTML()
        self.table = self.target = W.HTML()
        self.dests: list[str | None] = [None] * WORST  # the route of each row slot
        self.rows = [W.HTML(layout=W.Layout(flex="1 1 0")) for _ in range(WORST)]
        self.slots = [
            hit_box(row, "list the flights of this route", self._drill(i))
            for i, row in enumerate(self.rows)
        ]
        for slot in self.slots:
            slot.layout.display = "none"
        side = W.VBox([self.table, *self.slots], layout=W.Layout(flex="1 1 0", min_width="240px"))
        self.card(
            self.title,
            gap(W.HBox([self.map.figure, side])),
            flex="3 1 0",
            min_width="860px",
        )

    def drawn_for(self, scope: kpi_frames.Scope) -> Any:
        return scope.airports, tuple(scope.months() or ())

    def draw(self, scope: kpi_frames.Scope) -> None:
        frame = analytics.routes(self.snap.kpis, scope)
        self.map.update(frame)
        months = ", ".join(
            datetime.strptime(m, "%Y-%m").strftime("%b %Y") for m in scope.months() or []
        )
        unmapped = sorted(frame.loc[frame["dest_lat"].isna(), "dest"]) if len(frame) else []
        sub = (
            f"{H.esc(' + '.join(scope.airports) or 'all airports')} · {H.esc(months or 'all')}"
            " (monthly KPIs) · colour = avg departure delay · dot size = flights"
        )
        if unmapped:
            sub += f" · not on the map: {H.esc(', '.join(unmapped))}"
        sub += "<br>" + delay_legend()
        self.title.value = H.card_title("Routes from New York", sub)
        if frame.empty:
            self.table.value = H.empty("No routes in this selection.")
            self._rows([])
            return
        enough = frame["departed"] >= 10
        busy = frame[enough] if enough.any() else frame
        worst = busy.sort_values("avg_dep_delay", ascending=False).head(WORST)
        self.table.value = (
            '<div class="tm-card-sub">Most delayed routes (avg min)'
            + (" (≥ 10 departures)" if enough.any() else "")
            + " · click one for its flights</div>"
            '<div class="tm-route tm-route-head"><span>Destination</span>'
            '<span class="num">Flights</span><span class="num">Delay</span></div>'
        )
        self._rows(list(zip(worst["dest"], worst["dest_name"].fillna(""), worst["flights"],
                            worst["avg_dep_delay"], strict=True)))  # fmt: skip

    def _rows(self, routes: list[tuple[Any, Any, Any, Any]]) -> None:
        """Fill the row slots with ``routes`` (dest, name, flights, delay); hide the rest."""
        for i, (row, slot) in enumerate(zip(self.rows, self.slots, strict=True)):
            if i >= len(routes):
                self.dests[i] = None
                slot.layout.display = "none"
                continue
            dest, name, flights, delay = routes[i]
            self.dests[i] = str(dest)
            row.value = (
                f'<div class="tm-route" data-route="{H.esc(dest)}"><span><b>{H.esc(dest)}</b> '
                f'<span style="color:#5f6b76">{H.esc(str(name)[:18])}</span></span>'
                f'<span class="num">{H.num(flights)}</span><span class="num">'
                f'<b style="color:{H.delay_color(delay)}">{H.num(delay, 0)}</b></span></div>'
            )
            slot.layout.display = None

    def _drill(self, i: int):
        def click() -> None:
            if self.dests[i] is not None:
                self.page.drill(Ask("route", self.dests[i]))

        return click

    def clear(self) -> None:
        waiting(self.title)
        self._rows([])
