"""The Voila dashboard: a ``Dashboard`` builds the page once, ``refresh()`` re-reads MongoDB and
redraws every panel in place (bqplot marks' data, HTML values), filters redraw what depends on
them. Between two refreshes (every ``refresh_s``, 30 s) the page follows the stream: every
``live_s`` (1 s) a ``follow.Follower`` thread polls the stream's state by ``_id`` and, when
a batch landed, the board, the KPI tiles, the header and "Needs attention" are redrawn from
the board buckets and ``kpi_hourly`` rows it read (``follow()`` does one poll in the caller).
Nothing here lets a traceback reach the page: an unreachable database, an empty database or a
failing panel becomes a message where the panel is.

    from pipelines.dashboard import Dashboard
    Dashboard.from_env("local", refresh_s=30).show()

The ``Dashboard`` owns the state, the refresh (reads by ``reading.Reader``, in a thread inside a
kernel), the auto-refresh loop and the follower; the filter bar is a ``filters.FilterBar``,
each part of the page a ``panels.Panel``, the banner's texts are in ``messages``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import ipywidgets
import pandas as pd

from pipelines.core import config, domain
from pipelines.core.config import Settings

from . import kpi_frames, messages, panels, queries, widgets
from .filters import FilterBar
from .follow import Follower, Following
from .health import DEFAULT_FRESHNESS, FreshnessRule
from .live import LIVE_S
from .reading import UNREACHABLE, Reader, log, read_then_draw, running_loop
from .resync import Resync
from .search import Ask
from .sharing import Sharing
from .state import State

# the cards of the page, row by row (the keys of ``Dashboard.panels``)
ROWS = (
    ("ahead", "search"), ("hourly", "airports"), ("carriers", "heatmap"), ("map", "weather"),
    ("board", "rejects"),
)  # fmt: skip


class Dashboard(Following, Sharing):
    """The airport operations dashboard of one env (its MongoDB serving database)."""

    def __init__(
        self,
        settings: Settings,
        refresh_s: float = 30.0,
        freshness_rules: dict[str, FreshnessRule] | None = None,
        now: Callable[[], datetime] | None = None,
        live_s: float = LIVE_S,
    ) -> None:
        self.settings = settings.for_reader()  # the read-only user where auth is on
        self.refresh_s = refresh_s
        self.freshness_rules = freshness_rules or DEFAULT_FRESHNESS
        self._now = now or (lambda: datetime.now(UTC))
        self.state = State()
        self._task: asyncio.Task | None = None
        self.last_timings: dict[str, float] = {}
        self.panel_timings: dict[str, float] = {}  # seconds each panel took to draw, last time
        self.reader = Reader(self.settings, self.now, self.last_timings)
        self._redraws = 0
        self._drawn: dict[str, Any] = {}  # panel -> inputs it shows (skip identical redraws)
        self._pending: set[str] = set()  # KPI dates / months being read on demand
        self.follower = Follower(self.settings, live_s, self._live_view, self._apply_live, self.now)
        self.live_draws = 0  # batches of the stream drawn between refreshes
        self._build()

    @classmethod
    def from_env(cls, env: str | None = None, **kwargs: Any) -> Dashboard:
        """Dashboard of ``env`` (default ``$TARMAC_ENV`` or local; ``$MONGO_READER_URI``,
        ``$MONGO_URI`` and ``$MONGO_DATABASE`` override the parameters file)."""
        return cls(config.load(env), **kwargs)

    # ------------------------------------------------------------------------------ layout

    def _build(self) -> None:
        self.banner = ipywidgets.HTML()
        self.stamp = ipywidgets.HTML()  # data-redraw: a counter for tests and benchmarks
        self.stamp.add_class("tm-stamp")  # their observers look inside it, not the whole page
        self.filters = FilterBar(
            self.refresh_s,
            snapshot=lambda: self.state.snap,
            on_scope=lambda: self.guarded(self._draw_scope),
        )
        f = self.filters  # its widgets are the page's too, as they always were
        self.w_airports, self.w_carriers, self.w_period = f.w_airports, f.w_carriers, f.w_period
        self.w_from, self.w_to, self.busy = f.w_from, f.w_to, f.busy
        self.w_auto, self.w_interval = f.w_auto, f.w_interval
        self.w_refresh, self.w_reset = f.w_refresh, f.w_reset

        self.header_panel = panels.Header(self)
        self.attention_panel = panels.AttentionPanel(self)
        self.tiles_panel = panels.KpiTiles(self)
        self.board_panel = panels.BoardPanel(self)
        self.rejects_panel = panels.RejectsPanel(self)
        self.ahead_panel = panels.AheadPanel(self)
        self.search_panel = panels.SearchPanel(self)  # drawn when asked (a search, a click)
        self.carriers_panel = panels.CarriersPanel(self)
        self.airports_panel = panels.AirportsPanel(self)
        self.weather_panel = panels.WeatherPanel(self)
        # drawn in this order for a scope: the attention list last, from what they kept
        self.scoped: list[panels.Panel] = [
            self.tiles_panel,
            self.ahead_panel,
            panels.HourlyPanel(self),
            self.carriers_panel,
            self.airports_panel,
            # these depend on the airports (and the routes on the months) only: a carrier or
            # day change within the month leaves them as they are
            panels.HeatmapPanel(self),
            self.weather_panel,
            panels.RoutesPanel(self),
            self.board_panel,
        ]
        # drawn again after a batch of the stream when a live date's rows moved
        self.day_panels = [self.carriers_panel, self.airports_panel, self.weather_panel]
        cards = [*self.scoped, self.search_panel, self.rejects_panel]
        self.panels: dict[str, ipywidgets.Box] = {p.key: p.box for p in cards if p.box is not None}
        self.header = self.header_panel.html
        self.attention = self.attention_panel.html
        self.rejects = self.rejects_panel.html
        self._build_sharing()
        for panel in (self.search_panel, self.rejects_panel):  # not on the wall (template)
            self.panels[panel.key].add_class("tm-nowall")

        row = {"width": "100%", "align_items": "stretch", "flex_flow": "row wrap"}
        self.root = ipywidgets.VBox(
            [
                ipywidgets.HTML(widgets.CSS),
                self.header,
                self.banner,
                self.filters.box,
                self.attention,
                self.tiles_panel.row,
                self.tiles_panel.note,
                *(
                    ipywidgets.HBox([self.panels[k] for k in keys], layout=ipywidgets.Layout(**row))
                    for keys in ROWS
                ),
                self.stamp,
                self.url,
            ],
            layout=ipywidgets.Layout(
                padding="8px 14px", width="100%", max_width="1600px", margin="0 auto"
            ),
        )
        self.root.add_class("tm-root")
        self.resync = Resync(self.root)  # what a loading page may drop, sent again
        self.root.children = (*self.root.children, self.resync.ready)
        self.root.add_class("tm-gap")
        for child in self.root.children:
            if isinstance(child, ipywidgets.HBox):
                child.add_class("tm-gap")
                child.add_class("tm-row")  # a slide of the wall mode (the template's script)

        self.w_refresh.on_click(lambda _: self.refresh())
        self.w_reset.on_click(lambda _: self.reset_filters())
        self.w_auto.observe(lambda _: self._schedule(), names="value")
        self.w_interval.observe(lambda _: self._schedule(), names="value")

    # ------------------------------------------------------------------------- public API

    def show(self) -> ipywidgets.VBox:
        """Display the page, read and draw it in the view of the request's URL (a preheated
        kernel: once Voila hands it its request), start the auto-refresh; what changes while
        the page loads its widgets is sent again once it has (``resync``)."""
        from IPython.display import display

        display(self.root)
        self._await_claim(running_loop())
        self.refresh()  # the first one in this call: drawn before the page asks for its state
        self.resync.start(running_loop())  # a preheated kernel starts again when claimed
        self._schedule()
        return self.root

    def scope(self) -> kpi_frames.Scope:
        """What the filters select."""
        return self.filters.scope()

    def now(self) -> datetime:
        """The wall clock (UTC; ``now`` of the constructor in tests)."""
        return self._now()

    def refresh(self, background: bool | None = None) -> None:
        """Re-read MongoDB and redraw every panel, in two steps: the snapshot (KPIs, state,
        runs, rejects), then the live board (the flights around the clock, from the
        ``flights_by_hour`` documents of those hours). Of the KPI documents already read only
        those whose ``updated_at`` moved (``kpi_profile.days``) are read again; dates the
        filters select later are read on demand (:meth:`_draw_scope`).

        The first snapshot is read in the caller (the page has its figures when ``show``
        returns); inside a kernel every other read runs in a thread and is drawn on the
        kernel's event loop, so the page and its filters stay responsive meanwhile. A refresh
        still running is not doubled."""
        if self.state.loading:
            return
        loop = running_loop()
        if background is None:
            background = self.state.snap is not None and loop is not None
        self.state.loading = True
        self.busy.value = messages.busy("reading MongoDB…")
        # what the reader needs from the page, taken here (the read may run in a thread)
        dates, previous = self.scope().dates() or [], self.state.snap
        read_then_draw(
            loop if background else None,
            lambda: self.reader.snapshot(dates, previous),
            self._apply,
            self._stop_loading,
        )

    def drill(self, ask: Ask) -> None:
        """List the flights ``ask`` names in "Find flights" (a search, a click on a tile, an
        airline or a route)."""
        self.guarded(lambda: self.search_panel.show(ask))

    def reset_filters(self) -> None:
        self.filters.reset()
        self.guarded(self._draw_scope)

    def guarded(self, draw: Callable[[], None]) -> None:
        """Run a redraw from a widget callback; errors become a banner, never a traceback."""
        snap = self.state.snap
        if snap is None or not snap.has_data:
            return
        try:
            draw()
        except Exception as exc:  # noqa: BLE001
            log.exception("dashboard redraw failed")
            self.banner.value = messages.redraw_failed(exc)

    # ---------------------------------------------------------------------------- reading

    def _stop_loading(self) -> None:
        self.state.loading = False

    def _apply(self, result: queries.Snapshot | BaseException) -> None:
        """Draw a snapshot (or the message of a failed read) into the page, then have the
        live board read."""
        started = time.perf_counter()
        board_next = False
        try:
            if isinstance(result, UNREACHABLE):
                self._show_offline(result)
                return
            if isinstance(result, BaseException):
                self.banner.value = messages.read_failed(result)
                return
            previous = self.state.snap
            if previous is not None and previous.board is not None:
                result.board = previous.board  # shown (marked as such) until the new one
                result.board_read_at = previous.board_read_at
            if previous is not None:  # the stream's hours read since stay laid over
                result.kpis = result.kpis.with_hot(previous.kpis.hot, previous.kpis.live)
            self.state.snap, self.state.online = result, True
            self._drawn.clear()  # new data: everything is drawn again
            self.header_panel.draw()
            self.filters.sync(self.state.snap)
            if not result.has_data:
                self._show_empty()
                return
            self._apply_pending()  # the view of the request's URL, once
            self.banner.value = ""
            self._draw_scope(rejects=True)
            board_next = result.clock is not None
        except Exception as exc:  # noqa: BLE001 - the page must never show a traceback
            log.exception("dashboard draw failed")
            self.banner.value = messages.draw_failed(exc)
        finally:
            self.last_timings["draw"] = time.perf_counter() - started
            stamp = datetime.now(UTC).astimezone(domain.NEW_YORK).strftime("%H:%M:%S")
            read = self.last_timings.get("read", 0.0)
            self.busy.value = messages.busy(f"read at {stamp} (wall) in {read:.1f} s")
            if board_next:
                self._read_board()
            else:
                self.state.loading = False

    def _read_board(self) -> None:
        """Read the flights around the snapshot's clock (in a thread inside a kernel)."""
        snap = self.state.snap
        assert snap is not None
        read_then_draw(
            running_loop(),
            lambda: self.reader.board(snap.clock),
            lambda result: self._apply_board(snap, result),
            self._stop_loading,
        )

    def _draw_scope(self, rejects: bool = False) -> None:
        """Redraw the filters' scope; the KPI documents it needs that the snapshot does not
        hold yet (dates selected since, their months) are read first, by ``_id``, and kept."""
        snap = self.state.snap
        assert snap is not None
        needed_dates, needed_months = snap.needed(self.scope())
        dates = [d for d in needed_dates if d not in self._pending]
        months = [m for m in needed_months if m not in self._pending]
        if dates or months:
            self._read_more(snap, dates, months, rejects)  # draws when they are read
        elif not needed_dates and not needed_months:
            self._redraw(rejects=rejects)
        # else: what it needs is being read; the scope is drawn when it arrives

    def _read_more(
        self, snap: queries.Snapshot, dates: list[str], months: list[str], rejects: bool
    ) -> None:
        """Read ``dates`` / ``months`` of the KPIs (in a thread inside a kernel), add them to
        ``snap`` and draw the scope again."""
        asked = {*dates, *months}
        self._pending |= asked
        self.busy.value = messages.busy(f"reading {len(dates)} day(s), {len(months)} month(s)…")

        def apply(result: kpi_frames.Rows | BaseException) -> None:
            self._pending -= asked
            if snap is not self.state.snap:
                # a newer snapshot landed meanwhile: it skipped what was being read here, so
                # its scope is drawn now, reading again what it still lacks
                if self.state.snap is not None:
                    self.guarded(lambda: self._draw_scope(rejects))
                return
            if isinstance(result, BaseException):
                self.busy.value = ""
                self.banner.value = messages.more_failed(result)
                return
            took = self.last_timings.get("read_more", 0.0)
            self.busy.value = messages.busy(f"read {len(asked)} more in {took:.1f} s")
            snap.add(result)
            self.guarded(lambda: self._draw_scope(rejects))

        read_then_draw(running_loop(), lambda: self.reader.more(dates, months), apply)

    def _apply_board(self, snap: queries.Snapshot, result: pd.DataFrame | BaseException) -> None:
        self.state.loading = False
        if snap is not self.state.snap:  # a newer snapshot is drawn: this board is stale
            return
        if isinstance(result, BaseException):
            self.board_panel.unreadable(result)
            return
        snap.board, snap.board_read_at = result, self._now()
        self.guarded(lambda: self._redraw(panels=(self.board_panel.key,)))

    # -------------------------------------------------------------------------- drawing

    def _redraw(self, rejects: bool = False, panels: tuple[str, ...] | None = None) -> None:
        """Redraw the panels of the current scope (``panels``: only those, by card key), then
        the attention list."""
        started = time.perf_counter()
        scope = self.scope()
        steps = [*self.scoped, self.rejects_panel] if rejects else list(self.scoped)
        if panels is not None:
            steps = [panel for panel in steps if panel.key in panels]
        for panel in steps:
            self._draw_panel(panel, scope)
        self._draw_panel(self.attention_panel, scope)
        self._follow_scope(scope)
        self._stamp("redraw", started)

    def _stamp(self, what: str, started: float) -> None:
        """Count a redraw (``what``: its timing's name) in the stamp, sent last: when the
        browser shows it, every update of this redraw has arrived (``data-redraw`` counts
        refreshes and scope changes, ``data-live`` the stream's batches drawn; ``data-read-ms``
        the last snapshot's whole read, ``data-health-ms`` its job-health read: ``bench/soak.py``
        reads them)."""
        self.last_timings[what] = time.perf_counter() - started
        if what == "redraw":
            self._redraws += 1
        snap = self.state.snap  # its own reads' timings: the job-health read among them
        health = snap.timings.get("pipeline_health", 0.0) if snap is not None else 0.0
        self.stamp.value = (
            f'<span data-redraw="{self._redraws}" data-live="{self.live_draws}" '
            f'data-redraw-ms="{self.last_timings[what] * 1000:.1f}" '
            f'data-read-ms="{self.last_timings.get("read", 0.0) * 1000:.1f}" '
            f'data-health-ms="{health * 1000:.1f}"></span>'
        )

    def _draw_panel(self, panel: panels.Panel, scope: kpi_frames.Scope) -> None:
        """Draw one panel (unless it already shows what it depends on of ``scope``, for this
        snapshot); a failure stays in that panel."""
        started = time.perf_counter()
        try:
            key = panel.drawn_for(scope)
            if key is None:
                panel.draw(scope)
            elif self._drawn.get(panel.name) != key:
                panel.draw(scope)
                self._drawn[panel.name] = key
        except Exception as exc:  # noqa: BLE001
            log.exception("panel %s failed", panel.name)
            panel.target.value = widgets.empty(
                f"{panel.name}: not available ({type(exc).__name__}); see the Voila log"
            )
        finally:
            self.panel_timings[panel.name] = time.perf_counter() - started

    def _show_offline(self, exc: BaseException) -> None:
        self.state.online = False
        self.banner.value = messages.offline(exc, kept=self.state.snap is not None)
        self.header_panel.placeholder()

    def _show_empty(self) -> None:
        self.banner.value = messages.no_data(self.settings, self.state.snap)
        for panel in (self.attention_panel, *self.scoped):
            panel.clear()
        self._draw_panel(self.rejects_panel, self.scope())

    # ----------------------------------------------------------------------- auto-refresh

    def _schedule(self) -> None:
        """(Re)start the auto-refresh task on the kernel's event loop and the follower's
        thread, or stop them."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        loop = running_loop()
        if not self.w_auto.value or loop is None:
            self.follower.stop()
            return
        self._task = loop.create_task(self._loop(max(5, int(self.w_interval.value or 30))))
        if not self.follower.running:
            self.follower.start(loop)

    async def _loop(self, interval: int) -> None:
        while True:
            # A slow read (FerretDB scans whole collections) must not keep the database busy:
            # wait at least 4 x the last read, i.e. the page takes at most ~20 % of its time.
            await asyncio.sleep(max(interval, 4.0 * self.last_timings.get("read", 0.0)))
            try:
                self.refresh(background=True)
            except Exception:  # noqa: BLE001 - keep the loop alive whatever happens
                log.exception("auto-refresh failed")
