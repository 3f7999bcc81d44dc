"""What the page says above its panels when it cannot show figures: the banner (the database
not reachable, no KPIs yet, a read or a draw that failed: never a traceback, the details go
to the Voila log) and the read status line of the filter bar.
"""

from __future__ import annotations

from pipelines.core.config import Settings
from pipelines.core.exceptions import TarmacError

from . import queries
from . import widgets as H


def offline(exc: BaseException, kept: bool) -> str:
    """MongoDB does not answer; ``kept``: the figures shown are those of an earlier read."""
    text = str(exc) if isinstance(exc, TarmacError) else f"{type(exc).__name__}: {exc}"
    earlier = " Figures below are from the last successful read." if kept else ""
    return H.banner(
        f"<b>Database not reachable.</b> {H.esc(text[:400])}<br>"
        f"The page retries at every refresh.{earlier}",
        "red",
    )


def no_data(settings: Settings, snap: queries.Snapshot | None) -> str:
    """The database answers but holds no KPIs yet: what to start, or what is on its way."""
    if snap is not None and snap.has_flights:
        what = "<b>Flights are arriving, the KPIs are not computed yet</b>"
        todo = "the flights_stream job writes them after each batch"
    else:
        what = "<b>No flight data yet</b>"
        todo = "start the replay and the jobs (<code>make demo</code>)"
    return H.banner(
        f"{what} in database <code>{H.esc(settings.mongo.database)}</code> "
        f"(env {H.esc(settings.env)}): {todo}. This page fills in at the next refresh.",
        "info",
    )


def failed(what: str, exc: BaseException, then: str) -> str:
    """'``what`` (TypeError: …). ``then``' as a red banner."""
    return H.banner(f"{what} ({H.esc(type(exc).__name__)}: {H.esc(exc)}).{then}", "red")


def read_failed(exc: BaseException) -> str:
    return failed(
        "The dashboard could not read its data",
        exc,
        " It keeps trying; details are in the Voila log.",
    )


def draw_failed(exc: BaseException) -> str:
    return failed("The dashboard could not be drawn", exc, " Details are in the Voila log.")


def redraw_failed(exc: BaseException) -> str:
    return failed("A panel could not be drawn", exc, "")


def more_failed(exc: BaseException) -> str:
    return failed("The selected days could not be read", exc, " Select them again to retry.")


def busy(text: str) -> str:
    """The read status line of the filter bar ("reading MongoDB…", "read at …")."""
    return f'<span class="tm-busy">{text}</span>'
