"""The Voila dashboard of the airport operations control room (notebooks/dashboard.ipynb).

Data, pure and read-only: ``queries`` reads the serving collections (docs/data-model.md) by
``_id``, ``decode`` turns them into frames held by ``kpi_frames``, ``analytics`` and ``health``
compute the figures, ``geo`` shapes the routes of the map.

The page: ``app.Dashboard`` builds it, owns its ``state.State`` and the refresh (reads by
``reading.Reader`` in a thread, drawn on the kernel's loop), the auto-refresh loop and, between
two refreshes, the ``follow.Follower`` that redraws the board and the tiles after every batch
of the stream (when to read and which hourly row wins: ``live``);
``filters.FilterBar`` is the filter bar and its scope; ``share`` is the view in the URL (pure:
``parse``, ``encode``) and ``sharing`` what the page does with it (applied from the request,
also in a preheated kernel, written back for the template's ``history.replaceState``; the wall
mode is the template's, ``jupyter/voila/templates/tarmac/wall.html.j2``); ``messages`` is what
the banner says;
``panels`` has one module per part of the page (``header``: clock, freshness and jobs;
``attention``; ``tiles``: the KPIs; ``hourly``; ``airports``; ``carriers``; ``heatmap``;
``weather``; ``routes``: the map; ``board``: the live departures; ``rejects``), drawn with
``charts`` (bqplot) and ``widgets`` (HTML pieces). ``browser`` launches Chromium for the tests
and benchmarks.
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
