"""Airports: EWR, JFK and LGA side by side for the selection: average departure delay (bars,
the selected airports highlighted) and a table of flights, on-time %, cancellations and the
weather observed now (bold when visibility or wind is bad enough to slow departures).

Reads ``snap.kpis`` through ``analytics.airport_table`` and ``snap.weather_now`` (the newest
``weather_hourly`` observation of each airport).
"""

from __future__ import annotations

import ipywidgets as W
import pandas as pd

from .. import analytics, kpi_frames
from .. import widgets as H
from ..charts import AirportChart
from ..filters import scope_text
from .base import Page, Panel, waiting

BAD_VISIBILITY = ("< 1 mi", "1-3 mi")
STRONG_WIND = ("20-30 mph", "30+ mph")


class AirportsPanel(Panel):
    name = "Airports"
    key = "airports"

    def __init__(self, page: Page) -> None:
        super().__init__(page)
        self.chart = AirportChart()
        self.title = W.HTML()
        self.table = self.target = W.HTML()
        self.card(self.title, self.chart.figure, self.table, min_width="380px")

    def draw(self, scope: kpi_frames.Scope) -> None:
        snap = self.snap
        frame = analytics.airport_table(snap.kpis, scope)
        self.chart.update(frame, scope.airports)
        wx = snap.weather_now.set_index("origin") if len(snap.weather_now) else None
        rows = []
        for rec in frame.to_dict("records"):
            o = rec["origin"]
            w = wx.loc[o] if (wx is not None and o in wx.index) else None
            if w is not None and pd.notna(w.get("visib_band")):
                wet = "precip." if bool(w.get("precip")) else "dry"
                weather = f"{H.esc(w.get('visib_band'))} · {H.esc(w.get('wind_band'))} · {wet}"
                if w.get("visib_band") in BAD_VISIBILITY or w.get("wind_band") in STRONG_WIND:
                    weather = f'<b style="color:{H.ACT}">{weather}</b>'
            else:
                weather = '<span style="color:#7b8794">no observation</span>'
            rows.append(
                {
                    "airport": f"<b>{H.esc(o)}</b>",
                    "flights": H.num(rec["flights"]),
                    "on_time": H.num(rec["on_time_pct"], 0, " %"),
                    "cancelled": H.num(rec["cancelled"]),
                    "weather": weather,
                }
            )
        self.table.value = H.table(
            pd.DataFrame(rows),
            [
                ("airport", "Airport", "html"),
                ("flights", "Flights", "num"),
                ("on_time", "On time", "num"),
                ("cancelled", "Canc.", "num"),
                ("weather", "Weather now", "html"),
            ],
        )
        sub = f"{H.esc(scope_text(scope, carriers=True))} · bars: avg departure delay (min)"
        self.title.value = H.card_title("Airports", sub)

    def clear(self) -> None:
        waiting(self.title)
