"""How the page reads MongoDB without freezing: a :class:`Reader` makes the three reads of the
page (the snapshot, the live board, KPI days selected later), :func:`read_then_draw` runs one
in a daemon thread and draws its result on the kernel's event loop (ipywidgets are not
thread-safe), or both in the caller when there is no kernel (tests, benchmarks, the first
snapshot of ``Dashboard.show``).

A read never raises: it returns the exception instead (logged in full unless it is the
database being unreachable), so what draws the result decides what the page says.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

import pandas as pd
from pymongo.database import Database
from pymongo.errors import PyMongoError

from pipelines.clients import mongo
from pipelines.core.config import Settings
from pipelines.core.exceptions import ServiceUnavailableError

from . import kpi_frames, queries

T = TypeVar("T")

log = logging.getLogger("tarmac.dashboard")
if not log.handlers:
    # In a kernel sys.stderr is the page: errors go to the process's real stderr (Voila's log).
    _handler = logging.StreamHandler(sys.__stderr__)
    _handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(_handler)
    log.propagate = False

UNREACHABLE = (ServiceUnavailableError, PyMongoError)  # said as "not reachable", not logged


def attempt(
    read: Callable[[], T], what: str, timings: dict[str, float], key: str
) -> T | BaseException:
    """``read()``, or the exception that prevented it (never raised); an unexpected one is
    logged as "``what`` failed". The seconds it took go to ``timings[key]``."""
    started = time.perf_counter()
    try:
        return read()
    except UNREACHABLE as exc:
        return exc
    except Exception as exc:  # noqa: BLE001 - shown as a message, logged in full
        if "interpreter shutdown" not in str(exc):  # the kernel stops (its page closed)
            log.exception("%s failed", what)
        return exc
    finally:
        timings[key] = time.perf_counter() - started


class Reader:
    """The page's reads of ``settings``' serving database; the seconds each took go to
    ``timings`` (``read``: the snapshot and its board, ``board_read``, ``read_more``)."""

    def __init__(
        self, settings: Settings, now: Callable[[], datetime], timings: dict[str, float]
    ) -> None:
        self.settings, self.now, self.timings = settings, now, timings

    def connect(self) -> Database:
        """The serving database, after one quick ping (1.5 s at most when it is down)."""
        try:
            return mongo.database(self.settings, timeout_ms=1500)
        except ServiceUnavailableError:
            raise ServiceUnavailableError(
                f"MongoDB at {self.settings.mongo.safe_uri} does not answer "
                f"(env {self.settings.env}); run `make stack-up ENV={self.settings.env}`"
            ) from None

    def snapshot(
        self, dates: list[str] | None = None, previous: queries.Snapshot | None = None
    ) -> queries.Snapshot | BaseException:
        """The KPIs of ``dates`` (default: the replay clock's day), state, runs and rejects,
        without the board; of ``previous`` what has not changed is kept, not read again."""
        return attempt(
            lambda: queries.load_snapshot(
                self.connect(), self.now(), board=False, dates=dates or (), previous=previous
            ),
            "dashboard read",
            self.timings,
            "read",
        )

    def board(self, clock: datetime | None) -> pd.DataFrame | BaseException:
        """The ``flights_by_hour`` documents around ``clock``; its time counts in ``read``."""
        result = attempt(
            lambda: queries.read_board(self.connect(), clock),
            "live board read",
            self.timings,
            "board_read",
        )
        self.timings["read"] = self.timings.get("read", 0.0) + self.timings["board_read"]
        return result

    def more(self, dates: list[str], months: list[str]) -> kpi_frames.Rows | BaseException:
        """The ``kpi_daily`` documents of ``dates``, ``kpi_route_monthly`` of ``months``."""
        return attempt(
            lambda: queries.read_more(self.connect(), dates, months),
            "dashboard read of more days",
            self.timings,
            "read_more",
        )


def read_then_draw(
    loop: asyncio.AbstractEventLoop | None,
    read: Callable[[], T],
    draw: Callable[[T], None],
    on_shutdown: Callable[[], None] | None = None,
) -> None:
    """``draw(read())``: in the caller when ``loop`` is None, else ``read`` in a daemon thread
    and ``draw`` on ``loop``; ``on_shutdown`` runs instead of ``draw`` when the loop no longer
    takes callbacks (the kernel is shutting down)."""
    if loop is None:
        draw(read())
        return

    def work() -> None:
        result = read()
        try:
            loop.call_soon_threadsafe(draw, result)
        except RuntimeError:  # the kernel is shutting down
            if on_shutdown is not None:
                on_shutdown()

    threading.Thread(target=work, daemon=True).start()


def running_loop() -> asyncio.AbstractEventLoop | None:
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
