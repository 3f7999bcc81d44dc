"""The page following the stream (issue 17): a daemon thread wakes every ``interval`` seconds
(:data:`~.live.LIVE_S`), reads the one ``pipeline_state.flights_stream`` document by ``_id``
and, only when a batch id of the stream moved, reads by ``_id`` the ``flights_by_hour``
buckets of the hours on screen and the ``kpi_hourly`` documents of the selected day's hours,
each with the hot path's bucket of the same ``_id`` (``readmodels.resolve``); after a batch of
the live board alone, only the hot buckets it raised (:class:`Buckets`, ``live.touched``);
what it read is drawn on the kernel's event loop (ipywidgets are not thread-safe) by the page
(:class:`Following`, a base of ``app.Dashboard``). Between two polls the thread sleeps
(``Event.wait``): an idle page costs one lookup by ``_id`` a poll.

Measured on 2 cores shared with other work (load 9 to 15), FerretDB v1.24, env ci, the
2013-01-01 .. 01-02 window: a poll that finds nothing new 5 ms median; after a batch the read
(1 state + 9 board buckets + 57 hours) 256 ms median and the redraw 214 ms median (board
96 ms, tiles 25 ms, header 22 ms, attention 20 ms); the Voila kernel of an open page uses
0.08 % of a core idle-polling every 2.5 s (0.07 % without polling, 1.3 % with the 30 s full
refresh on) and 4.8 % with a batch landing every 2 s. With the hour rows derived from the hot
board buckets, a full read looks up 1 state + 9 board + 45 hours + 48 hot buckets; after a
board batch a cached follower looks up the state and the one to ten buckets it raised. With a
live day's airlines and weather derived from its buckets (``live_rows``), a full read looks up
every bucket of the live days (72 a day, both paths; the board's 9 among them).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
from pymongo.database import Database

from pipelines.clients import mongo
from pipelines.core.config import Settings
from pipelines.serving import readmodels as RM
from pipelines.serving.buckets import Buckets

from . import kpi_frames, queries
from .decode import board_frame, daily_rows, hourly_frame
from .health import stream_levels
from .live import STREAM, Marks, board_window, hour_ids, live_dates, marks, moved
from .reading import UNREACHABLE, log
from .state import Live, State


@dataclass
class LiveRead:
    """What a poll read: the stream's state document and its marks; after a batch also the
    board around its clock and the ``kpi_hourly`` rows of ``dates`` (``full``)."""

    state: dict[str, Any]
    marks: Marks | None
    clock: datetime | None
    full: bool = False
    board: pd.DataFrame | None = None
    hot: pd.DataFrame | None = None
    live: kpi_frames.Rows | None = None
    dates: list[str] = field(default_factory=list)
    reads: Counter = field(default_factory=Counter)
    seconds: float = 0.0


def read_state(db: Database, reads: Counter | None = None) -> dict[str, Any] | None:
    """``pipeline_state.flights_stream``, by ``_id``."""
    if reads is not None:
        reads[RM.STATE] += 1
    return db[RM.STATE].find_one({"_id": STREAM})


def read_hot(db: Database, dates: list[str], clock: datetime, reads: Counter | None = None):
    """The ``kpi_hourly`` rows of the hours of ``dates`` started by ``clock``, by ``_id``."""
    # the hot path's row where it knows more
    return hourly_frame(queries.resolved(db, RM.KPI_HOURLY, hour_ids(dates, clock), reads=reads))


def live_rows(dates: list[str], boards: Callable[[list[str]], list[dict]]) -> kpi_frames.Rows:
    """The rows of ``dates`` (the live dates) derived from every board bucket of each, as
    ``boards`` gives them resolved (``readmodels.day_doc``): a live date's airlines and weather
    follow the live board instead of waiting for the lake path's ``kpi_daily``."""
    docs = (RM.day_doc(d, boards(RM.board_keys([d]))) for d in dates)
    return daily_rows([{**doc, "hours": []} for doc in docs], dates)  # the hours: ``hot``


# a live day's airlines, airports and weather are drawn again at most this often (their
# target is 30 s; the board and the tiles after every batch): each draw sends charts to the
# browser, which shares the cores with the stream; a change left undrawn is drawn by the next
# batch after it or by the page's refresh (``refresh_s``)
DAY_DRAW_S = 5.0


def poll(
    db: Database, live: Live, now: datetime, reads: Counter | None = None,
    cache: Buckets | None = None,
) -> LiveRead | None:  # fmt: skip
    """One poll for a page that drew ``live``: None when nothing it shows changed; the state
    alone when only the stream's health levels did; everything when a batch id moved (with a
    ``cache``, reading again only the buckets that changed). The documents looked up by ``_id``
    are counted in ``reads`` (per collection)."""
    reads = Counter() if reads is None else reads
    started = time.perf_counter()
    state = read_state(db, reads)
    if state is None:
        return None
    now_marks = marks(state)
    clock = RM.utc(state.get("newest_event_time"))
    out = LiveRead(state, now_marks, clock, reads=reads)
    if moved(live.seen, now_marks):
        out.full, out.dates = True, list(live.dates)
        if clock is not None and cache is None:
            out.board = queries.read_board(db, clock, reads=reads)
            out.hot = read_hot(db, out.dates, clock, reads)
            out.live = live_rows(out.dates, lambda ids: queries.resolved(
                db, RM.BOARD, ids, queries.BOARD_PROJECTION, reads))  # fmt: skip
        elif clock is not None:
            keys, start, end = board_window(clock)
            hours = hour_ids(out.dates, clock)
            boards = list(dict.fromkeys([*keys, *RM.board_keys(out.dates)]))
            cache.update(db, state, {RM.BOARD: boards, RM.KPI_HOURLY: hours}, reads)
            out.board = board_frame(cache.resolved(RM.BOARD, keys), start, end)
            out.hot = hourly_frame(cache.resolved(RM.KPI_HOURLY, hours))
            out.live = live_rows(out.dates, lambda ids: cache.resolved(RM.BOARD, ids))
    elif stream_levels({STREAM: state}, now) == live.levels:
        return None
    out.seconds = time.perf_counter() - started
    return out


class Follower:
    """Polls for a page every ``interval`` seconds in a daemon thread while started.

    ``live``: what the page shows (read in the thread, set on the loop), None while the page
    has nothing to follow (no snapshot, a full refresh running); ``apply``: draws a
    :class:`LiveRead` (on ``loop``, or in the caller for :meth:`once`)."""

    def __init__(
        self,
        settings: Settings,
        interval: float,
        live: Callable[[], Live | None],
        apply: Callable[[LiveRead], None],
        now: Callable[[], datetime],
    ) -> None:
        self.settings, self.interval = settings, interval
        self._live, self._apply, self._now = live, apply, now
        self._db: Database | None = None
        self.cache = Buckets()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.polls = 0  # polls made (tests, benchmarks)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Poll in a daemon thread, drawing on ``loop``, until :meth:`stop`."""
        self.stop()
        self._stop = stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(loop, stop), name="tarmac-follow", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread = None

    def once(self) -> LiveRead | None:
        """One poll in the caller, drawn in the caller (tests; no kernel)."""
        result = self._poll()
        if result is not None:
            self._apply(result)
        return result

    def _poll(self) -> LiveRead | None:
        live = self._live()
        if live is None:
            return None
        self.polls += 1
        try:
            if self._db is None:
                self._db = mongo.database(self.settings)
            return poll(self._db, live, self._now(), cache=self.cache)
        except UNREACHABLE:  # the full refresh says so on the page; reconnect next time
            self._db, self.cache = None, Buckets()
        except Exception:  # noqa: BLE001 - the thread must keep polling
            log.exception("live poll failed")
        return None

    def _run(self, loop: asyncio.AbstractEventLoop, stop: threading.Event) -> None:
        while not stop.wait(self.interval):
            result = self._poll()
            if result is None or stop.is_set():
                continue
            try:
                loop.call_soon_threadsafe(self._apply, result)
            except RuntimeError:  # the kernel is shutting down
                return


class Following:
    """What ``app.Dashboard`` does with a :class:`Follower`: tell it what the page shows,
    draw what it read (the board, the tiles, the header and "Needs attention")."""

    # what it uses of the page (``app.Dashboard`` defines them)
    state: State
    follower: Follower
    live_draws: int
    last_timings: dict[str, float]
    header_panel: Any
    tiles_panel: Any
    board_panel: Any
    attention_panel: Any
    day_panels: list[Any]
    refresh: Callable[..., None]
    guarded: Callable[[Callable[[], None]], None]
    scope: Callable[[], kpi_frames.Scope]
    now: Callable[[], datetime]
    _draw_panel: Callable[[Any, kpi_frames.Scope], None]
    _stamp: Callable[[str, float], None]

    def follow(self) -> LiveRead | None:
        """One poll of the stream, drawn in the caller (what the follower's thread does every
        ``live_s`` inside a kernel): what it read, None when nothing changed."""
        return self.follower.once()

    def _follow_scope(self, scope: kpi_frames.Scope) -> None:
        """The selected dates the stream still changes; new ones are read at the next poll."""
        snap, live = self.state.snap, self.state.live
        if snap is None:
            return
        dates = scope.dates()
        wanted = live_dates(snap.dates if dates is None else dates, snap.clock_day)
        if wanted != live.dates:
            live.dates, live.seen = wanted, None

    def _live_view(self) -> Live | None:
        """What the follower compares with (in its thread); None: nothing to follow now."""
        snap = self.state.snap
        if snap is None or not snap.has_data or self.state.loading:
            return None
        return self.state.live

    def _apply_live(self, result: LiveRead) -> None:
        """Draw a poll's read (on the kernel's loop): the stream's state, and after a batch
        the board, the clock and the ``kpi_hourly`` rows; a new day is a full refresh."""
        snap, live = self.state.snap, self.state.live
        if snap is None or not snap.has_data or self.state.loading:
            return  # a refresh is drawing; the next poll reads again (``seen`` unchanged)
        if result.full and result.clock is not None:
            if kpi_frames.local_date(result.clock).isoformat() != snap.clock_day:
                self.refresh(background=True)  # the days the snapshot holds move
                return
            snap.clock = result.clock
            snap.board, snap.board_read_at = result.board, self.now()
            snap.kpis = snap.kpis.with_hot(result.hot, result.live)
            self.live_draws += 1
            self.last_timings["live_read"] = result.seconds
        if result.full and result.dates == live.dates:  # else: the new dates at the next poll
            live.seen = result.marks
        snap.states[STREAM] = result.state
        self.guarded(lambda: self._redraw_live(result.full))

    def _redraw_live(self, batch: bool) -> None:
        """The header and "Needs attention", and after a batch the tiles and the board, and
        the airlines, airports and weather when a live date's rows moved (at most every
        :data:`DAY_DRAW_S`)."""
        started, scope = time.perf_counter(), self.scope()
        shown = [self.tiles_panel, self.board_panel] if batch else []
        key = self.state.snap.kpis.live_key if self.state.snap is not None else ()
        live = self.state.live
        if batch and key != live.day_key and started - live.day_drawn_at >= DAY_DRAW_S:
            shown += self.day_panels
            live.day_key, live.day_drawn_at = key, started
        for panel in (self.header_panel, *shown, self.attention_panel):
            self._draw_panel(panel, scope)
        self.state.live.levels = tuple(r["level"] for r in self.state.stream or ())
        self._stamp("live_redraw", started)
