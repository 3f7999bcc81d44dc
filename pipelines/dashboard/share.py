"""The view in the page's URL: what the duty manager selected (airports, airlines, days, the
panels' own controls) as a query string, so that a reload or a shared link opens the same view.

    http://127.0.0.1:8866/?airports=JFK&airlines=AA,DL&period=7d&ahead=6&sort=delay&late=1

``parse`` reads a query string into a :class:`View` (a value it does not know is left out and
named, never an error: a link typed by hand must still open the page); ``encode`` writes a view
back, only what differs from the default (the plain page keeps a plain URL). The page's
template (``jupyter/voila/templates/tarmac``) puts what ``encode`` returns in the address bar
with ``history.replaceState``; the keys it owns itself (``wall``, ``rotate``: the wall mode,
docs/dashboard.md) and the others it finds (``token``, dropped once logged in) are not the
kernel's.

Where the kernel finds the query string: Voila passes the request's in the kernel's
environment (``QUERY_STRING``) when it starts a kernel for the request; a preheated kernel ran
the notebook before any request, so it asks Voila for the request's information once it is
claimed (``voila.utils.wait_for_request``, a websocket to Voila, here in a thread: the kernel's
loop keeps drawing meanwhile). :func:`preheated` tells which, :func:`await_request` waits.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date
from urllib.parse import parse_qs, urlencode

from pipelines.core.domain import ORIGINS

from .ahead import AHEAD_CHOICES, AHEAD_DEFAULT

log = logging.getLogger(__name__)

# the period buttons (filters.PERIODS) in the URL
PERIOD_KEYS = {"today": "Today", "yesterday": "Yesterday", "7d": "Last 7 days", "all": "All loaded"}
# the board's sorts (panels.board.SORTS) in the URL
SORT_KEYS = {
    "sched": "Scheduled time", "delay": "Delay (longest first)", "status": "Status",
    "airline": "Airline", "dest": "Destination", "airport": "Airport",
}  # fmt: skip
METRIC_KEYS = {"delay": "avg_dep_delay", "ontime": "on_time_pct"}
# the keys the kernel writes; the page's own (wall mode) and any other are left as they are
KEYS = ("airports", "airlines", "period", "from", "to", "ahead", "metric", "sort", "late",
        "find", "auto", "every")  # fmt: skip
PAGE_KEYS = ("wall", "rotate")  # read by the template's script only
EVERY_RANGE = (5, 3600)  # the auto-refresh interval's bounds (filters.FilterBar.w_interval)


@dataclass(frozen=True)
class View:
    """What the page shows. ``period`` None: the days ``date_from`` .. ``date_to`` picked by
    hand; ``every`` None: the page's default interval."""

    airports: tuple[str, ...] = ()  # () = every airport
    airlines: tuple[str, ...] = ()  # () = every airline
    period: str | None = "Today"
    date_from: date | None = None
    date_to: date | None = None
    ahead: int = AHEAD_DEFAULT
    metric: str = "avg_dep_delay"
    sort: str = "Scheduled time"
    late: bool = False
    find: str = ""
    auto: bool = True
    every: int | None = None
    ignored: tuple[str, ...] = field(default=(), compare=False)  # 'key=value' not understood


DEFAULT = View()


def _codes(text: str, upper: bool = True) -> tuple[str, ...]:
    out: list[str] = []
    for part in text.replace(" ", ",").split(","):
        code = part.strip().upper() if upper else part.strip()
        if code and code not in out:
            out.append(code)
    return tuple(out)


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def parse(query: str | None) -> View:
    """The view of a query string (with or without its ``?``); what it does not understand is
    in ``View.ignored``, the rest applies."""
    fields: dict = {}
    ignored: list[str] = []
    values = {k: v[-1] for k, v in parse_qs((query or "").lstrip("?")).items()}

    def bad(key: str) -> None:
        ignored.append(f"{key}={values[key]}")

    if "airports" in values:
        codes = _codes(values["airports"])
        if codes and all(c in ORIGINS for c in codes):
            fields["airports"] = () if len(codes) == len(ORIGINS) else codes
        else:
            bad("airports")
    if "airlines" in values:
        codes = _codes(values["airlines"])
        if all(c.isalnum() and len(c) <= 3 for c in codes):
            fields["airlines"] = codes
        else:
            bad("airlines")
    start, end = _day(values.get("from", "")), _day(values.get("to", ""))
    if "from" in values or "to" in values:
        start, end = start or end, end or start
        if start is None or end is None:
            ignored += [f"{k}={values[k]}" for k in ("from", "to") if k in values]
        else:
            fields.update(period=None, date_from=min(start, end), date_to=max(start, end))
    elif "period" in values:
        if values["period"] in PERIOD_KEYS:
            fields["period"] = PERIOD_KEYS[values["period"]]
        else:
            bad("period")
    if "ahead" in values:
        hours = int(values["ahead"]) if values["ahead"].isdigit() else None
        if hours in AHEAD_CHOICES:
            fields["ahead"] = hours
        else:
            bad("ahead")
    for key, known in (("metric", METRIC_KEYS), ("sort", SORT_KEYS)):
        if key in values:
            if values[key] in known:
                fields[key] = known[values[key]]
            else:
                bad(key)
    for key in ("late", "auto"):
        if key in values:
            if values[key] in ("0", "1"):
                fields[key] = values[key] == "1"
            else:
                bad(key)
    if "find" in values:
        fields["find"] = values["find"].strip()[:40]
    if "every" in values:
        every = int(values["every"]) if values["every"].isdigit() else None
        if every is not None and EVERY_RANGE[0] <= every <= EVERY_RANGE[1]:
            fields["every"] = every
        else:
            bad("every")
    return replace(DEFAULT, **fields, ignored=tuple(ignored))


def encode(view: View, default_every: int | None = None) -> str:
    """``view`` as a query string of what differs from the default page, '' for the default
    (``default_every``: the page's own auto-refresh interval, left out)."""
    out: list[tuple[str, str]] = []
    if view.airports and len(view.airports) < len(ORIGINS):
        out.append(("airports", ",".join(view.airports)))
    if view.airlines:
        out.append(("airlines", ",".join(view.airlines)))
    if view.period is None and view.date_from and view.date_to:
        out += [("from", view.date_from.isoformat()), ("to", view.date_to.isoformat())]
    elif view.period is not None and view.period != DEFAULT.period:
        out.append(("period", {v: k for k, v in PERIOD_KEYS.items()}[view.period]))
    if view.ahead != DEFAULT.ahead:
        out.append(("ahead", str(view.ahead)))
    if view.metric != DEFAULT.metric:
        out.append(("metric", {v: k for k, v in METRIC_KEYS.items()}[view.metric]))
    if view.sort != DEFAULT.sort:
        out.append(("sort", {v: k for k, v in SORT_KEYS.items()}[view.sort]))
    if view.late:
        out.append(("late", "1"))
    if view.find:
        out.append(("find", view.find))
    if not view.auto:
        out.append(("auto", "0"))
    if view.every is not None and view.every != default_every:
        out.append(("every", str(view.every)))
    return urlencode(out, safe=",")


def preheated() -> bool:
    """True in a kernel Voila preheated: it ran the notebook before its request arrived."""
    return os.environ.get("VOILA_PREHEAT", "False") == "True"


def request_query() -> str | None:
    """The query string of the page's request, None while a preheated kernel waits for it."""
    if preheated():
        return None
    return os.environ.get("QUERY_STRING", "")


def await_request(then: Callable[[str], None]) -> threading.Thread:
    """In a preheated kernel: wait (in a thread) for the request that claims the kernel, then
    call ``then`` with its query string (in that thread: hand it to the kernel's loop)."""

    def wait() -> None:
        from voila.utils import wait_for_request

        try:
            wait_for_request()  # sets QUERY_STRING and the request's other variables
        except Exception:  # noqa: BLE001 - the page must still become shareable
            log.exception("no request information from Voila: the link's view is not applied")
        then(os.environ.get("QUERY_STRING", ""))

    thread = threading.Thread(target=wait, name="voila-request", daemon=True)
    thread.start()
    return thread
