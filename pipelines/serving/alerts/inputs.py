"""The documents the alert rules read, read the way the page reads them: by ``_id``
(``pipeline_state`` whole: a handful of documents). The page builds the same
:class:`~.levels.Inputs` from its snapshot (``dashboard/panels/attention.py``).
About 160 lookups (the states, 3 job documents, the buckets of the board's hours and of the
clock's day, 72, of each writer read in parallel by ``mongo.find_by_ids``, the profile, the
clock's day): the airlines of the day come from its buckets when they count every flight of
its ``kpi_daily`` document (``readmodels.day_doc``, ``readmodels.newer_day``), as on the page,
so a slipping airline is seen within a batch of the live board. A whole run of the job, with
the board's buckets only, took 33 ms p50 on the local FerretDB with a small window
(``bench/alerts.py``, measured before the parallel reads). With a day of 2,170 events loaded a
round took 170 ms (p50), 57 ms of CPU here and 220 ms in FerretDB: 5.5 % of a core at 5 s.

A long-lived evaluator (the alerts service) passes a :class:`Kept`: the buckets, the day's
document and the profile are then read again only when the stream wrote (its marks moved:
:func:`~pipelines.serving.readmodels.stream_marks`) or the buckets' ``full_read_s`` (30 s)
passed since they were last read whole (another job, the
weather's or the reference's, may have rewritten a lake document meanwhile, as for the page's
follower, ``dashboard/follow.py``); the states and the jobs' health are read every round.
A round in which the stream did not write, the same day: 1.4 ms (p50), 3.5 ms of CPU here
and 11 ms in FerretDB (a probe of 20 rounds each way, alternated). After a batch of the live
board alone, only the buckets it raised are read again (``serving/buckets.Buckets``, the page
follower's own cache, whose clock says when the kept documents are read whole again): 25 to
30 ms a round (p50), 9 to 10.5 ms of CPU here and 33 to 43 ms in
FerretDB, against 174 to 190, 57 to 62 and 225 to 250 ms reading everything.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pymongo.database import Database

from pipelines.core.domain import NEW_YORK
from pipelines.serving import readmodels as RM
from pipelines.serving.buckets import Buckets

from .levels import Inputs, utc


def flights_of(buckets: Iterable[dict[str, Any]], clock: datetime) -> list[dict[str, Any]]:
    """The flights of resolved buckets scheduled within the board's window, each with its
    bucket's ``origin``."""
    _, start, end = RM.board_window(clock)
    out = []
    for doc in buckets:
        origin = doc.get("origin") or str(doc["_id"]).split("|")[0]
        for f in doc.get("flights") or ():
            sched = utc(f.get("sched_dep_utc"))
            if sched is not None and start <= sched <= end:
                out.append({**f, "origin": origin})
    return out


@dataclass
class Kept:
    """What a long-lived evaluator read last (see the module): under ``key`` (the stream's
    marks and clock) and the buckets it holds (``serving/buckets.Buckets``: after a batch of
    the live board, only those it raised are read again; their clock, ``full_read_s``, says
    when everything kept is read again)."""

    key: tuple[Any, ...] | None = None
    buckets: Buckets = field(default_factory=Buckets)  # after a board batch: what it raised
    reads: Counter = field(default_factory=Counter)  # buckets looked up, per collection
    flights: list[dict[str, Any]] = field(default_factory=list)
    carriers: list[dict[str, Any]] = field(default_factory=list)
    profile: dict[str, Any] = field(default_factory=dict)

    def holds(self, key: tuple[Any, ...]) -> bool:
        """Whether the kept documents answer for ``key`` (the stream has not written since)
        and the buckets' last whole read is younger than their ``full_read_s`` (once older,
        everything is read again, the buckets whole: a job other than the stream may have
        rewritten a document)."""
        return key == self.key and not self.buckets.aged()


def read_inputs(
    db: Database, now: datetime, jobs: Iterable[str], kept: Kept | None = None
) -> Inputs:
    """What the rules read at wall time ``now``; ``jobs``: the jobs whose health counts;
    ``kept``: the documents of the last rounds, read again only when they may have moved."""
    states = {d["_id"]: d for d in db[RM.STATE].find({})}
    health = {j: d for j in jobs if (d := db[RM.HEALTH].find_one({"_id": j})) is not None}
    stream = states.get("flights_stream")
    clock = utc((stream or {}).get("newest_event_time"))
    key = (RM.stream_marks(stream), clock)
    if kept is None or not kept.holds(key):
        buckets, reads = (Buckets(), Counter()) if kept is None else (kept.buckets, kept.reads)
        flights, carriers = _board(db, clock, stream, buckets, reads)
        profile = db[RM.KPI_PROFILE].find_one({"_id": RM.PROFILE_ID}) or {}
        if kept is not None:
            kept.key = key
            kept.flights, kept.carriers, kept.profile = flights, carriers, profile
    else:
        flights, carriers, profile = kept.flights, kept.carriers, kept.profile
    return Inputs(
        now=now,
        states=states,
        health=health,
        flights=flights,
        weekday_hour=list(profile.get("weekday_hour") or []),
        days=list(profile.get("days") or []),
        carriers=carriers,
    )


def _board(
    db: Database, clock: datetime | None, stream: dict[str, Any] | None, buckets: Buckets,
    reads: Counter,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:  # fmt: skip
    """The board's flights around ``clock`` and the airlines of its day (none without one),
    from the buckets ``buckets`` holds, read again where the stream's state ``stream`` says
    they may have changed (counted in ``reads``)."""
    if clock is None:
        return [], []
    window = RM.board_window(clock)[0]
    today = clock.astimezone(NEW_YORK).date().isoformat()
    of_day = RM.board_keys([today])
    keys = list(dict.fromkeys([*window, *of_day]))
    buckets.update(db, stream or {}, {RM.BOARD: keys}, reads)
    shown = {key: buckets.shown(RM.BOARD, key) for key in keys}
    flights = flights_of([d for k in window if (d := shown[k]) is not None], clock)
    day = db[RM.KPI_DAILY].find_one({"_id": today})
    # the day's airlines from its buckets, as the page shows them (readmodels.day_doc)
    derived = RM.day_doc(today, [shown[k] for k in of_day])
    return flights, list(RM.newer_day(day, derived).get("carriers") or [])
