"""The Voila dashboard: a ``Dashboard`` builds the page once, ``refresh()`` re-reads MongoDB and
redraws every panel in place (bqplot marks' data, HTML values), filters redraw what depends on
them. Nothing here lets a traceback reach the page: an unreachable database, an empty database
or a failing panel becomes a message where the panel is.

    from pipelines.dashboard import Dashboard
    Dashboard.from_env("local", refresh_s=30).show()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import ipywidgets as W
import pandas as pd
from pymongo.database import Database
from pymongo.errors import PyMongoError

from pipelines.core import config
from pipelines.core.config import Settings
from pipelines.core.exceptions import ServiceUnavailableError, TarmacError
from pipelines.stack import mongo

from . import queries as Q
from . import widgets as H
from .charts import AirportChart, CarrierChart, HeatmapChart, HourlyChart, RouteMap, WeatherCharts

log = logging.getLogger("tarmac.dashboard")
if not log.handlers:
    # In a kernel sys.stderr is the page: errors go to the process's real stderr (Voila's log).
    _handler = logging.StreamHandler(sys.__stderr__)
    _handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(_handler)
    log.propagate = False

SORTS = {
    "Scheduled time": (["sched_dep_utc"], [True]),
    "Delay (longest first)": (["delay", "sched_dep_utc"], [False, True]),
    "Status": (["status", "sched_dep_utc"], [True, True]),
    "Airline": (["carrier", "sched_dep_utc"], [True, True]),
    "Destination": (["dest", "sched_dep_utc"], [True, True]),
    "Airport": (["origin", "sched_dep_utc"], [True, True]),
}
PERIODS = ("Today", "Yesterday", "Last 7 days", "All loaded")


@dataclass
class _State:
    snap: Q.Snapshot | None = None  # the last successful read
    online: bool = False
    board: pd.DataFrame | None = None  # live board of the current scope
    carriers: pd.DataFrame | None = None
    kpis: Q.KpiSummary | None = None
    fresh: list[dict[str, Any]] | None = None
    health: list[dict[str, Any]] | None = None
    follow_today: bool = True  # the date range follows the replay clock's day
    loading: bool = False


class Dashboard:
    """The airport operations dashboard of one env (its MongoDB serving database)."""

    def __init__(
        self,
        settings: Settings,
        refresh_s: float = 30.0,
        freshness_rules: dict[str, Q.FreshnessRule] | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.settings = settings.for_reader()  # the read-only user where auth is on
        self.refresh_s = refresh_s
        self.freshness_rules = freshness_rules or Q.DEFAULT_FRESHNESS
        self._now = now or (lambda: datetime.now(UTC))
        self.state = _State()
        self._task: asyncio.Task | None = None
        self._mute = False  # programmatic filter changes do not trigger redraws
        self.last_timings: dict[str, float] = {}
        self.panel_timings: dict[str, float] = {}  # seconds each panel took to draw, last time
        self._build()

    @classmethod
    def from_env(cls, env: str | None = None, **kwargs: Any) -> Dashboard:
        """Dashboard of ``env`` (default ``$TARMAC_ENV`` or local; ``$MONGO_READER_URI``,
        ``$MONGO_URI`` and ``$MONGO_DATABASE`` override the parameters file)."""
        return cls(config.load(env), **kwargs)

    # ------------------------------------------------------------------------------ layout

    def _build(self) -> None:
        lay = W.Layout
        self.header = W.HTML()
        self.banner = W.HTML()
        self.attention = W.HTML()

        # filters
        self.w_airports = W.SelectMultiple(
            options=[(f"{o} {Q.ORIGIN_NAMES[o]}", o) for o in Q.ORIGINS],
            value=Q.ORIGINS,
            rows=3,
            description="Airports",
            layout=lay(width="210px"),
        )
        self.w_carriers = W.SelectMultiple(
            options=[], rows=4, description="Airlines", layout=lay(width="300px")
        )
        self.w_period = W.ToggleButtons(
            options=PERIODS, value="Today", style={"button_width": "96px"}
        )
        self.w_from = W.DatePicker(description="From", layout=lay(width="200px"))
        self.w_to = W.DatePicker(description="To", layout=lay(width="200px"))
        self.w_auto = W.ToggleButton(
            value=True, description="Auto-refresh", icon="refresh", layout=lay(width="130px")
        )
        self.w_interval = W.BoundedIntText(
            value=int(self.refresh_s),
            min=5,
            max=3600,
            description="every (s)",
            layout=lay(width="150px"),
        )
        self.w_refresh = W.Button(description="Refresh now", layout=lay(width="120px"))
        self.w_reset = W.Button(description="Reset filters", layout=lay(width="120px"))
        self.busy = W.HTML()
        self.stamp = W.HTML()  # data-redraw: a counter for tests and benchmarks
        self._redraws = 0
        self._drawn: dict[str, Any] = {}  # panel -> inputs it shows (skip identical redraws)
        self._pending: set[str] = set()  # KPI dates / months being read on demand
        for widget in (self.w_airports, self.w_carriers, self.w_from, self.w_to):
            widget.style.description_width = "60px"
        self.w_interval.style.description_width = "65px"
        filters = W.HBox(
            [
                self.w_airports,
                self.w_carriers,
                W.VBox([self.w_period, W.HBox([self.w_from, self.w_to])]),
                W.VBox(
                    [
                        W.HBox([self.w_auto, self.w_interval]),
                        W.HBox([self.w_refresh, self.w_reset]),
                        self.busy,
                    ]
                ),
            ],
            layout=lay(flex_flow="row wrap", align_items="flex-start"),
        )
        filters.add_class("tm-filters")
        filters.add_class("tm-gap")

        # KPI tiles
        self.tiles = {
            key: W.HTML(layout=lay(flex="1 1 0", min_width="170px")) for key, _ in H.TILES
        }
        self.tiles_note = W.HTML()
        tiles = W.HBox(list(self.tiles.values()), layout=lay(width="100%"))
        tiles.add_class("tm-gap")

        # charts
        self.hourly = HourlyChart()
        self.hourly_title = W.HTML()
        self.carriers = CarrierChart()
        self.carriers_title = W.HTML()
        self.w_metric = W.ToggleButtons(
            options=[("Avg delay", "avg_dep_delay"), ("On-time %", "on_time_pct")],
            value="avg_dep_delay",
            style={"button_width": "90px"},
        )
        self.airports = AirportChart()
        self.airports_title = W.HTML()
        self.airports_table = W.HTML()
        self.heatmap = HeatmapChart()
        self.heatmap_title = W.HTML()
        self.weather = WeatherCharts()
        self.weather_title = W.HTML()
        self.map = RouteMap()
        self.map_title = W.HTML()
        self.map_table = W.HTML(layout=lay(flex="1 1 0", min_width="240px"))

        # live board, rejects, export
        self.w_sort = W.Dropdown(options=list(SORTS), value="Scheduled time", description="Sort")
        self.w_sort.style.description_width = "40px"
        self.w_late_only = W.Checkbox(
            value=False, description="late / cancelled only", indent=False
        )
        self.board_title = W.HTML()
        self.board = W.HTML()
        self.export = W.HTML()
        self.export.add_class("tm-export")
        self.rejects = W.HTML()

        def card(*children: W.Widget, name: str, **layout: Any) -> W.VBox:
            box = W.VBox(
                list(children), layout=lay(**{"flex": "1 1 0", "min_width": "0", **layout})
            )
            box.add_class("tm-card")
            box.add_class(f"tm-panel-{name}")
            return box

        row = {"width": "100%", "align_items": "stretch", "flex_flow": "row wrap"}
        self.panels = {
            "hourly": card(
                self.hourly_title, self.hourly.figure, name="hourly", flex="2 1 0",
                min_width="560px",
            ),
            "airports": card(
                self.airports_title, self.airports.figure, self.airports_table,
                name="airports", min_width="380px",
            ),
            "carriers": card(
                self.carriers_title, self.w_metric, self.carriers.figure,
                name="carriers", min_width="340px",
            ),
            "heatmap": card(
                self.heatmap_title, self.heatmap.figure, name="heatmap", flex="2 1 0",
                min_width="620px",
            ),
            "map": card(
                self.map_title,
                _gap(W.HBox([self.map.figure, self.map_table])),
                name="map", flex="3 1 0", min_width="860px",
            ),
            "weather": card(
                self.weather_title,
                W.VBox(self.weather.figures, layout=lay(width="100%")),
                name="weather", flex="2 1 0", min_width="440px",
            ),
            "board": card(
                self.board_title,
                _gap(
                    W.HBox(
                        [self.w_sort, self.w_late_only, self.export],
                        layout=lay(align_items="center"),
                    )
                ),
                self.board,
                name="board", flex="3 1 0", min_width="720px",
            ),
            "rejects": card(self.rejects, name="rejects", min_width="340px"),
        }  # fmt: skip
        self.root = W.VBox(
            [
                W.HTML(H.CSS),
                self.header,
                self.banner,
                filters,
                self.attention,
                tiles,
                self.tiles_note,
                W.HBox([self.panels["hourly"], self.panels["airports"]], layout=lay(**row)),
                W.HBox([self.panels["carriers"], self.panels["heatmap"]], layout=lay(**row)),
                W.HBox([self.panels["map"], self.panels["weather"]], layout=lay(**row)),
                W.HBox([self.panels["board"], self.panels["rejects"]], layout=lay(**row)),
                self.stamp,
            ],
            layout=lay(padding="8px 14px", width="100%", max_width="1600px", margin="0 auto"),
        )
        self.root.add_class("tm-root")
        self.root.add_class("tm-gap")
        for child in self.root.children:
            if isinstance(child, W.HBox):
                child.add_class("tm-gap")

        for widget in (self.w_airports, self.w_carriers):
            widget.observe(self._on_filter, names="value")
        for widget in (self.w_from, self.w_to):
            widget.observe(self._on_dates, names="value")
        self.w_period.observe(self._on_period, names="value")
        self.w_metric.observe(lambda _: self._guarded(self._draw_carriers), names="value")
        self.w_sort.observe(lambda _: self._guarded(self._draw_board_table), names="value")
        self.w_late_only.observe(lambda _: self._guarded(self._draw_board_table), names="value")
        self.w_refresh.on_click(lambda _: self.refresh())
        self.w_reset.on_click(lambda _: self.reset_filters())
        self.w_auto.observe(lambda _: self._schedule(), names="value")
        self.w_interval.observe(lambda _: self._schedule(), names="value")

    # ------------------------------------------------------------------------- public API

    def show(self) -> W.VBox:
        """Display the page, read and draw it, start the auto-refresh."""
        from IPython.display import display

        display(self.root)
        self.refresh()
        self._schedule()
        return self.root

    def scope(self) -> Q.Scope:
        airports = tuple(self.w_airports.value)
        return Q.Scope(
            airports=() if len(airports) in (0, len(Q.ORIGINS)) else airports,
            carriers=tuple(self.w_carriers.value),
            date_from=self.w_from.value,
            date_to=self.w_to.value,
        )

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
        loop = _running_loop()
        if background is None:
            background = self.state.snap is not None and loop is not None
        self.state.loading = True
        self.busy.value = '<span class="tm-busy">reading MongoDB…</span>'
        # what the reader needs from the page, taken here (the read may run in a thread)
        wanted = (self.scope().dates() or [], self.state.snap)
        if background and loop is not None:
            threading.Thread(target=self._read_then_draw, args=(loop, *wanted), daemon=True).start()
        else:
            self._apply(self._read(*wanted))

    def reset_filters(self) -> None:
        with self._muted():
            self.w_airports.value = Q.ORIGINS
            self.w_carriers.value = ()
            self.state.follow_today = True
            self.w_period.value = "Today"
            self._apply_period("Today")
        self._guarded(self._draw_scope)

    # ---------------------------------------------------------------------------- reading

    def _connect(self) -> Database:
        if not mongo.ping(self.settings, timeout_ms=1500):
            raise ServiceUnavailableError(
                f"MongoDB at {self.settings.mongo.safe_uri} does not answer "
                f"(env {self.settings.env}); run `make stack-up ENV={self.settings.env}`"
            )
        return mongo.database(self.settings)

    def _read(
        self, dates: list[str] | None = None, previous: Q.Snapshot | None = None
    ) -> Q.Snapshot | BaseException:
        """One snapshot, or the exception that prevented it (never raised): the KPIs of
        ``dates`` (default: the replay clock's day); of ``previous`` what has not changed is
        kept, not read again."""
        started = time.perf_counter()
        try:
            return Q.load_snapshot(
                self._connect(), self._now(), board=False, dates=dates or (), previous=previous
            )
        except (ServiceUnavailableError, PyMongoError) as exc:
            return exc
        except Exception as exc:  # noqa: BLE001 - shown as a message, logged in full
            log.exception("dashboard read failed")
            return exc
        finally:
            self.last_timings["read"] = time.perf_counter() - started

    def _read_then_draw(
        self,
        loop: asyncio.AbstractEventLoop,
        dates: list[str] | None = None,
        previous: Q.Snapshot | None = None,
    ) -> None:
        result = self._read(dates, previous)
        try:
            loop.call_soon_threadsafe(self._apply, result)
        except RuntimeError:  # the kernel is shutting down
            self.state.loading = False

    def _apply(self, result: Q.Snapshot | BaseException) -> None:
        """Draw a snapshot (or the message of a failed read) into the page, then have the
        live board read."""
        started = time.perf_counter()
        board_next = False
        try:
            if isinstance(result, (ServiceUnavailableError, PyMongoError)):
                self._show_offline(result)
                return
            if isinstance(result, BaseException):
                self.banner.value = H.banner(
                    f"The dashboard could not read its data ({H.esc(type(result).__name__)}: "
                    f"{H.esc(result)}). It keeps trying; details are in the Voila log.",
                    "red",
                )
                return
            previous = self.state.snap
            if previous is not None and previous.board is not None:
                result.board = previous.board  # shown (marked as such) until the new one
                result.board_read_at = previous.board_read_at
            self.state.snap, self.state.online = result, True
            self._drawn.clear()  # new data: everything is drawn again
            self._draw_header()
            self._sync_filter_options()
            if not result.has_data:
                self._show_empty()
                return
            self.banner.value = ""
            self._draw_scope(rejects=True)
            board_next = result.clock is not None
        except Exception as exc:  # noqa: BLE001 - the page must never show a traceback
            log.exception("dashboard draw failed")
            self.banner.value = H.banner(
                f"The dashboard could not be drawn ({H.esc(type(exc).__name__)}: "
                f"{H.esc(exc)}). Details are in the Voila log.",
                "red",
            )
        finally:
            self.last_timings["draw"] = time.perf_counter() - started
            stamp = datetime.now(UTC).astimezone(Q.NY).strftime("%H:%M:%S")
            read = self.last_timings.get("read", 0.0)
            self.busy.value = f'<span class="tm-busy">read at {stamp} (wall) in {read:.1f} s</span>'
            if board_next:
                self._read_board()
            else:
                self.state.loading = False

    def _read_board(self) -> None:
        """Read the flights around the snapshot's clock (in a thread inside a kernel)."""
        snap, loop = self.state.snap, _running_loop()

        def read() -> pd.DataFrame | BaseException:
            started = time.perf_counter()
            try:
                return Q.read_board(self._connect(), snap.clock)
            except (ServiceUnavailableError, PyMongoError) as exc:
                return exc
            except Exception as exc:  # noqa: BLE001
                log.exception("live board read failed")
                return exc
            finally:
                self.last_timings["board_read"] = time.perf_counter() - started
                self.last_timings["read"] = (
                    self.last_timings.get("read", 0.0) + (self.last_timings["board_read"])
                )

        def work() -> None:
            result = read()
            try:
                loop.call_soon_threadsafe(self._apply_board, snap, result)
            except RuntimeError:  # the kernel is shutting down
                self.state.loading = False

        if loop is None:
            self._apply_board(snap, read())
        else:
            threading.Thread(target=work, daemon=True).start()

    def _draw_scope(self, rejects: bool = False) -> None:
        """Redraw the filters' scope; the KPI documents it needs that the snapshot does not
        hold yet (dates selected since, their months) are read first, by ``_id``, and kept."""
        snap = self.state.snap
        needed_dates, needed_months = snap.needed(self.scope())
        dates = [d for d in needed_dates if d not in self._pending]
        months = [m for m in needed_months if m not in self._pending]
        if dates or months:
            self._read_more(snap, dates, months, rejects)  # draws when they are read
        elif not needed_dates and not needed_months:
            self._redraw(rejects=rejects)
        # else: what it needs is being read; the scope is drawn when it arrives

    def _read_more(
        self, snap: Q.Snapshot, dates: list[str], months: list[str], rejects: bool
    ) -> None:
        """Read ``dates`` / ``months`` of the KPIs (in a thread inside a kernel), add them to
        ``snap`` and draw the scope again."""
        loop = _running_loop()
        asked = {*dates, *months}
        self._pending |= asked
        self.busy.value = (
            f'<span class="tm-busy">reading {len(dates)} day(s), {len(months)} month(s)…</span>'
        )

        def read() -> Q.Rows | BaseException:
            started = time.perf_counter()
            try:
                return Q.read_more(self._connect(), dates, months)
            except (ServiceUnavailableError, PyMongoError) as exc:
                return exc
            except Exception as exc:  # noqa: BLE001 - shown as a message, logged in full
                log.exception("dashboard read of more days failed")
                return exc
            finally:
                self.last_timings["read_more"] = time.perf_counter() - started

        def apply(result: Q.Rows | BaseException) -> None:
            self._pending -= asked
            if snap is not self.state.snap:  # a newer snapshot draws (and reads) for itself
                return
            if isinstance(result, BaseException):
                self.busy.value = ""
                self.banner.value = H.banner(
                    f"The selected days could not be read ({H.esc(type(result).__name__)}: "
                    f"{H.esc(result)}). Select them again to retry.",
                    "red",
                )
                return
            took = self.last_timings.get("read_more", 0.0)
            self.busy.value = f'<span class="tm-busy">read {len(asked)} more in {took:.1f} s</span>'
            snap.add(result)
            self._guarded(lambda: self._draw_scope(rejects))

        def work() -> None:
            result = read()
            with contextlib.suppress(RuntimeError):  # the kernel is shutting down
                loop.call_soon_threadsafe(apply, result)

        if loop is None:
            apply(read())
        else:
            threading.Thread(target=work, daemon=True).start()

    def _apply_board(self, snap: Q.Snapshot, result: pd.DataFrame | BaseException) -> None:
        self.state.loading = False
        if snap is not self.state.snap:  # a newer snapshot is drawn: this board is stale
            return
        if isinstance(result, BaseException):
            self.board.value = H.empty(
                f"The live board could not be read ({type(result).__name__}); "
                "it is retried at the next refresh."
            )
            return
        snap.board, snap.board_read_at = result, self._now()
        self._guarded(lambda: self._redraw(panels=("board",)))

    # ---------------------------------------------------------------------------- helpers

    @contextlib.contextmanager
    def _muted(self) -> Iterator[None]:
        previous, self._mute = self._mute, True
        try:
            yield
        finally:
            self._mute = previous

    def _guarded(self, draw: Callable[[], None]) -> None:
        """Run a redraw from a widget callback; errors become a banner, never a traceback."""
        snap = self.state.snap
        if snap is None or not snap.has_data:
            return
        try:
            draw()
        except Exception as exc:  # noqa: BLE001
            log.exception("dashboard redraw failed")
            self.banner.value = H.banner(
                f"A panel could not be drawn ({H.esc(type(exc).__name__)}: {H.esc(exc)}).", "red"
            )

    def _once(self, name: str, key: Any, draw: Callable[[], None]) -> None:
        """Draw unless the panel already shows ``key`` of the current snapshot."""
        if self._drawn.get(name) != key:
            draw()
            self._drawn[name] = key

    def _panel(self, name: str, target: W.HTML | None, draw: Callable[[], None]) -> None:
        """Draw one panel; a failure stays in that panel."""
        started = time.perf_counter()
        try:
            draw()
        except Exception as exc:  # noqa: BLE001
            log.exception("panel %s failed", name)
            if target is not None:
                target.value = H.empty(
                    f"{name}: not available ({type(exc).__name__}); see the Voila log"
                )
        finally:
            self.panel_timings[name] = time.perf_counter() - started

    def _show_offline(self, exc: BaseException) -> None:
        self.state.online = False
        text = str(exc) if isinstance(exc, TarmacError) else f"{type(exc).__name__}: {exc}"
        kept = (
            " Figures below are from the last successful read."
            if self.state.snap is not None
            else ""
        )
        self.banner.value = H.banner(
            f"<b>Database not reachable.</b> {H.esc(text[:400])}<br>"
            f"The page retries at every refresh.{kept}",
            "red",
        )
        if not self.header.value:
            self.header.value = self._header_html(None, None, None)

    def _show_empty(self) -> None:
        db_name = self.settings.mongo.database
        snap = self.state.snap
        if snap is not None and snap.has_flights:
            what = "<b>Flights are arriving, the KPIs are not computed yet</b>"
            todo = "the flights_stream job writes them after each batch"
        else:
            what = "<b>No flight data yet</b>"
            todo = "start the replay and the jobs (<code>make demo</code>)"
        self.banner.value = H.banner(
            f"{what} in database <code>{H.esc(db_name)}</code> (env {H.esc(self.settings.env)}):"
            f" {todo}. This page fills in at the next refresh.",
            "info",
        )
        for tile in self.tiles.values():
            tile.value = ""
        self.tiles_note.value = ""
        self.attention.value = ""
        for title in (
            self.hourly_title,
            self.carriers_title,
            self.airports_title,
            self.heatmap_title,
            self.weather_title,
            self.map_title,
        ):
            title.value = H.empty("waiting for data")
        self.board_title.value = H.card_title("Live departures board")
        self.board.value = H.empty("No departures yet.")
        self.export.value = ""
        self._panel("Rejects", self.rejects, self._draw_rejects)

    # ------------------------------------------------------------------------- filters

    def _sync_filter_options(self) -> None:
        snap = self.state.snap
        carriers = snap.carriers() if snap else []
        options = [(f"{code} · {name}"[:34], code) for code, name in carriers]
        with self._muted():
            if list(self.w_carriers.options) != options:
                keep = tuple(c for c in self.w_carriers.value if c in dict(carriers))
                self.w_carriers.options = options
                self.w_carriers.value = keep
            if self.state.follow_today:
                self._apply_period(self.w_period.value)

    def _clock_day(self) -> date | None:
        snap = self.state.snap
        if snap is None:
            return None
        return date.fromisoformat(snap.clock_day) if snap.clock_day else None

    def _apply_period(self, period: str) -> None:
        day, snap = self._clock_day(), self.state.snap
        if day is None or snap is None:
            return
        first = snap.first or day
        start, end = {
            "Today": (day, day),
            "Yesterday": (day - timedelta(days=1), day - timedelta(days=1)),
            "Last 7 days": (max(first, day - timedelta(days=6)), day),
            "All loaded": (first, max(day, snap.last or day)),
        }.get(period, (self.w_from.value or day, self.w_to.value or day))
        self.w_from.value, self.w_to.value = start, end

    def _on_period(self, change: dict[str, Any]) -> None:
        if self._mute:
            return
        with self._muted():
            self.state.follow_today = True
            self._apply_period(change["new"])
        self._guarded(self._draw_scope)

    def _on_dates(self, change: dict[str, Any]) -> None:
        if self._mute:
            return
        self.state.follow_today = False  # a date picked by hand stays put
        with self._muted():
            if self.w_from.value and self.w_to.value and self.w_from.value > self.w_to.value:
                other = self.w_to if change["owner"] is self.w_from else self.w_from
                other.value = change["new"]
            self.w_period.value = None
        self._guarded(self._draw_scope)

    def _on_filter(self, change: dict[str, Any]) -> None:
        if not self._mute:
            self._guarded(self._draw_scope)

    # -------------------------------------------------------------------------- drawing

    def _redraw(self, rejects: bool = False, panels: tuple[str, ...] | None = None) -> None:
        """Redraw the panels of the current scope (``panels``: only those, by step name)."""
        started = time.perf_counter()
        scope = self.scope()
        steps: list[tuple[str, W.HTML | None, Callable[[], None]]] = [
            ("KPIs", self.tiles_note, lambda: self._draw_tiles(scope)),
            ("Delay by hour", self.hourly_title, lambda: self._draw_hourly(scope)),
            ("Airlines", self.carriers_title, lambda: self._load_carriers(scope)),
            ("Airports", self.airports_table, lambda: self._draw_airports(scope)),
            # these depend on the airports (and the routes on the months) only: a carrier or
            # day change within the month leaves them as they are
            (
                "Heat map",
                self.heatmap_title,
                lambda: self._once("heatmap", scope.airports, lambda: self._draw_heatmap(scope)),
            ),
            (
                "Weather impact",
                self.weather_title,
                lambda: self._once("weather", scope.airports, lambda: self._draw_weather(scope)),
            ),
            (
                "Routes",
                self.map_table,
                lambda: self._once(
                    "routes",
                    (scope.airports, tuple(scope.months() or ())),
                    lambda: self._draw_routes(scope),
                ),
            ),
            ("Live board", self.board, lambda: self._draw_board(scope)),
        ]
        if rejects:
            steps.append(("Rejects", self.rejects, self._draw_rejects))
        if panels is not None:
            steps = [step for step in steps if step[0] == "Live board"]
        for name, target, draw in steps:
            self._panel(name, target, draw)
        self._panel("Attention", self.attention, self._draw_attention)
        self.last_timings["redraw"] = time.perf_counter() - started
        self._redraws += 1
        # sent last: when the browser shows it, every update of this redraw has arrived
        self.stamp.value = (
            f'<span data-redraw="{self._redraws}" '
            f'data-redraw-ms="{self.last_timings["redraw"] * 1000:.1f}" '
            f'data-read-ms="{self.last_timings.get("read", 0.0) * 1000:.1f}"></span>'
        )

    def _header_html(self, clock, fresh: list[dict] | None, health: list[dict] | None) -> str:
        env = self.settings.env
        if clock is not None:
            local = clock.astimezone(Q.NY)
            clock_html = (
                f'<div class="tm-clock" data-clock="{clock.isoformat()}">'
                f"{local.strftime('%a %d %b %Y · %H:%M')} {local.tzname()}"
                f"<small>{clock.strftime('%H:%MZ')} · replay clock</small></div>"
            )
        else:
            clock_html = '<div class="tm-clock">—<small>no replay clock yet</small></div>'
        pills = []
        for rec in fresh or []:
            parts = []
            if rec["replay_age"] is not None:
                parts.append(f"{H.ago(rec['replay_age'])} behind")
            parts.append(f"updated {H.ago(rec['wall_age'])} ago")
            if rec["level"] == "missing":
                parts = ["never ran"]
            title = (
                f"newest data {H.local_time(rec['newest'])} (replay time), updated_at "
                f"{H.local_time(rec['updated_at'])} (wall): {H.LEVEL_WORDS[rec['level']]}"
            )
            pills.append(H.pill(rec["source"], " · ".join(parts), rec["level"], title))
        jobs = []
        for rec in health or []:
            if rec["status"] is None:
                text = "no run yet"
            else:
                when = rec["end"] or rec["start"]
                age = (self._now() - when) if when is not None else None
                text = f"{rec['status']} {H.ago(age)} ago · {rec['failures_24h']} failed in 24 h"
            jobs.append(H.pill(rec["job"], text, rec["level"], rec.get("error") or ""))
        pills_html = "".join(pills) or '<span class="tm-sub">—</span>'
        jobs_html = "".join(jobs) or '<span class="tm-sub">—</span>'
        return (
            '<div class="tm-header">'
            '<div style="display:flex;justify-content:space-between;align-items:flex-end;'
            'flex-wrap:wrap;gap:12px">'
            f'<div><div class="tm-title">Tarmac · New York airports control room</div>'
            f'<div class="tm-sub">EWR · JFK · LGA — env {H.esc(env)}, database '
            f"{H.esc(self.settings.mongo.database)}</div></div>{clock_html}</div>"
            f'<div class="tm-pills"><span class="tm-sub">Data freshness</span>{pills_html}</div>'
            f'<div class="tm-pills"><span class="tm-sub">Pipeline jobs</span>{jobs_html}</div>'
            "</div>"
        )

    def _draw_header(self) -> None:
        snap, now = self.state.snap, self._now()
        self.state.fresh = Q.freshness(snap.states, snap.clock, now, self.freshness_rules)
        self.state.health = Q.pipeline_health(snap.runs, now)
        self.header.value = self._header_html(snap.clock, self.state.fresh, self.state.health)

    def _scope_text(self, scope: Q.Scope, carriers: bool = True, dates: bool = True) -> str:
        parts = [" + ".join(scope.airports) if scope.airports else "all airports"]
        if carriers:
            parts.append(" + ".join(scope.carriers) if scope.carriers else "all airlines")
        if dates and scope.date_from and scope.date_to:
            a, b = scope.date_from, scope.date_to
            parts.append(a.strftime("%a %d %b %Y") if a == b else f"{a:%d %b} – {b:%d %b %Y}")
        return " · ".join(parts)

    def _draw_tiles(self, scope: Q.Scope) -> None:
        snap = self.state.snap
        kpis = Q.kpi_summary(snap.kpis, scope, snap.clock)
        self.state.kpis = kpis
        for key, title in H.TILES:
            extra = ""
            if key == "cancelled" and math.isfinite(kpis.value.get("cancel_pct", math.nan)):
                extra = f"<small> ({kpis.value['cancel_pct']:.1f} %)</small>"
            self.tiles[key].value = H.kpi_tile(key, title, kpis, kpis.baseline_label, extra)
        bits = [self._scope_text(scope)]
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
        self.tiles_note.value = f'<div class="tm-card-sub">{H.esc(" · ".join(bits))}</div>'

    def _draw_hourly(self, scope: Q.Scope) -> None:
        snap = self.state.snap
        frame = Q.hourly_series(snap.kpis, scope)
        current = None
        if snap.clock is not None and len(frame):
            hour = pd.Timestamp(snap.clock).floor("h")
            match = frame.loc[frame["hour_utc"] == hour, "label"]
            current = match.iloc[0] if len(match) else None
        self.hourly.update(frame, current)
        note = (
            " · airline filter not applied (hourly KPIs are per airport)" if scope.carriers else ""
        )
        sub = (
            f"{H.esc(self._scope_text(scope, carriers=False))} · scheduled local hour · "
            f"line: avg departure delay · bars: flights (dark: now) · dashed: 15 min{note}"
        )
        if frame.empty:
            sub += " · <b>no flights in this selection</b>"
        self.hourly_title.value = H.card_title("Delay by hour", sub)

    def _load_carriers(self, scope: Q.Scope) -> None:
        self.state.carriers = Q.carrier_table(self.state.snap.kpis, scope)
        self._draw_carriers()

    def _draw_carriers(self) -> None:
        frame = self.state.carriers
        if frame is None or frame.empty:
            frame = Q.derive(pd.DataFrame({c: [] for c in ("carrier", *Q.MEASURES)}))
            frame["carrier_name"] = []
        self.carriers.update(frame, self.w_metric.value)
        worst = frame[frame["departed"] >= 5].sort_values("avg_dep_delay", ascending=False)
        sub = f"{H.esc(self._scope_text(self.scope()))} · worst on top · colour = avg delay"
        if not worst.empty:
            w = worst.iloc[0]
            sub += (
                f"<br>slipping most: <b>{H.esc(w['carrier'])}</b> {H.esc(w['carrier_name'])} — "
                f"{w['avg_dep_delay']:.0f} min avg, {H.num(w['on_time_pct'], 0)} % on time"
            )
        elif frame.empty or frame["departed"].sum() == 0:
            sub += " · <b>no departures in this selection</b>"
        self.carriers_title.value = H.card_title("Airline leaderboard", sub)

    def _draw_airports(self, scope: Q.Scope) -> None:
        snap = self.state.snap
        frame = Q.airport_table(snap.kpis, scope)
        self.airports.update(frame, scope.airports)
        wx = snap.weather_now.set_index("origin") if len(snap.weather_now) else None
        rows = []
        for rec in frame.to_dict("records"):
            o = rec["origin"]
            w = wx.loc[o] if (wx is not None and o in wx.index) else None
            if w is not None and pd.notna(w.get("visib_band")):
                wet = "precip." if bool(w.get("precip")) else "dry"
                weather = f"{H.esc(w.get('visib_band'))} · {H.esc(w.get('wind_band'))} · {wet}"
                bad = w.get("visib_band") in ("< 1 mi", "1-3 mi") or w.get("wind_band") in (
                    "20-30 mph",
                    "30+ mph",
                )
                if bad:
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
        self.airports_table.value = H.table(
            pd.DataFrame(rows),
            [
                ("airport", "Airport", "html"),
                ("flights", "Flights", "num"),
                ("on_time", "On time", "num"),
                ("cancelled", "Canc.", "num"),
                ("weather", "Weather now", "html"),
            ],
        )
        sub = f"{H.esc(self._scope_text(scope, carriers=True))} · bars: avg departure delay (min)"
        self.airports_title.value = H.card_title("Airports", sub)

    def _until(self) -> str | None:
        day = self._clock_day()
        return day.isoformat() if day else None

    def _period_text(self) -> str:
        snap, until = self.state.snap, self._until()
        if snap is None or snap.first is None or until is None:
            return "—"
        return f"{snap.first:%d %b %Y} – {date.fromisoformat(until):%d %b %Y}"

    def _draw_heatmap(self, scope: Q.Scope) -> None:
        grid = Q.weekday_hour_heatmap(self.state.snap.kpis, scope.airports, self._until())
        self.heatmap.update(grid)
        sub = (
            f"avg departure delay (min) by weekday × scheduled local hour · every loaded day "
            f"({H.esc(self._period_text())}) · "
            f"{H.esc(' + '.join(scope.airports) or 'all airports')} · grey: no departures"
            f"<br>{_delay_legend()}"
        )
        self.heatmap_title.value = H.card_title("When do delays build up?", sub)

    def _draw_weather(self, scope: Q.Scope) -> None:
        tables = Q.weather_impact(self.state.snap.kpis, scope.airports, self._until())
        self.weather.update(tables)
        n = float(tables["precip"]["flights"].sum())
        sub = (
            "avg departure delay (min) by the weather at the airport in the scheduled hour · "
            f"every loaded day ({H.esc(self._period_text())}) · "
            f"{H.esc(' + '.join(scope.airports) or 'all airports')} · "
            f"{H.num(n)} flights with known weather"
        )
        self.weather_title.value = H.card_title("Is the weather the cause?", sub)

    def _draw_routes(self, scope: Q.Scope) -> None:
        frame = Q.routes(self.state.snap.kpis, scope)
        self.map.update(frame)
        months = ", ".join(
            datetime.strptime(m, "%Y-%m").strftime("%b %Y") for m in scope.months() or []
        )
        unmapped = sorted(frame.loc[frame["dest_lat"].isna(), "dest"]) if len(frame) else []
        sub = (
            f"{H.esc(' + '.join(scope.airports) or 'all airports')} · {H.esc(months or 'all')}"
            " (monthly KPIs) · colour = avg departure delay · dot size = flights"
        )
        if unmapped:
            sub += f" · not on the map: {H.esc(', '.join(unmapped))}"
        sub += "<br>" + _delay_legend()
        self.map_title.value = H.card_title("Routes from New York", sub)
        if frame.empty:
            self.map_table.value = H.empty("No routes in this selection.")
            return
        enough = frame["departed"] >= 10
        busy = frame[enough] if enough.any() else frame
        worst = busy.sort_values("avg_dep_delay", ascending=False).head(10)
        shown = pd.DataFrame(
            {
                "dest": [
                    f'<b>{H.esc(d)}</b> <span style="color:#5f6b76">{H.esc(str(n)[:18])}</span>'
                    for d, n in zip(worst["dest"], worst["dest_name"].fillna(""), strict=True)
                ],
                "flights": [H.num(v) for v in worst["flights"]],
                "delay": [
                    f'<b style="color:{H.delay_color(v)}">{H.num(v, 0)}</b>'
                    for v in worst["avg_dep_delay"]
                ],
            }
        )
        self.map_table.value = (
            '<div class="tm-card-sub">Most delayed routes (avg min)'
            + (" (≥ 10 departures)" if enough.any() else "")
            + "</div>"
            + H.table(
                shown,
                [
                    ("dest", "Destination", "html"),
                    ("flights", "Flights", "num"),
                    ("delay", "Delay", "html"),
                ],
            )
        )

    def _draw_board(self, scope: Q.Scope) -> None:
        snap = self.state.snap
        if snap.clock is None:
            self.state.board = None
            self.board.value = H.empty("No replay clock yet: the flight stream has not run.")
            return
        if snap.board is None:
            self.state.board = None
            self.board_title.value = H.card_title("Live departures board")
            self.board.value = '<div class="tm-loading">Reading the departures around now…</div>'
            return
        self.state.board = Q.live_board(snap.board, scope, snap.clock)
        self._draw_board_table()

    def _draw_board_table(self) -> None:
        frame, snap = self.state.board, self.state.snap
        if frame is None or snap is None or snap.clock is None:
            return
        local = snap.clock.astimezone(Q.NY)
        late = frame[(frame["delay"] > 15) | (frame["status"] == "cancelled")]
        self.board_title.value = H.card_title(
            "Live departures board",
            f"{H.esc(self._scope_text(self.scope(), dates=False))} · scheduled "
            f"{(local - Q.BOARD_BEFORE):%H:%M} – {(local + Q.BOARD_AFTER):%H:%M} "
            f"(now {local:%H:%M}) · {len(frame)} departures, <b>{len(late)} late or cancelled</b>"
            + self._board_age()
            + "<br>"
            + H.legend(
                [
                    ("#fff4e0", "> 15 min late"),
                    ("#fdecea", "> 60 min late"),
                    ("#e0e0e0", "cancelled"),
                ]
            ),
        )
        if self.w_late_only.value:
            frame = late
        by, ascending = SORTS[self.w_sort.value]
        frame = frame.sort_values(by, ascending=ascending, na_position="last", kind="stable")
        stamp = local.strftime("%Y%m%dT%H%M")
        export = frame.assign(sched_dep_utc=frame["sched_dep_utc"].astype(str))
        self.export.value = H.csv_link(
            export, f"tarmac_live_board_{stamp}.csv", "Live board CSV"
        ) + self._carriers_link(stamp)
        if frame.empty:
            self.board.value = H.empty("No departures scheduled within an hour of now.")
            return
        classes = [
            "tm-cancelled"
            if st == "cancelled"
            else "tm-verylate"
            if (pd.notna(d) and d > 60)
            else "tm-late"
            if (pd.notna(d) and d > 15)
            else ""
            for st, d in zip(frame["status"], frame["delay"], strict=True)
        ]
        shown = frame.assign(
            delay_txt=[
                "" if pd.isna(d) else f"{d:+.0f}" + (" so far" if k == "late, not departed" else "")
                for d, k in zip(frame["delay"], frame["delay_kind"], strict=True)
            ],
            dest_txt=[
                f"{H.esc(d)} <span style='color:#5f6b76'>{H.esc(str(n)[:26])}</span>"
                for d, n in zip(frame["dest"], frame["dest_name"], strict=True)
            ],
            airline=[str(n)[:24] for n in frame["carrier_name"]],
        )
        self.board.value = (
            '<div class="tm-scroll">'
            + H.table(
                shown,
                [
                    ("sched_local", "Sched", ""),
                    ("flight_no", "Flight", ""),
                    ("airline", "Airline", ""),
                    ("origin", "From", ""),
                    ("dest_txt", "To", "html"),
                    ("status", "Status", ""),
                    ("delay_txt", "Delay (min)", "num"),
                    ("dep_local", "Departed", ""),
                    ("tailnum", "Tail", ""),
                ],
                row_class=classes,
                attrs='data-table="board"',
            )
            + "</div>"
        )

    def _board_age(self) -> str:
        """' · read 12:03:04' (wall), marked when an older board waits for the new one."""
        snap = self.state.snap
        if snap is None or snap.board_read_at is None:
            return ""
        at = snap.board_read_at.astimezone(Q.NY).strftime("%H:%M:%S")
        old = snap.board_read_at < snap.read_at
        return f" · read {at}" + (" <i>(updating…)</i>" if old else "")

    def _carriers_link(self, stamp: str) -> str:
        frame = self.state.carriers
        if frame is None or frame.empty:
            return ""
        cols = ["carrier", "carrier_name", *Q.MEASURES, *Q.DERIVED]
        return H.csv_link(frame[cols].round(2), f"tarmac_airlines_{stamp}.csv", "Airlines CSV")

    def _draw_rejects(self) -> None:
        snap = self.state.snap
        summary = Q.rejects_summary(snap.rejects, snap.rejects_total)
        capped = summary.read < summary.total
        title = H.card_title(
            "Rejected records",
            f"{H.num(summary.total)} refused by the pipeline"
            + (f" (counts of the newest {H.num(summary.read)})" if capped else ""),
        )
        if summary.by_reason.empty:
            self.rejects.value = title + H.empty("Nothing rejected: all input passed validation.")
            return
        by_source = " ".join(
            f'<span class="tm-badge" style="background:{H.WATCH}">{H.esc(s)}: {H.num(c)}</span>'
            for s, c in zip(summary.by_source["source"], summary.by_source["count"], strict=True)
        )
        now = self._now()
        top = summary.by_reason.head(12)
        top = top.assign(
            count=[H.num(c) for c in top["count"]],
            last=[H.ago(now - t) + " ago" if pd.notna(t) else "—" for t in top["last_at"]],
            reason=[str(r)[:90] for r in top["reason"]],
        )
        self.rejects.value = (
            title
            + f"<div>{by_source}</div>"
            + '<div class="tm-scroll" style="max-height:300px;margin-top:6px">'
            + H.table(
                top,
                [
                    ("source", "Source", ""),
                    ("reason", "Reason", "wrap"),
                    ("count", "Count", "num"),
                    ("last", "Last (wall)", ""),
                ],
                attrs='data-table="rejects"',
            )
            + "</div>"
        )

    def _draw_attention(self) -> None:
        items: list[tuple[str, str]] = []
        for rec in self.state.fresh or []:
            if rec["level"] in ("amber", "red"):
                behind = (
                    f"{H.ago(rec['replay_age'])} behind the replay clock, "
                    if rec["replay_age"] is not None
                    else ""
                )
                items.append(
                    (
                        rec["level"],
                        f"<b>{H.esc(rec['source'])}</b> is "
                        f"{H.LEVEL_WORDS[rec['level']]}: {behind}"
                        f"last updated {H.ago(rec['wall_age'])} ago",
                    )
                )
        for rec in self.state.health or []:
            if rec["level"] == "red":
                items.append(
                    (
                        "red",
                        f"<b>{H.esc(rec['job'])}</b>: last run "
                        f"{H.esc(rec['status'])} — {H.esc(rec.get('error') or '')}",
                    )
                )
            elif rec["failures_24h"]:
                items.append(
                    (
                        "amber",
                        f"<b>{H.esc(rec['job'])}</b>: "
                        f"{rec['failures_24h']} failed run(s) in the last 24 h",
                    )
                )
        board, snap = self.state.board, self.state.snap
        if board is not None and len(board) and snap.clock is not None:
            clock = pd.Timestamp(snap.clock)
            waiting = board[(board["delay_kind"] == "late, not departed") & (board["delay"] > 15)]
            if len(waiting):
                items.append(
                    (
                        "red" if (waiting["delay"] > 60).any() else "amber",
                        f"<b>{len(waiting)}</b> flight(s) past departure time and not "
                        f"departed yet (up to {waiting['delay'].max():.0f} min)",
                    )
                )
            recent = board[(board["sched_dep_utc"] <= clock) & (board["delay"] > 60)]
            if len(recent):
                items.append(
                    (
                        "red",
                        f"<b>{len(recent)}</b> departure(s) of the last hour more than 60 min late",
                    )
                )
        kpis = self.state.kpis
        if kpis is not None and kpis.baseline is not None:
            v, b = kpis.value["avg_dep_delay"], kpis.baseline["avg_dep_delay"]
            if math.isfinite(v) and math.isfinite(b) and v - b > 10:
                items.append(
                    (
                        "amber",
                        f"average departure delay {v:.0f} min, "
                        f"{v - b:.0f} min above the average {kpis.baseline_label}",
                    )
                )
        carriers = self.state.carriers
        if carriers is not None and len(carriers):
            bad = carriers[(carriers["departed"] >= 10) & (carriers["avg_dep_delay"] >= 30)]
            for rec in bad.sort_values("avg_dep_delay", ascending=False).head(2).to_dict("records"):
                items.append(
                    (
                        "amber",
                        f"<b>{H.esc(rec['carrier'])}</b> "
                        f"{H.esc(rec['carrier_name'])}: {rec['avg_dep_delay']:.0f} min "
                        f"average delay, {rec['on_time_pct']:.0f} % on time",
                    )
                )
        if not items:
            self.attention.value = H.banner("Nothing needs action right now.", "info")
            return
        items.sort(key=lambda it: 0 if it[0] == "red" else 1)
        lis = "".join(
            f'<li style="border-left-color:{H.LEVEL_COLORS.get(lv, H.NEUTRAL)}">{text}</li>'
            for lv, text in items[:8]
        )
        self.attention.value = (
            '<div class="tm-card" data-panel="attention"><div class="tm-card-title">'
            f'Needs attention</div><ul class="tm-attn">{lis}</ul></div>'
        )

    # ----------------------------------------------------------------------- auto-refresh

    def _schedule(self) -> None:
        """(Re)start the auto-refresh task on the kernel's event loop, or stop it."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        loop = _running_loop()
        if not self.w_auto.value or loop is None:
            return
        self._task = loop.create_task(self._loop(max(5, int(self.w_interval.value or 30))))

    async def _loop(self, interval: int) -> None:
        while True:
            # A slow read (FerretDB scans whole collections) must not keep the database busy:
            # wait at least 4 x the last read, i.e. the page takes at most ~20 % of its time.
            await asyncio.sleep(max(interval, 4.0 * self.last_timings.get("read", 0.0)))
            try:
                self.refresh(background=True)
            except Exception:  # noqa: BLE001 - keep the loop alive whatever happens
                log.exception("auto-refresh failed")


def _delay_legend() -> str:
    """The colour scale of every delay chart: a swatch per 7.5 min, 15 = FAA on-time limit."""
    stops = [(c, f"{i * 7.5:g}") for i, c in enumerate(H.DELAY_PALETTE[:-1])]
    return "avg delay " + H.legend([*stops, (H.DELAY_PALETTE[-1], "45+ min")])


def _gap(box: W.Box) -> W.Box:
    """ipywidgets' Layout has no ``gap``: a CSS class gives it."""
    box.add_class("tm-gap")
    return box


def _running_loop() -> asyncio.AbstractEventLoop | None:
    """The kernel's event loop when code runs inside one (Voila, Jupyter), else None."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        pass
    try:
        loop = asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        return None
    return loop if loop.is_running() else None
