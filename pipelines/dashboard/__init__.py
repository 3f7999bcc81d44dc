"""The Voila dashboard of the airport operations control room (notebooks/dashboard.ipynb).

``queries`` reads the serving collections (docs/data-model.md) by ``_id``, ``documents`` turns
them into frames held by ``kpis``, ``analytics`` and ``health`` compute the figures (pure),
``charts`` and ``widgets`` draw, ``app.Dashboard`` puts the page together.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import Dashboard

__all__ = ["Dashboard"]


def __getattr__(name: str) -> Any:
    # ipywidgets and bqplot are imported only when the page is built, not by `queries` users.
    if name == "Dashboard":
        from .app import Dashboard

        return Dashboard
    raise AttributeError(name)
