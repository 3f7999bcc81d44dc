"""The landing manifest's records: the SQLite schema of ``_manifest.sqlite`` (one row per file
seen, unique per source and content while live), and :class:`LandedFile`, a file found under
``landing/<source>/`` with its content hash. The zone that uses them: :mod:`.zone`."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

from pipelines.core.exceptions import LandingError

MANIFEST = "_manifest.sqlite"
LOCK = "_manifest.lock"
TEMP_SUFFIXES = (".tmp", ".part", ".partial", ".inprogress")
LIVE = "status IN ('claimed', 'processed')"
SCHEMA = (
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
    f"CREATE UNIQUE INDEX IF NOT EXISTS files_once ON files (source, sha256) WHERE {LIVE}",
    "CREATE INDEX IF NOT EXISTS files_source ON files (source, status)",
)


def gone(path: Path) -> LandingError:
    return LandingError(f"{path} is gone; another run moved it, skip it")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def is_temp(relative: Path) -> bool:
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
            raise gone(self.path) from None


def reason_path(path: Path) -> Path:
    return path.with_name(f"{path.name}.reason.json")
