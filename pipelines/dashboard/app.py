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
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import ipywidgets as W
import pandas as pd
from pymongo.database import Database
from pymongo.errors import PyMongoError

from .. import config, mongo
from ..config import Settings
from ..exceptions import ServiceUnavailableError, TarmacError
from . import queries as Q
from . import widgets as H
from .charts import AirportChart, CarrierChart, HeatmapChart, HourlyChart, RouteMap, WeatherCharts

log = logging.getLogger("tarmac.dashboard")

SORTS = {
    "Scheduled time": (["sched_dep_utc"], [True]),
    "Delay (longest first)": (["delay", "sched_dep_utc"], [False, True]),
    "Status": (["status", "sched_dep_utc"], [True, True]),
    "Airline": (["carrier", "sched_dep_utc"], [True, True]),
    "Destination": (["dest", "sched_dep_utc"], [True, True]),
    "Airport": (["origin", "sched_dep_utc"], [True, True]),
}
PERIODS = ("Today", "Yesterday", "Last 7 days", "All loaded")
PATTERN_TTL_S = 600.0  # heat map / weather impact: whole-period patterns, re-read at most this often


class _Offline(Exception):
    """MongoDB stopped answering in the middle of a redraw."""


@dataclass
class _State:
    db: Database | None = None
    clock: datetime | None = None
    extent: Q.Extent = Q.Extent()
    has_data: bool = False
    board: pd.DataFrame | None = None
    carriers: pd.DataFrame | None = None
    kpis: Q.KpiSummary | None = None
    follow_today: bool = True  # the date range follows the replay clock's day


class Dashboard:
    """The airport operations dashboard of one env (its MongoDB serving database)."""

    def __init__(
        self,
        settings: Settings,
        refresh_s: float = 30.0,
        freshness_rules: dict[str, Q.FreshnessRule] | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.settings = settings
        self.refresh_s = refresh_s
        self.freshness_rules = freshness_rules or Q.DEFAULT_FRESHNESS
        self._now = now or (lambda: datetime.now(UTC))
        self.state = _State()
        self._patterns: dict[Any, tuple[float, Any]] = {}
        self._task: asyncio.Task | None = None
        self._mute = False  # programmatic filter changes do not trigger redraws
        self.last_timings: dict[str, float] = {}
        self._build()

    @classmethod
    def from_env(cls, env: str | None = None, **kwargs: Any) -> Dashboard:
        """Dashboard of ``env`` (default ``$TARMAC_ENV`` or local; ``$MONGO_URI`` and
        ``$MONGO_DATABASE`` override the parameters file)."""
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
            options=PERIODS, value="Today", style={"button_width": "82px"}
        )
        self.w_from = W.DatePicker(description="From", layout=lay(width="200px"))
        self.w_to = W.DatePicker(description="To", layout=lay(width="200px"))
        self.w_auto = W.ToggleButton(
            value=True, description="Auto-refresh", icon="refresh", layout=lay(width="130px")
        )
        self.w_interval = W.BoundedIntText(
            value=int(self.refresh_s), min=5, max=3600, description="every (s)",
            layout=lay(width="150px"),
        )  # fmt: skip
        self.w_refresh = W.Button(description="Refresh now", layout=lay(width="120px"))
        self.w_reset = W.Button(description="Reset filters", layout=lay(width="120px"))
        self.busy = W.HTML()
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
            layout=lay(flex_flow="row wrap", align_items="flex-start", gap="10px"),
        )
        filters.add_class("tm-filters")

        # KPI tiles
        self.tiles = {key: W.HTML(layout=lay(flex="1 1 0", min_width="170px")) for key, _ in H.TILES}
        self.tiles_note = W.HTML()
        tiles = W.HBox(list(self.tiles.values()), layout=lay(gap="10px", width="100%"))

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
        self.w_late_only = W.Checkbox(value=False, description="late / cancelled only", indent=False)
        self.board_title = W.HTML()
        self.board = W.HTML()
        self.export = W.HTML()
        self.export.add_class("tm-export")
        self.rejects = W.HTML()

        def card(*children: W.Widget, name: str, **layout: Any) -> W.VBox:
            box = W.VBox(list(children), layout=lay(**{"flex": "1 1 0", "min_width": "0", **layout}))
            box.add_class("tm-card")
            box.add_class(f"tm-panel-{name}")
            return box

        row = {"gap": "12px", "width": "100%", "align_items": "stretch"}
        self.panels = {
            "hourly": card(self.hourly_title, self.hourly.figure, name="hourly", flex="2 1 0"),
            "airports": card(
                self.airports_title, self.airports.figure, self.airports_table, name="airports"
            ),
            "carriers": card(self.carriers_title, self.w_metric, self.carriers.figure,
                             name="carriers"),
            "heatmap": card(self.heatmap_title, self.heatmap.figure, name="heatmap", flex="3 2 0"),
            "map": card(
                self.map_title,
                W.HBox([self.map.figure, self.map_table], layout=lay(gap="10px")),
                name="map",
                flex="3 1 0",
            ),
            "weather": card(
                self.weather_title, W.HBox(self.weather.figures, layout=lay(width="100%")),
                name="weather", flex="2 1 0",
            ),
            "board": card(
                self.board_title,
                W.HBox([self.w_sort, self.w_late_only, self.export],
                       layout=lay(gap="14px", align_items="center")),
                self.board,
                name="board",
                flex="3 1 0",
            ),
            "rejects": card(self.rejects, name="rejects"),
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
            ],
            layout=lay(gap="10px", padding="8px 14px", max_width="1560px", margin="0 auto"),
        )
        self.root.add_class("tm-root")

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
        """Display the page, draw it and start the auto-refresh."""
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

    def refresh(self) -> None:
        """Re-read everything: clock, freshness, health, filters' options, every panel."""
        started = time.perf_counter()
        self.busy.value = '<span class="tm-busy">refreshing…</span>'
        try:
            db = self._connect()
            self.state.db = db
            self.state.clock = Q.replay_clock(db)
            self.state.has_data = Q.has_data(db)
            self.state.extent = Q.extent(db)
            self._draw_header()
            self._sync_filter_options()
            if not self.state.has_data:
                self._show_empty()
                return
            self.banner.value = ""
            self._redraw(rejects=True)
        except (ServiceUnavailableError, _Offline, PyMongoError) as exc:
            self._show_offline(exc)
        except Exception as exc:  # noqa: BLE001 - the page must never show a traceback
            log.exception("dashboard refresh failed")
            self.banner.value = H.banner(
                f"The dashboard could not be refreshed ({H.esc(type(exc).__name__)}: "
                f"{H.esc(exc)}). It keeps trying; details are in the Voila log.",
                "red",
            )
        finally:
            self.last_timings["refresh"] = time.perf_counter() - started
            stamp = datetime.now(UTC).astimezone(Q.NY).strftime("%H:%M:%S")
            self.busy.value = f'<span class="tm-busy">page refreshed at {stamp} (wall)</span>'

    def reset_filters(self) -> None:
        with self._muted():
            self.w_airports.value = Q.ORIGINS
            self.w_carriers.value = ()
            self.state.follow_today = True
            self.w_period.value = "Today"
            self._apply_period("Today")
        self._guarded(self._redraw)

    # ---------------------------------------------------------------------------- helpers

    def _connect(self) -> Database:
        if not mongo.ping(self.settings, timeout_ms=1500):
            raise ServiceUnavailableError(
                f"MongoDB at {self.settings.mongo.uri} does not answer "
                f"(env {self.settings.env}); run `make stack-up ENV={self.settings.env}`"
            )
        return mongo.database(self.settings)

    @contextlib.contextmanager
    def _muted(self) -> Iterator[None]:
        previous, self._mute = self._mute, True
        try:
            yield
        finally:
            self._mute = previous

    def _guarded(self, draw: Callable[[], None]) -> None:
        """Run a redraw from a widget callback; errors become a banner, never a traceback."""
        if self.state.db is None or not self.state.has_data:
            return
        try:
            draw()
        except (ServiceUnavailableError, _Offline, PyMongoError) as exc:
            self._show_offline(exc)
        except Exception as exc:  # noqa: BLE001
            log.exception("dashboard redraw failed")
            self.banner.value = H.banner(
                f"A panel could not be drawn ({H.esc(type(exc).__name__)}: {H.esc(exc)}).", "red"
            )

    def _panel(self, name: str, target: W.HTML | None, draw: Callable[[], None]) -> None:
        """Draw one panel; a database error aborts the redraw, anything else stays local."""
        try:
            draw()
        except (ServiceUnavailableError, PyMongoError) as exc:
            raise _Offline(str(exc)) from exc
        except Exception as exc:  # noqa: BLE001
            log.exception("panel %s failed", name)
            if target is not None:
                target.value = H.empty(f"{name}: could not be drawn ({type(exc).__name__}: {exc})")

    def _show_offline(self, exc: BaseException) -> None:
        self.state.db = None
        text = str(exc) if isinstance(exc, TarmacError) else f"{type(exc).__name__}: {exc}"
        self.banner.value = H.banner(
            "<b>Database not reachable.</b> "
            f"{H.esc(text[:400])}<br>The page retries at every refresh; figures below are "
            "the last ones read.",
            "red",
        )
        if not self.header.value:
            self.header.value = self._header_html(None, None, None)

    def _show_empty(self) -> None:
        db_name = self.settings.mongo.database
        self.banner.value = H.banner(
            f"<b>No flight data yet</b> in database <code>{H.esc(db_name)}</code> "
            f"(env {H.esc(self.settings.env)}). Start the replay and the jobs "
            "(<code>make demo</code>); this page fills in at the next refresh.",
            "info",
        )
        for tile in self.tiles.values():
            tile.value = ""
        for title in (self.hourly_title, self.carriers_title, self.airports_title,
                      self.heatmap_title, self.weather_title, self.map_title):  # fmt: skip
            title.value = H.empty("waiting for data")
        self.board.value = H.empty("No departures yet.")
        self._panel("Rejects", self.rejects, self._draw_rejects)

    # ------------------------------------------------------------------------- filters

    def _sync_filter_options(self) -> None:
        ext = self.state.extent
        options = [(f"{code} · {name}"[:34], code) for code, name in ext.carriers]
        with self._muted():
            if list(self.w_carriers.options) != options:
                keep = tuple(c for c in self.w_carriers.value if c in dict(ext.carriers))
                self.w_carriers.options = options
                self.w_carriers.value = keep
            if self.state.follow_today:
                self._apply_period(self.w_period.value)

    def _clock_day(self) -> date | None:
        if self.state.clock is not None:
            return Q.local_date(self.state.clock)
        return self.state.extent.last

    def _apply_period(self, period: str) -> None:
        day, ext = self._clock_day(), self.state.extent
        if day is None:
            return
        first = ext.first or day
        start, end = {
            "Today": (day, day),
            "Yesterday": (day - timedelta(days=1), day - timedelta(days=1)),
            "Last 7 days": (max(first, day - timedelta(days=6)), day),
            "All loaded": (first, max(day, ext.last or day)),
        }.get(period, (self.w_from.value or day, self.w_to.value or day))
        self.w_from.value, self.w_to.value = start, end

    def _on_period(self, change: dict[str, Any]) -> None:
        if self._mute:
            return
        with self._muted():
            self.state.follow_today = True
            self._apply_period(change["new"])
        self._guarded(self._redraw)

    def _on_dates(self, change: dict[str, Any]) -> None:
        if self._mute:
            return
        self.state.follow_today = False  # a date picked by hand stays put
        if self.w_from.value and self.w_to.value and self.w_from.value > self.w_to.value:
            with self._muted():
                other = self.w_to if change["owner"] is self.w_from else self.w_from
                other.value = change["new"]
        self._guarded(self._redraw)

    def _on_filter(self, change: dict[str, Any]) -> None:
        if not self._mute:
            self._guarded(self._redraw)

    # -------------------------------------------------------------------------- drawing

    def _redraw(self, rejects: bool = False) -> None:
        started = time.perf_counter()
        self.busy.value = '<span class="tm-busy">updating…</span>'
        scope = self.scope()
        steps: list[tuple[str, W.HTML | None, Callable[[], None]]] = [
            ("KPIs", self.tiles_note, lambda: self._draw_tiles(scope)),
            ("Delay by hour", self.hourly_title, lambda: self._draw_hourly(scope)),
            ("Airlines", self.carriers_title, lambda: self._load_carriers(scope)),
            ("Airports", self.airports_table, lambda: self._draw_airports(scope)),
            ("Heat map", self.heatmap_title, lambda: self._draw_heatmap(scope)),
            ("Weather impact", self.weather_title, lambda: self._draw_weather(scope)),
            ("Routes", self.map_table, lambda: self._draw_routes(scope)),
            ("Live board", self.board, lambda: self._draw_board(scope)),
        ]
        if rejects:
            steps.append(("Rejects", self.rejects, self._draw_rejects))
        for name, target, draw in steps:
            self._panel(name, target, draw)
        self._panel("Attention", self.attention, self._draw_attention)
        self.last_timings["redraw"] = time.perf_counter() - started
        self.busy.value = ""

    def _header_html(self, clock, fresh: pd.DataFrame | None, health: pd.DataFrame | None) -> str:
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
        if fresh is not None:
            for rec in fresh.to_dict("records"):
                parts = []
                if rec["replay_age"] is not None:
                    parts.append(f"{H.ago(rec['replay_age'])} behind")
                parts.append(f"updated {H.ago(rec['wall_age'])} ago")
                if rec["level"] == "missing":
                    parts = ["never ran"]
                title = (
                    f"newest data {H.local_time(rec['newest'])} (replay time); "
                    f"updated_at {rec['updated_at']} (wall); {H.LEVEL_WORDS[rec['level']]}"
                )
                pills.append(H.pill(rec["source"], " · ".join(parts), rec["level"], title))
        jobs = []
        if health is not None:
            for rec in health.to_dict("records"):
                if rec["status"] is None:
                    text = "no run yet"
                else:
                    when = rec["end"] or rec["start"]
                    age = (self._now() - when) if when else None
                    text = f"{rec['status']} {H.ago(age)} ago · {rec['failures_24h']} failed/24h"
                jobs.append(H.pill(rec["job"], text, rec["level"], rec.get("error") or ""))
        return (
            '<div class="tm-header">'
            '<div style="display:flex;justify-content:space-between;align-items:flex-end;'
            'flex-wrap:wrap;gap:12px">'
            f'<div><div class="tm-title">Tarmac · New York airports control room</div>'
            f'<div class="tm-sub">EWR · JFK · LGA — env {H.esc(env)}, database '
            f"{H.esc(self.settings.mongo.database)}</div></div>{clock_html}</div>"
            f'<div class="tm-pills"><span class="tm-sub">Freshness</span>{"".join(pills)}'
            f'<span class="tm-sub" style="margin-left:10px">Jobs</span>{"".join(jobs)}</div>'
            "</div>"
        )

    def _draw_header(self) -> None:
        db, now = self.state.db, self._now()
        fresh = Q.freshness(db, self.state.clock, now, self.freshness_rules)
        health = Q.pipeline_health(db, now)
        self._fresh, self._health = fresh, health
        self.header.value = self._header_html(self.state.clock, fresh, health)

    def _scope_text(self, scope: Q.Scope, carriers: bool = True, dates: bool = True) -> str:
        parts = [" + ".join(scope.airports) if scope.airports else "all airports"]
        if carriers:
            parts.append(" + ".join(scope.carriers) if scope.carriers else "all airlines")
        if dates and scope.date_from and scope.date_to:
            a, b = scope.date_from, scope.date_to
            parts.append(a.strftime("%a %d %b %Y") if a == b else f"{a:%d %b} – {b:%d %b %Y}")
        return " · ".join(parts)

    def _draw_tiles(self, scope: Q.Scope) -> None:
        kpis = Q.kpi_summary(self.state.db, scope, self.state.clock, self.state.extent.dates)
        self.state.kpis = kpis
        label = H.weekday_label(kpis.dates) if kpis.dates else "weekday"
        for key, title in H.TILES:
            extra = ""
            if key == "cancelled" and math.isfinite(kpis.value.get("cancel_pct", math.nan)):
                extra = f"<small> ({kpis.value['cancel_pct']:.1f} %)</small>"
            self.tiles[key].value = H.kpi_tile(key, title, kpis, label, extra)
        bits = [self._scope_text(scope)]
        if kpis.cut_hour is not None:
            bits.append(f"today counts flights scheduled up to {kpis.cut_hour:02d}:59")
        if kpis.baseline is not None:
            n = len(kpis.baseline_dates)
            bits.append(
                f"compared with the average {label} ({n} day{'s' if n != 1 else ''}"
                f"{', same hours' if kpis.cut_hour is not None else ''})"
            )
        else:
            bits.append(f"no comparison: {kpis.note}")
        if kpis.basis == "kpi_carrier_daily":
            bits.append("airline filter: whole days")
        self.tiles_note.value = f'<div class="tm-card-sub">{H.esc(" · ".join(bits))}</div>'

    def _draw_hourly(self, scope: Q.Scope) -> None:
        frame = Q.hourly_series(self.state.db, scope)
        current = None
        if self.state.clock is not None and len(frame):
            hour = pd.Timestamp(self.state.clock).floor("h")
            match = frame.loc[frame["hour_utc"] == hour, "label"]
            current = match.iloc[0] if len(match) else None
        self.hourly.update(frame, current)
        note = " (airline filter does not apply: hourly KPIs are per airport)" if scope.carriers else ""
        sub = (
            f"{H.esc(self._scope_text(scope, carriers=False))} · by scheduled local hour · "
            f"line: avg departure delay, bars: flights, dashed: 15 min on-time limit{note}"
        )
        if frame.empty:
            sub += " · <b>no flights in this selection</b>"
        self.hourly_title.value = H.card_title("Delay by hour", sub)

    def _load_carriers(self, scope: Q.Scope) -> None:
        self.state.carriers = Q.carrier_table(self.state.db, scope)
        self._draw_carriers()

    def _draw_carriers(self) -> None:
        frame = self.state.carriers if self.state.carriers is not None else pd.DataFrame()
        if frame.empty:
            frame = Q.derive(pd.DataFrame(columns=["carrier", *Q.MEASURES]))
        self.carriers.update(frame, self.w_metric.value)
        worst = frame[frame["departed"] >= 5].sort_values("avg_dep_delay", ascending=False)
        sub = f"{H.esc(self._scope_text(self.scope()))} · worst on top · colour = avg delay"
        if not worst.empty:
            w = worst.iloc[0]
            sub += (
                f" · slipping most: <b>{H.esc(w['carrier'])}</b> {H.esc(w['carrier_name'])} "
                f"({w['avg_dep_delay']:.0f} min, {H.num(w['on_time_pct'], 0)} % on time)"
            )
        elif frame.empty or frame["departed"].sum() == 0:
            sub += " · <b>no departures in this selection</b>"
        self.carriers_title.value = H.card_title("Airline leaderboard", sub)

    def _draw_airports(self, scope: Q.Scope) -> None:
        frame = Q.airport_table(self.state.db, scope)
        self.airports.update(frame, scope.airports)
        wx = (
            Q.weather_now(self.state.db, self.state.clock)
            if self.state.clock is not None
            else pd.DataFrame()
        )
        rows = []
        for rec in frame.to_dict("records"):
            o = rec["origin"]
            w = wx.loc[o] if (not wx.empty and o in wx.index) else None
            if w is not None and pd.notna(w.get("visib_band")):
                wet = "precip." if bool(w.get("precip")) else "dry"
                weather = (
                    f"{H.esc(w.get('visib_band'))} · {H.esc(w.get('wind_band'))} · {wet}"
                )
                bad = w.get("visib_band") in ("< 1 mi", "1-3 mi") or w.get("wind_band") == "30+ mph"
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
        sub = f"{H.esc(self._scope_text(scope))} · bars: avg departure delay (min)"
        self.airports_title.value = H.card_title("Airports", sub)

    def _pattern(self, key: Any, load: Callable[[], Any]) -> Any:
        """Whole-period patterns change slowly: cached per key for PATTERN_TTL_S."""
        hit = self._patterns.get(key)
        if hit and time.monotonic() - hit[0] < PATTERN_TTL_S:
            return hit[1]
        value = load()
        self._patterns[key] = (time.monotonic(), value)
        return value

    def _until(self) -> str | None:
        day = self._clock_day()
        return day.isoformat() if day else None

    def _draw_heatmap(self, scope: Q.Scope) -> None:
        until = self._until()
        grid = self._pattern(
            ("heat", scope.airports, until),
            lambda: Q.weekday_hour_heatmap(self.state.db, scope.airports, until),
        )
        self.heatmap.update(grid)
        ext = self.state.extent
        span = f"{ext.first:%d %b} – {until}" if ext.first else "—"
        sub = (
            f"avg departure delay (min) by weekday × local hour · every loaded day ({H.esc(span)})"
            f" · {H.esc(' + '.join(scope.airports) or 'all airports')} · grey: no departures"
        )
        self.heatmap_title.value = H.card_title("When do delays build up?", sub)

    def _draw_weather(self, scope: Q.Scope) -> None:
        until = self._until()
        tables = self._pattern(
            ("weather", scope.airports, until),
            lambda: Q.weather_impact(self.state.db, scope.airports, until),
        )
        self.weather.update(tables)
        n = float(tables["precip"]["flights"].fillna(0).sum()) if len(tables["precip"]) else 0.0
        sub = (
            f"avg departure delay (min) by the weather at the airport at the scheduled hour · "
            f"every loaded day · {H.esc(' + '.join(scope.airports) or 'all airports')} · "
            f"{H.num(n)} flights with known weather"
        )
        self.weather_title.value = H.card_title("Is the weather the cause?", sub)

    def _draw_routes(self, scope: Q.Scope) -> None:
        frame = Q.routes(self.state.db, scope)
        self.map.update(frame)
        months = ", ".join(scope.months() or []) or "all months"
        unmapped = sorted(frame.loc[frame["dest_lat"].isna(), "dest"]) if len(frame) else []
        sub = (
            f"{H.esc(' + '.join(scope.airports) or 'all airports')} · {H.esc(months)} (monthly "
            "KPIs) · colour = avg departure delay, dot size = flights"
        )
        if unmapped:
            sub += f" · not on the map: {H.esc(', '.join(unmapped))}"
        sub += "<br>" + H.legend(
            [(H.DELAY_COLORS[0], "on time"), (H.DELAY_COLORS[1], "15 min"),
             (H.DELAY_COLORS[2], "45+ min")]
        )  # fmt: skip
        self.map_title.value = H.card_title("Routes from New York", sub)
        if frame.empty:
            self.map_table.value = H.empty("No routes in this selection.")
            return
        busy = frame[frame["departed"] >= 10] if (frame["departed"] >= 10).any() else frame
        worst = busy.sort_values("avg_dep_delay", ascending=False).head(10)
        shown = pd.DataFrame(
            {
                "dest": [
                    f'<b>{H.esc(d)}</b> <span style="color:#5f6b76">{H.esc(str(n)[:22])}</span>'
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
            '<div class="tm-card-sub">Most delayed routes (≥ 10 departures when possible)</div>'
            + H.table(
                shown,
                [("dest", "Destination", "html"), ("flights", "Flights", "num"),
                 ("delay", "Avg delay", "html")],
            )  # fmt: skip
        )

    def _draw_board(self, scope: Q.Scope) -> None:
        clock = self.state.clock
        if clock is None:
            self.state.board = None
            self.board.value = H.empty("No replay clock yet: the flight stream has not run.")
            return
        self.state.board = Q.live_board(self.state.db, scope, clock)
        self._draw_board_table()

    def _draw_board_table(self) -> None:
        frame, clock = self.state.board, self.state.clock
        if frame is None or clock is None:
            return
        local = clock.astimezone(Q.NY)
        late = frame[(frame["delay"] > 15) | (frame["status"] == "cancelled")]
        self.board_title.value = H.card_title(
            "Live departures board",
            f"{H.esc(self._scope_text(self.scope(), dates=False))} · scheduled "
            f"{(local - timedelta(hours=1)):%H:%M} – {(local + timedelta(hours=1)):%H:%M} "
            f"(now {local:%H:%M}) · {len(frame)} departures, <b>{len(late)} late or cancelled</b>"
            "<br>"
            + H.legend([("#fff4e0", "> 15 min late"), ("#fdecea", "> 60 min late"),
                        ("#e0e0e0", "cancelled")]),
        )  # fmt: skip
        if self.w_late_only.value:
            frame = late
        by, ascending = SORTS[self.w_sort.value]
        frame = frame.sort_values(by, ascending=ascending, na_position="last", kind="stable")
        stamp = local.strftime("%Y%m%dT%H%M")
        export = frame.drop(columns=["_id"]).assign(
            sched_dep_utc=frame["sched_dep_utc"].astype(str)
        )
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
                ""
                if pd.isna(d)
                else f"{d:+.0f}" + (" (so far)" if k == "late, not departed" else "")
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
            ).replace('<td class="status">', '<td class="st">')
            + "</div>"
        )

    def _carriers_link(self, stamp: str) -> str:
        frame = self.state.carriers
        if frame is None or frame.empty:
            return ""
        cols = ["carrier", "carrier_name", *Q.MEASURES, *Q.DERIVED]
        return H.csv_link(frame[cols].round(2), f"tarmac_airlines_{stamp}.csv", "Airlines CSV")

    def _draw_rejects(self) -> None:
        summary = Q.rejects_summary(self.state.db)
        title = H.card_title(
            "Rejected records",
            f"{H.num(summary.total)} refused by the pipeline"
            + (f" (counts of the newest {H.num(summary.read)})" if summary.read < summary.total
               else ""),
        )  # fmt: skip
        if summary.by_reason.empty:
            self.rejects.value = title + H.empty("Nothing rejected. All input passed validation.")
            return
        by_source = " ".join(
            f'<span class="tm-badge" style="background:{H.WATCH}">{H.esc(s)}: {H.num(c)}</span>'
            for s, c in zip(summary.by_source["source"], summary.by_source["count"], strict=True)
        )
        top = summary.by_reason.head(12).assign(
            count=lambda f: [H.num(c) for c in f["count"]],
            last=lambda f: [H.ago(self._now() - t) + " ago" if pd.notna(t) else "—"
                            for t in f["last_at"]],
            reason=lambda f: [str(r)[:90] for r in f["reason"]],
        )  # fmt: skip
        self.rejects.value = (
            title
            + f"<div>{by_source}</div>"
            + '<div class="tm-scroll" style="max-height:300px;margin-top:6px">'
            + H.table(
                top,
                [("source", "Source", ""), ("reason", "Reason", ""), ("count", "Count", "num"),
                 ("last", "Last (wall)", "")],
                attrs='data-table="rejects"',
            )  # fmt: skip
            + "</div>"
        )

    def _draw_attention(self) -> None:
        items: list[tuple[str, str]] = []
        fresh = getattr(self, "_fresh", None)
        if fresh is not None:
            for rec in fresh.to_dict("records"):
                if rec["level"] in ("amber", "red"):
                    behind = (
                        f"{H.ago(rec['replay_age'])} behind the replay clock, "
                        if rec["replay_age"] is not None
                        else ""
                    )
                    items.append(
                        (rec["level"], f"<b>{H.esc(rec['source'])}</b> is "
                         f"{H.LEVEL_WORDS[rec['level']]}: {behind}"
                         f"last updated {H.ago(rec['wall_age'])} ago")
                    )  # fmt: skip
        health = getattr(self, "_health", None)
        if health is not None:
            for rec in health.to_dict("records"):
                if rec["level"] == "red":
                    items.append(("red", f"<b>{H.esc(rec['job'])}</b>: last run "
                                  f"{H.esc(rec['status'])} — {H.esc(rec.get('error') or '')}"))
                elif rec["failures_24h"]:
                    items.append(("amber", f"<b>{H.esc(rec['job'])}</b>: "
                                  f"{rec['failures_24h']} failed run(s) in 24 h"))  # fmt: skip
        board = self.state.board
        if board is not None and len(board):
            clock = pd.Timestamp(self.state.clock)
            waiting = board[(board["delay_kind"] == "late, not departed") & (board["delay"] > 15)]
            if len(waiting):
                items.append(("red" if (waiting["delay"] > 60).any() else "amber",
                              f"<b>{len(waiting)}</b> flight(s) past departure time and not "
                              f"departed yet (up to {waiting['delay'].max():.0f} min)"))  # fmt: skip
            recent = board[(board["sched_dep_utc"] <= clock) & (board["delay"] > 60)]
            if len(recent):
                items.append(("red", f"<b>{len(recent)}</b> departure(s) of the last hour more "
                              "than 60 min late"))  # fmt: skip
        kpis = self.state.kpis
        if kpis is not None and kpis.baseline is not None:
            v, b = kpis.value["avg_dep_delay"], kpis.baseline["avg_dep_delay"]
            if math.isfinite(v) and math.isfinite(b) and v - b > 10:
                items.append(("amber", f"average departure delay {v:.0f} min, "
                              f"{v - b:.0f} min above a usual day"))  # fmt: skip
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
        if not self.w_auto.value:
            return
        try:
            loop = asyncio.get_event_loop()
        except RuntimeError:
            return
        self._task = loop.create_task(self._loop(max(5, int(self.w_interval.value))))

    async def _loop(self, interval: int) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                self.refresh()
            except Exception:  # noqa: BLE001 - keep the loop alive whatever happens
                log.exception("auto-refresh failed")
