"""Airline leaderboard: the airlines of the selection ranked by average departure delay or
on-time % (the toggle), worst on top, coloured by delay, and the one slipping most named.

Reads ``snap.kpis`` ``kpi_carrier_daily`` rows (a live date's derived from its board buckets,
``Kpis.carrier_live``) through ``analytics.carrier_table``; keeps the
table in ``state.carriers`` (the "Needs attention" list and the board's "Airlines CSV"). A
click on an airline's bar lists its flights of the selected days in "Find flights".
"""

from __future__ import annotations

import ipywidgets as W
import pandas as pd

from pipelines.core import domain

from .. import analytics, kpi_frames
from .. import widgets as H
from ..charts import CarrierChart
from ..filters import scope_text
from ..search import Ask
from .base import Page, Panel, waiting


class CarriersPanel(Panel):
    name = "Airlines"
    key = "carriers"

    def __init__(self, page: Page) -> None:
        super().__init__(page)
        self.chart = CarrierChart()
        self.title = self.target = W.HTML()
        self.w_metric = W.ToggleButtons(
            options=[("Avg delay", "avg_dep_delay"), ("On-time %", "on_time_pct")],
            value="avg_dep_delay",
            style={"button_width": "90px"},
        )
        self.card(self.title, self.w_metric, self.chart.figure, min_width="340px")
        self.on_change(self.w_metric, self.redraw)
        self.chart.bars.on_element_click(lambda _, event: self.page.guarded(
            lambda: self.clicked(event)))  # fmt: skip

    def clicked(self, event: dict) -> None:
        """A bar was clicked (bqplot's ``element_click``: its ``x`` or ``index``)."""
        data = event.get("data") or {}
        codes = list(self.chart.bars.x)
        code = data.get("x")
        if code is None and isinstance(data.get("index"), int) and data["index"] < len(codes):
            code = codes[data["index"]]
        if code is not None:
            self.page.drill(Ask("carrier", str(code)))

    def draw(self, scope: kpi_frames.Scope) -> None:
        self.page.state.carriers = analytics.carrier_table(self.snap.kpis, scope)
        self.redraw()

    def redraw(self) -> None:
        """Draw ``state.carriers`` again (the metric changed; nothing is recomputed)."""
        frame = self.page.state.carriers
        if frame is None or frame.empty:
            frame = kpi_frames.derive(pd.DataFrame({c: [] for c in ("carrier", *domain.MEASURES)}))
            frame["carrier_name"] = []
        self.chart.update(frame, self.w_metric.value)
        worst = frame[frame["departed"] >= 5].sort_values("avg_dep_delay", ascending=False)
        sub = (
            f"{H.esc(scope_text(self.page.scope()))} · worst on top · colour = avg delay · "
            "click a bar for its flights"
        )
        if not worst.empty:
            w = worst.iloc[0]
            sub += (
                f"<br>slipping most: <b>{H.esc(w['carrier'])}</b> {H.esc(w['carrier_name'])} — "
                f"{w['avg_dep_delay']:.0f} min avg, {H.num(w['on_time_pct'], 0)} % on time"
            )
        elif frame.empty or frame["departed"].sum() == 0:
            sub += " · <b>no departures in this selection</b>"
        self.title.value = H.card_title("Airline leaderboard", sub)

    def clear(self) -> None:
        waiting(self.title)
