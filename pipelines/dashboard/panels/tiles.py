"""The KPI tiles: flights, on-time %, average departure delay, cancellations… of the selected
airports, airlines and days, each against the same weekday's average over the other loaded
days (today: up to the replay clock's hour), and a line saying what is compared with what.

Reads ``snap.kpis`` (the hourly rows: ``kpi_daily``'s, or the stream's newer ``kpi_hourly``
row of an hour; ``kpi_carrier_daily`` when airlines are selected) through
``analytics.kpi_summary``; keeps the summary in ``state.kpis`` for the "Needs attention" list.
Redrawn after every batch of the stream (``Dashboard.follow``). A click on a tile lists its
flights in "Find flights" (``search.TILE_SLICES``; a transparent button over the tile).
"""

from __future__ import annotations

import math

import ipywidgets as W

from .. import analytics
from .. import widgets as H
from ..filters import scope_text
from ..kpi_frames import Scope
from ..search import TILE_SLICES, Ask
from .base import Page, Panel, hit_box


class KpiTiles(Panel):
    """One tile per ``widgets.TILES`` (DOM ``data-kpi="<key>"``), and the note under them."""

    name = "KPIs"

    def __init__(self, page: Page) -> None:
        super().__init__(page)
        self.tiles = {
            key: W.HTML(layout=W.Layout(flex="1 1 0", min_width="170px")) for key, _ in H.TILES
        }
        self.note = self.target = W.HTML()
        boxes = [
            hit_box(tile, f"list the flights: {TILE_SLICES[key]}", self._drill(key))
            for key, tile in self.tiles.items()
        ]
        self.row = W.HBox(boxes, layout=W.Layout(width="100%"))
        self.row.add_class("tm-gap")

    def _drill(self, key: str):
        return lambda: self.page.drill(Ask("tile", key))

    def draw(self, scope: Scope) -> None:
        snap = self.snap
        kpis = analytics.kpi_summary(snap.kpis, scope, snap.clock)
        self.page.state.kpis = kpis
        for key, title in H.TILES:
            extra = ""
            if key == "cancelled" and math.isfinite(kpis.value.get("cancel_pct", math.nan)):
                extra = f"<small> ({kpis.value['cancel_pct']:.1f} %)</small>"
            self.tiles[key].value = H.kpi_tile(key, title, kpis, kpis.baseline_label, extra)
        bits = [scope_text(scope)]
        if kpis.cut_hour is not None:
            bits.append(f"today: flights scheduled up to {kpis.cut_hour:02d}:59")
        if kpis.baseline is not None:
            n = len(kpis.baseline_dates)
            same = ", same hours for today" if kpis.cut_hour is not None else ""
            bits.append(
                f"compared with the average {kpis.baseline_label} over {n} other loaded "
                f"day{'s' if n != 1 else ''}{same}"
            )
            if kpis.note:
                bits.append(kpis.note)
        else:
            bits.append(f"no comparison: {kpis.note}")
        if kpis.basis == "kpi_carrier_daily":
            bits.append("airline filter: whole days")
        self.note.value = f'<div class="tm-card-sub">{H.esc(" · ".join(bits))}</div>'

    def clear(self) -> None:
        for tile in self.tiles.values():
            tile.value = ""
        self.note.value = ""
