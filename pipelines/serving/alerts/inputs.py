"""The documents the alert rules read, read the way the page reads them: by ``_id``
(``pipeline_state`` whole: a handful of documents). The page builds the same
:class:`~.levels.Inputs` from its snapshot (``dashboard/panels/attention.py``).
About 25 lookups (the states, 3 job documents, the 9 hours' buckets of each writer read in
parallel by ``mongo.find_by_ids``, the profile, the clock's day); a whole run of the job, these
reads included, takes 33 ms p50 on the local FerretDB with a small window (``bench/alerts.py``,
measured before the parallel reads).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pymongo.database import Database

from pipelines.clients import mongo
from pipelines.core.domain import NEW_YORK
from pipelines.serving import readmodels as RM

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


def read_inputs(db: Database, now: datetime, jobs: Iterable[str]) -> Inputs:
    """What the rules read at wall time ``now``; ``jobs``: the jobs whose health counts."""
    states = {d["_id"]: d for d in db[RM.STATE].find({})}
    health = {j: d for j in jobs if (d := db[RM.HEALTH].find_one({"_id": j})) is not None}
    clock = utc((states.get("flights_stream") or {}).get("newest_event_time"))
    flights: list[dict[str, Any]] = []
    carriers: list[dict[str, Any]] = []
    if clock is not None:
        keys = RM.board_window(clock)[0]
        lakes = {d["_id"]: d for d in mongo.find_by_ids(db[RM.BOARD], keys)}
        hots = {d["_id"]: RM.hot_view(RM.BOARD, d)
                for d in mongo.find_by_ids(db[RM.BOARD_HOT], keys)}  # fmt: skip
        buckets = [doc for key in keys
                   if (doc := RM.resolve(lakes.get(key), hots.get(key))) is not None]  # fmt: skip
        flights = flights_of(buckets, clock)
        day = db[RM.KPI_DAILY].find_one({"_id": clock.astimezone(NEW_YORK).date().isoformat()})
        carriers = list((day or {}).get("carriers") or [])
    profile = db[RM.KPI_PROFILE].find_one({"_id": RM.PROFILE_ID}) or {}
    return Inputs(
        now=now,
        states=states,
        health=health,
        flights=flights,
        weekday_hour=list(profile.get("weekday_hour") or []),
        days=list(profile.get("days") or []),
        carriers=carriers,
    )
