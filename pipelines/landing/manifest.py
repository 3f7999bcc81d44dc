"""The landing manifest: the bookkeeping of a zone, one SQLite row per file handled (claimed,
processed, quarantined or a duplicate) in ``<root>/_manifest.sqlite``, and the zone lock
(``<root>/_manifest.lock``). :class:`pipelines.landing.zone.LandingZone` *has* a
:class:`Manifest`; the zone owns the folders, the file moves and the workflow.

SQLite (stdlib ``sqlite3``) rather than JSON lines: ``BEGIN IMMEDIATE`` serializes concurrent
jobs, a partial unique index on ``(source, sha256)`` makes "processed at most once" a database
constraint, and a crash cannot leave a torn line. It needs a local filesystem (SQLite and
``flock`` locking are unreliable over NFS). Locations are stored relative to the zone's root.
"""

from __future__ import annotations

import hashlib
import os
import socket
import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from pipelines.core import files
from pipelines.core.exceptions import LandingError

MANIFEST = "_manifest.sqlite"
LOCK = "_manifest.lock"
_LIVE = "status IN ('claimed', 'processed')"
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS files (
        id INTEGER PRIMARY KEY,
        source TEXT NOT NULL,
        name TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        status TEXT NOT NULL
            CHECK (status IN ('claimed', 'processed', 'quarantined', 'duplicate')),
        rows_in INTEGER,
        rows_accepted INTEGER,
        rows_rejected INTEGER,
        reason TEXT,
        location TEXT UNIQUE,
        duplicate_of INTEGER REFERENCES files (id),
        owner TEXT,
        recorded_at TEXT NOT NULL,
        claimed_at TEXT,
        finished_at TEXT
    )""",
    f"CREATE UNIQUE INDEX IF NOT EXISTS files_once ON files (source, sha256) WHERE {_LIVE}",
    "CREATE INDEX IF NOT EXISTS files_source ON files (source, status)",
)
STATUSES = ("claimed", "processed", "quarantined", "duplicate")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class LandedFile:
    """A file under ``landing/<source>/``; ``name`` is its path relative to that folder."""

    source: str
    name: str
    path: Path
    size: int
    fingerprint: tuple[int, int, int] = field(repr=False)  # inode, size, mtime_ns at discovery

    @cached_property
    def sha256(self) -> str:
        try:
            with self.path.open("rb") as fh:
                return hashlib.file_digest(fh, "sha256").hexdigest()
        except FileNotFoundError:
            raise self.gone() from None

    def gone(self) -> LandingError:
        """The error for this file vanishing while handled (another run moved it)."""
        return LandingError(f"{self.path} is gone; another run moved it, skip it")


class Manifest:
    """The manifest of the landing zone at ``root``: its rows and its lock.

    ``owner`` names the run in claims. A claim held by someone else is stale (taken over by
    :meth:`take`) when older than ``claim_ttl_s`` or when its process on this host is gone.
    Methods taking ``db`` act inside a :meth:`transaction` of the caller, who holds
    :meth:`locked` while a row and its file's move must not be split by another run.
    """

    def __init__(self, root: Path, owner: str, claim_ttl_s: float) -> None:
        self.root = root
        self.owner = owner
        self.claim_ttl_s = claim_ttl_s
        self.path = root / MANIFEST
        with self.transaction() as db:
            for statement in _SCHEMA:
                db.execute(statement)

    def locked(self) -> AbstractContextManager[None]:
        """The zone lock (``_manifest.lock``), exclusive across processes."""
        return files.exclusive(self.root / LOCK)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
        db.row_factory = sqlite3.Row
        return db

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; ``BEGIN IMMEDIATE`` makes concurrent jobs wait their turn."""
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        finally:
            db.close()

    def _rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    # -- reads ------------------------------------------------------------------------------

    def records(self, source: str | None = None) -> list[dict[str, Any]]:
        """Manifest rows, oldest first (all sources unless ``source``)."""
        db = self._connect()
        try:
            sql, args = "SELECT * FROM files", ()
            if source is not None:
                sql, args = sql + " WHERE source = ?", (source,)
            return [dict(r) for r in db.execute(sql + " ORDER BY id", args)]
        finally:
            db.close()

    def processed_sha256(self, source: str) -> set[str]:
        """The contents (sha256) of ``source`` processed already: one query for a whole batch's
        duplicate check (:meth:`is_processed` asks for one file)."""
        db = self._connect()
        try:
            rows = db.execute(
                "SELECT sha256 FROM files WHERE source = ? AND status = 'processed'", (source,)
            )
            return {r["sha256"] for r in rows}
        finally:
            db.close()

    def is_processed(self, file: LandedFile) -> bool:
        """True if content with this sha256 was processed already for this source."""
        db = self._connect()
        try:
            return self.processed_id(db, file) is not None
        finally:
            db.close()

    def processed_id(self, db: sqlite3.Connection, file: LandedFile) -> int | None:
        """The row of the processed file with ``file``'s content (source and sha256), if any."""
        row = db.execute(
            "SELECT id FROM files WHERE source = ? AND sha256 = ? AND status = 'processed'",
            (file.source, file.sha256),
        ).fetchone()
        return None if row is None else int(row["id"])

    def own_claim(self, db: sqlite3.Connection, file: LandedFile) -> int | None:
        """The row of this owner's claim on ``file``'s content, if it holds one."""
        row = db.execute(
            "SELECT id FROM files WHERE source = ? AND sha256 = ? AND status = 'claimed'"
            " AND owner = ?",
            (file.source, file.sha256, self.owner),
        ).fetchone()
        return None if row is None else int(row["id"])

    def location_taken(self, db: sqlite3.Connection, path: Path) -> bool:
        """True if a row records ``path`` as its location."""
        sql = "SELECT 1 FROM files WHERE location = ?"
        return db.execute(sql, (self._rel(path),)).fetchone() is not None

    def unfinished(self, db: sqlite3.Connection, file: LandedFile, status: str) -> Path | None:
        """Location of a row of this file (name and content) whose move never happened (crash
        after commit). Content alone is not enough: a quarantined file an operator deleted must
        not lend its place to a later copy under another name."""
        for row in db.execute(
            "SELECT location FROM files WHERE source = ? AND sha256 = ? AND name = ?"
            " AND status = ?",
            (file.source, file.sha256, file.name, status),
        ):
            if not (path := self.root / row["location"]).exists():
                return path
        return None

    # -- writes -----------------------------------------------------------------------------

    def take(self, db: sqlite3.Connection, file: LandedFile) -> str:
        """One claim attempt: ``claimed``, ``processed`` (content done), ``busy`` (this file is
        claimed by a live run) or ``wait`` (a copy is)."""
        row = db.execute(
            f"SELECT * FROM files WHERE source = ? AND sha256 = ? AND {_LIVE}",
            (file.source, file.sha256),
        ).fetchone()
        if row is None:
            db.execute(
                "INSERT INTO files (source, name, sha256, size, status, owner, recorded_at,"
                " claimed_at) VALUES (?, ?, ?, ?, 'claimed', ?, ?, ?)",
                (file.source, file.name, file.sha256, file.size, self.owner, _now(), _now()),
            )
            return "claimed"
        if row["status"] == "processed":
            return "processed"
        if row["owner"] != self.owner and not self._stale(row["owner"], row["claimed_at"]):
            return "busy" if row["name"] == file.name else "wait"
        db.execute(
            "UPDATE files SET name = ?, owner = ?, claimed_at = ? WHERE id = ?",
            (file.name, self.owner, _now(), row["id"]),
        )
        return "claimed"

    def _stale(self, owner: str, claimed_at: str) -> bool:
        age = (datetime.now(UTC) - datetime.fromisoformat(claimed_at)).total_seconds()
        if age >= self.claim_ttl_s:
            return True
        host, _, pid = owner.rpartition(":")
        if host == socket.gethostname() and pid.isdigit():
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                return True
            except PermissionError:
                return False
        return False

    def record_processed(
        self, db: sqlite3.Connection, claim: int, file: LandedFile,
        counts: tuple[int, int, int], location: Path,
    ) -> None:  # fmt: skip
        """Turn the claim row ``claim`` into ``file`` processed, with its ``(rows_in,
        rows_accepted, rows_rejected)`` and its archive ``location``."""
        db.execute(
            "UPDATE files SET status = 'processed', name = ?, rows_in = ?, rows_accepted = ?,"
            " rows_rejected = ?, location = ?, finished_at = ? WHERE id = ?",
            (file.name, *counts, self._rel(location), _now(), claim),
        )

    def record_quarantined(
        self, db: sqlite3.Connection, claim: int | None, file: LandedFile,
        counts: tuple[int | None, int | None, int | None], reason: str, location: Path,
    ) -> None:  # fmt: skip
        """Record ``file`` quarantined at ``location`` for ``reason``, with the counts its check
        found: the claim row ``claim`` turned, or a new row when it was not claimed."""
        values = (file.name, *counts, reason, self._rel(location), _now())
        if claim is not None:
            db.execute(
                "UPDATE files SET status = 'quarantined', name = ?, rows_in = ?,"
                " rows_accepted = ?, rows_rejected = ?, reason = ?, location = ?,"
                " finished_at = ? WHERE id = ?",
                (*values, claim),
            )
        else:
            db.execute(
                "INSERT INTO files (source, sha256, size, status, owner, name,"
                " rows_in, rows_accepted, rows_rejected, reason, location,"
                " finished_at, recorded_at)"
                " VALUES (?, ?, ?, 'quarantined', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (file.source, file.sha256, file.size, self.owner, *values, _now()),
            )

    def record_duplicate(
        self, db: sqlite3.Connection, file: LandedFile, original: int, location: Path
    ) -> None:
        """Record ``file`` a duplicate of the processed row ``original``, archived at
        ``location``."""
        db.execute(
            "INSERT INTO files (source, name, sha256, size, status, duplicate_of, owner,"
            " location, recorded_at, finished_at) VALUES (?, ?, ?, ?, 'duplicate', ?, ?, ?, ?, ?)",
            (file.source, file.name, file.sha256, file.size, original, self.owner,
             self._rel(location), _now(), _now()),
        )  # fmt: skip

    def forget(self, db: sqlite3.Connection, row: int) -> None:
        """Delete the row ``row`` (a claim given up, or superseded by a finished row)."""
        db.execute("DELETE FROM files WHERE id = ?", (row,))

    def release(self, file: LandedFile) -> bool:
        """Give up this owner's claim on ``file`` in a transaction of its own; True if a claim
        was released."""
        with self.transaction() as db:
            claim = self.own_claim(db, file)
            if claim is not None:
                self.forget(db, claim)
        return claim is not None
