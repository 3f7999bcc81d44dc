"""Routes from New York: a map of every destination of the selected airports in the selected
months, coloured by average departure delay and sized by flights, beside the ten most
delayed routes (of those with at least 10 departures when there are any).

Reads ``snap.kpis`` ``kpi_route_monthly`` rows through ``queries.routes``; depends on the
airports and the months only (a day change within the month leaves it as drawn).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import ipywidgets as W
import pandas as pd

from .. import queries as Q
from .. import widgets as H
from ..charts import RouteMap
from .base import Page, Panel, delay_legend, gap, waiting


class RoutesPanel(Panel):
    name = "Routes"
    key = "map"

    def __init__(self, page: Page) -> None:
        super().__init__(page)
        self.map = RouteMap()
        self.title = W.HTML()
        self.table = self.target = W.HTML(layout=W.Layout(flex="1 1 0", min_width="240px"))
        self.card(
            self.title,
            gap(W.HBox([self.map.figure, self.table])),
            flex="3 1 0",
            min_width="860px",
        )

    def drawn_for(self, scope: Q.Scope) -> Any:
        return scope.airports, tuple(scope.months() or ())

    def draw(self, scope: Q.Scope) -> None:
        frame = Q.routes(self.snap.kpis, scope)
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
            return
        enough = frame["departed"] >= 10
        busy = frame[enough] if enough.any() else frame
        worst = busy.sort_values("avg_dep_delay", ascending=False).head(10)
        shown = pd.DataFrame(
            {
                "dest": [
                    f'<b>{H.esc(d)}</b> <span style="color:#5f6b76">{H.esc(str(n)[:18])}</span>'
                    for d, n in zip(worst["dest"], worst["dest_name"].fillna(""), strict=True)
                ],
                "flights": [H.num(v) for v in worst["flights"]],
                "delay": [
                    f'<b style="color:{H.delay_color(v)}">{H.num(v, 0)}</b>'
                    for v in worst["avg_dep_delay"]
                ],
            }
        )
        self.table.value = (
            '<div class="tm-card-sub">Most delayed routes (avg min)'
            + (" (≥ 10 departures)" if enough.any() else "")
            + "</div>"
            + H.table(
                shown,
                [
                    ("dest", "Destination", "html"),
                    ("flights", "Flights", "num"),
                    ("delay", "Delay", "html"),
                ],
            )
        )

    def clear(self) -> None:
        waiting(self.title)
