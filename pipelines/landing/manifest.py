"""The landing manifest (SQLite) under a zone's root: schema, transactions, the zone lock and
the queries of :class:`pipelines.landing.zone.LandingZone`, which adds the file operations."""

from __future__ import annotations

import hashlib
import os
import socket
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from pipelines.core import files
from pipelines.core.exceptions import LandingError

MANIFEST = "_manifest.sqlite"
LOCK = "_manifest.lock"
TEMP_SUFFIXES = (".tmp", ".part", ".partial", ".inprogress")
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


def _gone(path: Path) -> LandingError:
    return LandingError(f"{path} is gone; another run moved it, skip it")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _is_temp(relative: Path) -> bool:
    return relative.name.endswith(TEMP_SUFFIXES) or any(
        part.startswith((".", "_")) for part in relative.parts
    )


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
            raise _gone(self.path) from None


def _reason_path(path: Path) -> Path:
    return path.with_name(f"{path.name}.reason.json")


class Manifest:
    """The manifest half of a landing zone (``root``, ``owner``, ``claim_ttl_s`` and
    ``manifest`` are set by :class:`~pipelines.landing.zone.LandingZone`)."""

    root: Path
    owner: str
    claim_ttl_s: float
    manifest: Path

    def pending(self, source: str, pattern: str = "*.csv") -> list[LandedFile]:
        raise NotImplementedError  # LandingZone.pending

    def _rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.manifest, timeout=60.0, isolation_level=None)
        db.row_factory = sqlite3.Row
        return db

    @contextmanager
    def _locked(self, *landed: LandedFile) -> Iterator[None]:
        """Hold the zone lock while ``landed`` files are recorded and moved, so overlapping runs
        never act on a file another run is moving; fails if one of them changed or is gone."""
        for file in landed:
            file.sha256  # noqa: B018 - hashed before taking the lock
        with files.exclusive(self.root / LOCK):
            for file in landed:
                self._unchanged(file)
            yield

    def processed_sha256(self, source: str) -> set[str]:
        """The contents (sha256) of ``source`` processed already: one query for a whole batch's
        duplicate check (``is_duplicate`` asks for one file)."""
        db = self._connect()
        try:
            rows = db.execute(
                "SELECT sha256 FROM files WHERE source = ? AND status = 'processed'", (source,)
            )
            return {r["sha256"] for r in rows}
        finally:
            db.close()

    @contextmanager
    def _txn(self) -> Iterator[sqlite3.Connection]:
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

    def _free(self, db: sqlite3.Connection, target: Path) -> Path:
        """``target``, or ``<stem>.<n><suffix>`` if taken on disk or in the manifest."""
        candidate, n = target, 0
        while (
            candidate.exists()
            or _reason_path(candidate).exists()
            or db.execute(
                "SELECT 1 FROM files WHERE location = ?", (self._rel(candidate),)
            ).fetchone()
        ):
            n += 1
            candidate = target.with_name(f"{target.stem}.{n}{target.suffix}")
        return candidate

    def _unfinished(self, db: sqlite3.Connection, file: LandedFile, status: str) -> Path | None:
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

    def _own_claim(self, db: sqlite3.Connection, file: LandedFile) -> sqlite3.Row | None:
        return db.execute(
            "SELECT id FROM files WHERE source = ? AND sha256 = ? AND status = 'claimed'"
            " AND owner = ?",
            (file.source, file.sha256, self.owner),
        ).fetchone()

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

    def reconcile(self, source: str) -> dict[str, int]:
        """Counts of ``source`` from the manifest (rows over processed files) plus ``pending``
        files and ``missing`` ones (recorded but not in their folder); raises
        :class:`LandingError` unless ``rows_in == rows_accepted + rows_rejected``."""
        rows = self.records(source)
        counts = {
            "files_in": len(rows),
            **{s: 0 for s in ("claimed", "processed", "quarantined", "duplicate")},
            "rows_in": 0,
            "rows_accepted": 0,
            "rows_rejected": 0,
            "missing": 0,
            "pending": len(self.pending(source, "*")),
        }
        for row in rows:
            counts[row["status"]] += 1
            if row["location"] and not (self.root / row["location"]).exists():
                counts["missing"] += 1
            if row["status"] == "processed":
                for key in ("rows_in", "rows_accepted", "rows_rejected"):
                    counts[key] += row[key]
        if counts["rows_in"] != counts["rows_accepted"] + counts["rows_rejected"]:
            raise LandingError(
                f"{source}: rows_in={counts['rows_in']} is not accepted={counts['rows_accepted']}"
                f" + rejected={counts['rows_rejected']}; the manifest was edited or is corrupt"
            )
        return counts
