"""Delay by hour: average departure delay (line) and flights (bars, the replay clock's hour
darker) per scheduled local hour of the selected airports and days, against the 15 min
on-time limit. Where the delays of the day are now and where they are heading.

Reads ``snap.kpis`` hourly rows (``kpi_daily``, or the stream's newer ``kpi_hourly`` row of an
hour) through ``analytics.hourly_series``; they are per airport, so an airline filter does not
apply (the subtitle says so).
"""

from __future__ import annotations

import ipywidgets as W
import pandas as pd

from .. import analytics, kpi_frames
from .. import widgets as H
from ..charts import HourlyChart
from ..filters import scope_text
from .base import Page, Panel, waiting


class HourlyPanel(Panel):
    name = "Delay by hour"
    key = "hourly"

    def __init__(self, page: Page) -> None:
        super().__init__(page)
        self.chart = HourlyChart()
        self.title = self.target = W.HTML()
        self.card(self.title, self.chart.figure, flex="2 1 0", min_width="560px")

    def draw(self, scope: kpi_frames.Scope) -> None:
        snap = self.snap
        frame = analytics.hourly_series(snap.kpis, scope)
        current = None
        if snap.clock is not None and len(frame):
            hour = pd.Timestamp(snap.clock).floor("h")
            match = frame.loc[frame["hour_utc"] == hour, "label"]
            current = match.iloc[0] if len(match) else None
        self.chart.update(frame, current)
        note = (
            " · airline filter not applied (hourly KPIs are per airport)" if scope.carriers else ""
        )
        sub = (
            f"{H.esc(scope_text(scope, carriers=False))} · scheduled local hour · "
            f"line: avg departure delay · bars: flights (dark: now) · dashed: 15 min{note}"
        )
        if frame.empty:
            sub += " · <b>no flights in this selection</b>"
        self.title.value = H.card_title("Delay by hour", sub)

    def clear(self) -> None:
        waiting(self.title)
