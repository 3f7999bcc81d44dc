"""The board's buckets as a long-lived reader keeps them between its reads, for the page's
follower (``dashboard/follow.py``) and the alerts service (``serving/alerts/inputs.py``): after
a batch of the live board alone only the buckets it raised are read again (:func:`touched`, from
the batch records the board writes in ``pipeline_state.flights_stream``), anything else (the
lake path moved, a batch missed, a first read, its ``full_read_s`` passed) reads every bucket
asked for. Reads by ``_id`` only (:func:`by_ids`, counted per collection when asked).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from pymongo.collection import Collection
from pymongo.database import Database

from pipelines.clients import mongo
from pipelines.serving import readmodels as RM

Reads = Counter  # documents looked up by _id, per collection
FULL_READ_S = 30.0  # a reader's buckets are read again whole at least this often (default)
# the fields of a lake board bucket its readers use
BOARD_PROJECTION = {"origin": 1, "hour_utc": 1, "date": 1, "flights": 1, "version": 1}


def by_ids(
    collection: Collection, ids: Iterable[Any], projection: Any = None, reads: Reads | None = None
) -> list[dict]:
    """The documents whose ``_id`` is in ``ids`` (in that order, missing ones skipped), read as
    :func:`pipelines.clients.mongo.find_by_ids` reads them; counted in ``reads``."""
    ids = list(dict.fromkeys(ids))
    if reads is not None:
        reads[collection.name] += len(ids)
    return mongo.find_by_ids(collection, ids, projection)


def touched(seen: tuple[Any, ...] | None, state: Mapping[str, Any] | None) -> set[str] | None:
    """The bucket ids the live board raised since the marks ``seen`` (its batch record's
    ``recent``: the buckets of its last batches), when nothing else moved: the lake path's
    batch id the same and every batch in between known. None when that cannot be said (a first
    read, the lake path moved, a batch no longer listed, a stream before them): read all."""
    now = RM.stream_marks(state)
    if seen is None or now is None or seen[0] == "legacy" or now[0] == "legacy":
        return None
    if len(seen) != len(now) or seen[1:] != now[1:] or seen[0] is None or now[0] is None:
        return None
    if now[0] < seen[0]:
        return None
    recent = {r.get("batch_id"): r.get("buckets") or [] for r in
              ((state or {}).get("hot") or {}).get("recent") or []}  # fmt: skip
    batches = range(seen[0] + 1, now[0] + 1)
    if any(b not in recent for b in batches):
        return None
    return {bucket for b in batches for bucket in recent[b]}


class Buckets:
    """What a reader read last, by ``_id``: the lake path's board buckets and hour rows, and
    the hot path's board buckets (raw), with the stream's marks they were read at. After a
    batch of the live board alone, only the buckets it raised are read again
    (:func:`touched`), by ``_id``; anything else (the lake path moved, a batch missed, a first
    read, ``full_read_s`` passed since the last whole read: a job other than the stream may
    have rewritten a lake document) reads every bucket asked for. Kept by one reader (the
    page's follower thread, the alerts service's loop)."""

    def __init__(self, full_read_s: float = FULL_READ_S) -> None:
        self.full_read_s = full_read_s
        self.marks: tuple[Any, ...] | None = None
        self.lake: dict[str, dict[str, dict | None]] = {RM.BOARD: {}, RM.KPI_HOURLY: {}}
        self.hot: dict[str, dict | None] = {}
        self.views: dict[str, dict[str, dict]] = {}  # per collection: hot buckets in its shape
        self.read_at = float("-inf")

    def update(self, db: Database, state: dict[str, Any], want: dict[str, list[str]],
               reads: Counter) -> None:  # fmt: skip
        """Read what changed of the buckets ``want`` names (per lake collection)."""
        changed = touched(self.marks, state)
        if changed is None or self.aged():
            self.lake = {c: {} for c in self.lake}
            self.hot, self.views, changed = {}, {}, set()
            self.read_at = time.monotonic()
        for collection, ids in want.items():
            held = {i: d for i, d in self.lake[collection].items() if i in set(ids)}
            missing = [i for i in ids if i not in held]
            proj = BOARD_PROJECTION if collection == RM.BOARD else None
            got = {d["_id"]: d for d in by_ids(db[collection], missing, proj, reads)
                   } if missing else {}  # fmt: skip
            self.lake[collection] = held | {i: got.get(i) for i in missing}
        every = list(dict.fromkeys(i for ids in want.values() for i in ids))
        held = {i: d for i, d in self.hot.items() if i in set(every) and i not in changed}
        missing = [i for i in every if i not in held]
        got = {d["_id"]: d for d in by_ids(db[RM.BOARD_HOT], missing, None, reads)
               } if missing else {}  # fmt: skip
        self.hot = held | {i: got.get(i) for i in missing}
        for views in self.views.values():  # a bucket read again is shaped again
            for i in missing:
                views.pop(i, None)
        self.marks = RM.stream_marks(state)

    def aged(self) -> bool:
        """Whether the last whole read is older than ``full_read_s``: the next update reads
        every bucket again."""
        return time.monotonic() - self.read_at > self.full_read_s

    def view(self, collection: str, i: str) -> dict | None:
        """The hot bucket ``i`` in ``collection``'s shape (``readmodels.hot_view``), shaped
        once per read of it (a live day's 72 buckets are shown after every batch)."""
        raw = self.hot.get(i)
        if raw is None:
            return None
        views = self.views.setdefault(collection, {})
        if i not in views:
            views[i] = RM.hot_view(collection, raw)
        return views[i]

    def shown(self, collection: str, i: str) -> dict | None:
        """The bucket ``i`` of ``collection`` as its readers see it (``readmodels.resolve``
        of what this cache holds of both paths), None when neither path has it."""
        return RM.resolve(self.lake[collection].get(i), self.view(collection, i))

    def resolved(self, collection: str, ids: list[str]) -> list[dict]:
        """The buckets ``ids`` of ``collection`` as the page shows them
        (``queries.resolved`` over what this cache holds)."""
        docs = (self.shown(collection, i) for i in ids)
        return [d for d in docs if d is not None]
