"""When do delays build up? Average departure delay by weekday × scheduled local hour over
every loaded day up to the replay clock's, for the selected airports: the recurring bad
hours (the evening bank, Friday) the duty manager plans staff and gates around.

Reads ``snap.kpis`` (the ``kpi_profile`` sums minus the days after the clock) through
``analytics.weekday_hour_heatmap``; depends on the airports only, so a change of airlines or
days leaves it as drawn.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as W

from .. import analytics, kpi_frames
from .. import widgets as H
from ..charts import HeatmapChart
from ..state import period_text, until
from .base import Page, Panel, delay_legend, waiting


class HeatmapPanel(Panel):
    name = "Heat map"
    key = "heatmap"

    def __init__(self, page: Page) -> None:
        super().__init__(page)
        self.chart = HeatmapChart()
        self.title = self.target = W.HTML()
        self.card(self.title, self.chart.figure, flex="2 1 0", min_width="620px")

    def drawn_for(self, scope: kpi_frames.Scope) -> Any:
        return scope.airports

    def draw(self, scope: kpi_frames.Scope) -> None:
        snap = self.snap
        grid = analytics.weekday_hour_heatmap(snap.kpis, scope.airports, until(snap))
        self.chart.update(grid)
        sub = (
            f"avg departure delay (min) by weekday × scheduled local hour · every loaded day "
            f"({H.esc(period_text(snap))}) · "
            f"{H.esc(' + '.join(scope.airports) or 'all airports')} · grey: no departures"
            f"<br>{delay_legend()}"
        )
        self.title.value = H.card_title("When do delays build up?", sub)

    def clear(self) -> None:
        waiting(self.title)
