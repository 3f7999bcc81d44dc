"""The panels of the dashboard, one module each, in the order of the page: ``header`` (clock,
data freshness, job health), ``attention`` (what needs action), ``tiles`` (the KPIs),
``hourly``, ``airports``, ``carriers``, ``heatmap``, ``routes`` (the map), ``weather``,
``board`` (the live departures) and ``rejects``; ``base`` holds what they share.

Each panel builds its widgets once and draws ``page.state.snap`` for a scope; none reads the
database (``Dashboard`` does, then has them draw).
"""

from __future__ import annotations

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
from .tiles import KpiTiles
from .weather import WeatherPanel

__all__ = [
    "AirportsPanel", "AttentionPanel", "BoardPanel", "CarriersPanel", "Header", "HeatmapPanel",
    "HourlyPanel", "KpiTiles", "Page", "Panel", "RejectsPanel", "RoutesPanel", "WeatherPanel",
]  # fmt: skip
