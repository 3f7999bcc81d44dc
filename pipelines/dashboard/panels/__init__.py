"""The panels of the dashboard, one module each, in the order of the page: ``header`` (clock,
data freshness, job health, what the data holds), ``attention`` (what needs action),
``tiles`` (the KPIs), ``ahead`` (the next hours), ``search`` (find flights, drill-down),
``hourly``, ``airports``, ``carriers``, ``heatmap``, ``routes`` (the map), ``weather``,
``board`` (the live departures) and ``rejects``; ``base`` holds what they share.

Each panel builds its widgets once and draws ``page.state.snap`` for a scope; none reads the
database but ``ahead`` and ``search``, which ask the page's reader (``page.reader``, in a
thread) for their own documents by ``_id`` (``dashboard.lookups``); ``Dashboard`` reads the
rest, then has them draw.
"""

from __future__ import annotations

from .ahead import AheadPanel
from .airports import AirportsPanel
from .attention import AttentionPanel
from .base import Page, Panel
from .board import BoardPanel
from .carriers import CarriersPanel
from .header import Header
from .heatmap import HeatmapPanel
from .hourly import HourlyPanel
from .rejects import RejectsPanel
from .routes import RoutesPanel
from .search import SearchPanel
from .tiles import KpiTiles
from .weather import WeatherPanel

__all__ = [
    "AheadPanel", "AirportsPanel", "AttentionPanel", "BoardPanel", "CarriersPanel", "Header",
    "HeatmapPanel", "HourlyPanel", "KpiTiles", "Page", "Panel", "RejectsPanel", "RoutesPanel",
    "SearchPanel", "WeatherPanel",
]  # fmt: skip
