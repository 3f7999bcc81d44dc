"""What ``app.Dashboard`` does with the view in the URL (``share``): applies the view of the
request once the first snapshot is drawn (the airlines of a link are the snapshot's), and after
every change of a filter or of a panel's control writes the view back into a hidden
``<span data-tm-url="?...">`` that the page's template puts in the address bar
(``history.replaceState``: no reload, no history entry).

Preheated kernels (``pipelines.stack.voila``): the notebook ran and the page was drawn before
the request; once claimed, the kernel reads the request's query string through Voila
(``share.await_request``), applies it and, when its snapshot is older than
:data:`CLAIM_FRESH_S`, reads the database again, so a page opened from the pool shows data as
fresh as a page whose kernel started for it. Until the request's view is applied nothing is
written back (the link's own query string stays in the address bar).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

import ipywidgets as W

from pipelines.core.domain import ORIGINS

from . import share
from . import widgets as H
from .reading import running_loop
from .resync import Resync
from .share import View

log = logging.getLogger(__name__)
CLAIM_FRESH_S = 5.0  # a preheated kernel's snapshot older than this is read again on claim


class Sharing:
    """The view in the URL, for ``app.Dashboard`` (which defines what is declared here)."""

    refresh_s: float
    state: Any
    filters: Any
    ahead_panel: Any
    carriers_panel: Any
    board_panel: Any
    search_panel: Any
    refresh: Callable[..., None]
    resync: Resync
    guarded: Callable[[Callable[[], None]], None]
    now: Callable[[], datetime]
    _draw_scope: Callable[..., None]

    def _build_sharing(self) -> None:
        self.url = W.HTML()  # <span data-tm-url="?...">: the template puts it in the URL
        self.url.add_class("tm-url")
        self._view_pending: View | None = None  # the request's view, applied at the next draw
        self._view_ready = False  # the request's view is applied: changes are written back
        self._view_note = ""  # what the link held that the page did not understand
        for widget in self._view_widgets():
            widget.observe(lambda _: self._publish_view(), names="value")

    def _view_widgets(self) -> list[W.Widget]:
        f = self.filters
        return [
            f.w_airports, f.w_carriers, f.w_period, f.w_from, f.w_to, f.w_auto, f.w_interval,
            self.ahead_panel.w_hours, self.carriers_panel.w_metric, self.board_panel.w_sort,
            self.board_panel.w_late_only, self.search_panel.w_query,
        ]  # fmt: skip

    def view(self) -> View:
        """What the page shows now."""
        f = self.filters
        airports = tuple(f.w_airports.value)
        return View(
            airports=() if len(airports) in (0, len(ORIGINS)) else airports,
            airlines=tuple(f.w_carriers.value),
            period=f.w_period.value if f.follow_today else None,
            date_from=f.w_from.value,
            date_to=f.w_to.value,
            ahead=self.ahead_panel.w_hours.value,
            metric=self.carriers_panel.w_metric.value,
            sort=self.board_panel.w_sort.value,
            late=self.board_panel.w_late_only.value,
            find=self.search_panel.w_query.value.strip(),
            auto=f.w_auto.value,
            every=f.w_interval.value,
        )

    def apply_view(self, view: View) -> None:
        """Set every control to ``view`` (the caller draws the scope); airlines the snapshot
        does not hold are left out and said."""
        f = self.filters
        codes = [code for _, code in f.w_carriers.options]
        unknown = [c for c in view.airlines if c not in codes]
        with f.muted():
            f.w_airports.value = view.airports or ORIGINS
            f.w_carriers.value = tuple(c for c in view.airlines if c in codes)
            f.follow_today = view.period is not None
            if view.period is None:
                f.w_period.value = None
                f.w_from.value, f.w_to.value = view.date_from, view.date_to
            else:
                f.w_period.value = view.period
                f.apply_period(view.period)
        f.w_auto.value = view.auto
        if view.every is not None:
            f.w_interval.value = view.every
        self.ahead_panel.w_hours.value = view.ahead
        self.carriers_panel.w_metric.value = view.metric
        self.board_panel.w_sort.value = view.sort
        self.board_panel.w_late_only.value = view.late
        self.search_panel.w_query.value = view.find
        ignored = [*view.ignored, *(f"airline {c}" for c in unknown)]
        self._view_note = (
            "This link's " + ", ".join(ignored) + " not understood: left out" if ignored else ""
        )

    def _apply_pending(self) -> None:
        """Apply the request's view (after a read, before the scope is drawn)."""
        view, self._view_pending = self._view_pending, None
        if view is None:
            return
        self.apply_view(view)
        self._view_ready = True
        self._publish_view()

    def _publish_view(self) -> None:
        """The current view into ``data-tm-url`` (the template writes it in the address bar);
        a change by hand clears the note on what a link held."""
        if not self._view_ready:
            return
        query = share.encode(self.view(), default_every=int(self.refresh_s))
        note, self._view_note = self._view_note, ""
        self.url.value = f'<span data-tm-url="?{H.esc(query)}"></span>' + (
            H.banner(H.esc(note), "amber") if note else ""
        )

    def _await_claim(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """The request's view: read now in a kernel started for the request, or once Voila
        hands a preheated kernel its request."""
        if not share.preheated() or loop is None:
            self._view_pending = share.parse(share.request_query())
            return
        share.await_request(lambda query: loop.call_soon_threadsafe(self._claimed, query))

    def _claimed(self, query: str) -> None:
        """A preheated kernel was given its request: its view, drawn; its data, fresh; what
        that changes sent to the page again once it has built its widgets (``resync``: the
        page is loading while the claim draws, and may drop those updates)."""
        log.info("preheated kernel claimed, query %r", query)
        self.resync.start(running_loop())
        self._view_pending = share.parse(query)
        snap = self.state.snap
        if snap is not None and snap.has_data:
            self._apply_pending()
            self.guarded(self._draw_scope)
        if snap is None or (self.now() - snap.read_at).total_seconds() > CLAIM_FRESH_S:
            self.refresh(background=True)
