"""Is the weather the cause? Average departure delay by the weather at the airport in the
scheduled hour (visibility, precipitation, wind) over every loaded day up to the replay
clock's, for the selected airports: whether today's delays are what such weather brings.

Reads ``snap.kpis`` (``kpi_daily`` weather-impact rows and the ``kpi_profile`` sums, a live
date's rows derived from its board buckets) through ``analytics.weather_impact``; depends on
the airports and on those live rows only.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as W

from .. import analytics, kpi_frames
from .. import widgets as H
from ..charts import WeatherCharts
from ..state import period_text, until
from .base import Page, Panel, waiting


class WeatherPanel(Panel):
    name = "Weather impact"
    key = "weather"

    def __init__(self, page: Page) -> None:
        super().__init__(page)
        self.charts = WeatherCharts()
        self.title = self.target = W.HTML()
        self.card(
            self.title,
            W.VBox(self.charts.figures, layout=W.Layout(width="100%")),
            flex="2 1 0",
            min_width="440px",
        )

    def drawn_for(self, scope: kpi_frames.Scope) -> Any:
        return scope.airports, self.snap.kpis.live_key

    def draw(self, scope: kpi_frames.Scope) -> None:
        snap = self.snap
        tables = analytics.weather_impact(snap.kpis, scope.airports, until(snap))
        self.charts.update(tables)
        n = float(tables["precip"]["flights"].sum())
        sub = (
            "avg departure delay (min) by the weather at the airport in the scheduled hour · "
            f"every loaded day ({H.esc(period_text(snap))}) · "
            f"{H.esc(' + '.join(scope.airports) or 'all airports')} · "
            f"{H.num(n)} flights with known weather"
        )
        self.title.value = H.card_title("Is the weather the cause?", sub)

    def clear(self) -> None:
        waiting(self.title)
