"""Landing zone: source files arrive as files, are processed once, then archived or quarantined.

Layout under the landing root::

    landing/<source>/...                  incoming; writers use :func:`write_atomic`
    archive/<source>/<date>/...           processed files (UTC date of the commit)
    archive/<source>/<date>/duplicates/   content processed before, dropped again
    quarantine/<source>/...               refused files, each with ``<name>.reason.json``
    _manifest.sqlite                      one row per file handled

Contract of a job, per file of :meth:`LandingZone.pending`::

    if zone.is_duplicate(f): zone.skip_duplicate(f)
    elif zone.claim(f):   # False: another run has it, or it was a duplicate (archived)
        result = zone.check(f, HEADER)
        if not result.ok: zone.quarantine(f, result)
        else: process -> write downstream -> zone.commit(f, rows_in, accepted, rejected)

``commit`` is called only AFTER the downstream write has committed. A crash between the write
and ``commit`` leaves the file in ``landing/`` with a stale claim, so the next run processes it
again; that is harmless because downstream writes are idempotent upserts (``sinks.write``).
Runs may overlap: a file another run moved meanwhile raises :class:`LandingError` ("is gone").

The manifest is SQLite (stdlib ``sqlite3``) rather than JSON lines: ``BEGIN IMMEDIATE``
serializes concurrent jobs, a partial unique index on ``(source, sha256)`` makes "processed at
most once" a database constraint, and a crash cannot leave a torn line. It needs a local
filesystem (SQLite and ``flock`` locking are unreliable over NFS). Recording and moving a file
happen under one zone lock (``_manifest.lock``), the row committed first; if a crash stops the
move, the next call meeting the same content finishes it instead of recording a new row. Moves
are renames within the root, never over an existing file.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipelines.core.exceptions import LandingError
from pipelines.core.files import write_atomic
from pipelines.landing.checks import CheckResult, check_csv
from pipelines.landing.manifest import (  # noqa: F401 - re-exported
    _LIVE,
    _SCHEMA,
    LOCK,
    MANIFEST,
    TEMP_SUFFIXES,
    LandedFile,
    Manifest,
    _gone,
    _is_temp,
    _now,
    _reason_path,
)


class LandingZone(Manifest):
    """Folders and manifest under ``root`` (see the module docstring for the contract).

    ``owner`` names this run in claims (default ``host:pid``). A claim held by someone else is
    taken over when older than ``claim_ttl_s`` or when its process on this host is gone.
    """

    def __init__(self, root: Path, *, owner: str | None = None, claim_ttl_s: float = 3600.0):
        self.root = Path(root)
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}"
        self.claim_ttl_s = claim_ttl_s
        self.manifest = self.root / MANIFEST
        try:
            for sub in ("landing", "archive", "quarantine"):
                (self.root / sub).mkdir(parents=True, exist_ok=True)
            probe = self.root / f".probe.{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            state = "is read-only" if self.root.is_dir() else "is missing and cannot be created"
            raise LandingError(
                f"landing zone {self.root} {state} ({exc.strerror or exc}): point paths.data "
                "at a writable local folder, or fix its permissions"
            ) from exc
        with self._txn() as db:
            for statement in _SCHEMA:
                db.execute(statement)

    # -- manifest ---------------------------------------------------------------------------

    def _folder(self, kind: str, source: str) -> Path:
        if not source or source.startswith((".", "_")) or "/" in source or "\\" in source:
            raise LandingError(f"invalid source name {source!r}; use a plain folder name")
        return self.root / kind / source

    def _archive(self, source: str) -> Path:
        return self._folder("archive", source) / datetime.now(UTC).date().isoformat()

    # -- files ------------------------------------------------------------------------------

    def pending(self, source: str, pattern: str = "*.csv") -> list[LandedFile]:
        """Files waiting for ``source`` (also in subfolders), sorted by name; files being
        written (dotfiles, ``_*``, ``*.tmp``/``.part``/...) are ignored."""
        folder = self._folder("landing", source)
        found = []
        for path in folder.rglob(pattern) if folder.is_dir() else ():
            relative = path.relative_to(folder)
            if _is_temp(relative) or path.is_symlink():
                continue
            try:
                st = path.stat()
            except FileNotFoundError:  # moved away by a concurrent run
                continue
            if path.is_file():
                fingerprint = (st.st_ino, st.st_size, st.st_mtime_ns)
                found.append(LandedFile(source, relative.as_posix(), path, st.st_size, fingerprint))
        return sorted(found, key=lambda f: f.name)

    def check(
        self,
        file: LandedFile,
        expected_header: Sequence[str] | None = None,
        encoding: str = "utf-8",
        **options: Any,
    ) -> CheckResult:
        """:func:`check_csv` of ``file`` (``options`` are its keyword arguments)."""
        try:
            return check_csv(file.path, expected_header, encoding, **options)
        except FileNotFoundError:
            raise _gone(file.path) from None

    def is_duplicate(self, file: LandedFile) -> bool:
        """True if content with this sha256 was processed already for this source."""
        db = self._connect()
        try:
            return (
                db.execute(
                    "SELECT 1 FROM files WHERE source = ? AND sha256 = ? AND status = 'processed'",
                    (file.source, file.sha256),
                ).fetchone()
                is not None
            )
        finally:
            db.close()

    def claim(self, file: LandedFile, wait_s: float = 30.0) -> bool:
        """Take ``file`` for processing: True if this owner now holds its claim (new, held
        already, or a stale one taken over); False if another live run claimed this very file
        (it moves it), or if its content was processed meanwhile, in which case ``file`` is
        archived as a duplicate here (``file.path`` is then gone).

        A live claim of another run on a *copy* (same content, other name) decides this file's
        fate, so ``claim`` waits up to ``wait_s`` for it to end instead of leaving the copy in
        ``landing/`` (the race of ``test_overlapping_runs_handle_each_file_once``: 1 run in 100
        left a copy pending); after ``wait_s`` it returns False. Jobs holding claims while they
        process pass ``wait_s=0`` (two runs could wait on each other) and settle copies after.
        """
        deadline = time.monotonic() + wait_s
        while True:
            with self._locked(file), self._txn() as db:
                outcome = self._take(db, file)
            if outcome == "processed":
                self.skip_duplicate(file)
                return False
            if outcome != "wait" or time.monotonic() >= deadline:
                return outcome == "claimed"
            time.sleep(0.05)

    def claim_all(self, files: Sequence[LandedFile]) -> dict[str, str]:
        """:meth:`claim` of every file of a batch with ``wait_s=0``, under one zone lock and in
        one transaction (8,714 weather files of a year: one transaction, not 8,714); each
        file's outcome by name: ``claimed``; ``processed`` (its content was processed
        meanwhile: archived here as a duplicate, its path gone); ``busy`` or ``wait``
        (another live run holds it, or a copy). ``files`` must hold one file per content."""
        if len({f.sha256 for f in files}) != len(files):
            raise LandingError("claim_all takes one file per content; defer the copies")
        with self._locked(*files), self._txn() as db:
            outcomes = {f.name: self._take(db, f) for f in files}
        for f in files:
            if outcomes[f.name] == "processed":
                self.skip_duplicate(f)
        return outcomes

    def _take(self, db: sqlite3.Connection, file: LandedFile) -> str:
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

    def _unchanged(self, file: LandedFile) -> None:
        try:
            st = file.path.stat()
        except FileNotFoundError:
            raise _gone(file.path) from None
        if (st.st_ino, st.st_size, st.st_mtime_ns) != file.fingerprint:
            raise LandingError(f"{file.path} changed since it was listed; rerun to process it anew")

    def _move(self, file: LandedFile, target: Path, status: str) -> Path:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                raise FileExistsError(target)
            os.rename(file.path, target)
        except FileNotFoundError:
            raise _gone(file.path) from None
        except OSError as exc:
            raise LandingError(
                f"{file.path} is recorded {status} but could not be moved to {target} ({exc}); "
                "fix the cause and rerun, the next run finishes the move"
            ) from exc
        return target

    def commit(
        self, file: LandedFile, rows_in: int, rows_accepted: int, rows_rejected: int
    ) -> Path:
        """Record ``file`` processed and move it to ``archive/<source>/<date>/``; returns where.

        Call only after the downstream write has committed, with ``file`` claimed by this
        owner and ``rows_in == rows_accepted + rows_rejected``.
        """
        return self.commit_all([(file, rows_in, rows_accepted, rows_rejected)])[0]

    def commit_all(self, done: Sequence[tuple[LandedFile, int, int, int]]) -> list[Path]:
        """:meth:`commit` of a batch, ``(file, rows_in, rows_accepted, rows_rejected)`` each,
        under one zone lock and in one transaction (all recorded processed, or none: a file
        this owner does not hold fails the whole batch before anything is recorded), then each
        moved to ``archive/<source>/<date>/``; where, in order. A crash between the
        transaction and the moves leaves files recorded processed but still in ``landing/``:
        the next run finishes their moves, as after a single commit."""
        for file, rows_in, accepted, rejected in done:
            if min(rows_in, accepted, rejected) < 0 or rows_in != accepted + rejected:
                raise LandingError(
                    f"{file.name}: rows_in={rows_in} is not accepted={accepted} + "
                    f"rejected={rejected}; every input row must be accepted or rejected"
                )
        files = [d[0] for d in done]
        with self._locked(*files):
            targets = []
            with self._txn() as db:
                for file, rows_in, accepted, rejected in done:
                    if (claim := self._own_claim(db, file)) is None:
                        raise LandingError(
                            f"{file.source}/{file.name} is not claimed by {self.owner} "
                            "(committed already, or claim() was skipped); claim before processing"
                        )
                    target = self._free(db, self._archive(file.source) / file.name)
                    db.execute(
                        "UPDATE files SET status = 'processed', name = ?, rows_in = ?,"
                        " rows_accepted = ?, rows_rejected = ?, location = ?, finished_at = ?"
                        " WHERE id = ?",
                        (file.name, rows_in, accepted, rejected, self._rel(target), _now(),
                         claim["id"]),
                    )  # fmt: skip
                    targets.append(target)
            return [self._move(f, t, "processed") for f, t in zip(files, targets, strict=True)]

    def quarantine(self, file: LandedFile, reason: str | CheckResult) -> Path:
        """Move ``file`` to ``quarantine/<source>/`` with ``<name>.reason.json``; returns where."""
        result = reason if isinstance(reason, CheckResult) else CheckResult(ok=False)
        text = reason if isinstance(reason, str) else (reason.reason or "refused")
        counts = (result.rows_in, result.rows_accepted, result.rows_rejected)
        with self._locked(file):
            with self._txn() as db:
                claim = self._own_claim(db, file)
                if target := self._unfinished(db, file, "quarantined"):
                    if claim:
                        db.execute("DELETE FROM files WHERE id = ?", (claim["id"],))
                else:
                    target = self._free(db, self._folder("quarantine", file.source) / file.name)
                    values = (file.name, *counts, text, self._rel(target), _now())
                    if claim:
                        db.execute(
                            "UPDATE files SET status = 'quarantined', name = ?, rows_in = ?,"
                            " rows_accepted = ?, rows_rejected = ?, reason = ?, location = ?,"
                            " finished_at = ? WHERE id = ?",
                            (*values, claim["id"]),
                        )
                    else:
                        db.execute(
                            "INSERT INTO files (source, sha256, size, status, owner, name,"
                            " rows_in, rows_accepted, rows_rejected, reason, location,"
                            " finished_at, recorded_at)"
                            " VALUES (?, ?, ?, 'quarantined', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            (file.source, file.sha256, file.size, self.owner, *values, _now()),
                        )
            details = {
                "reason": text,
                "code": result.code,
                "detected_at": _now(),
                "source": file.source,
                "name": file.name,
                "sha256": file.sha256,
                "size": file.size,
                "rows_in": result.rows_in,
                "rows_accepted": result.rows_accepted,
                "rows_rejected": result.rows_rejected,
                "row_errors": [asdict(e) for e in result.row_errors],
            }
            target.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(_reason_path(target), json.dumps(details, indent=2) + "\n")
            return self._move(file, target, "quarantined")

    def changed(self, file: LandedFile) -> bool:
        """True if ``file`` is gone, or its bytes are not the ones it had when it was listed
        and hashed (its inode, size or mtime moved, or, all three kept, its sha256)."""
        try:
            st = file.path.stat()
            if (st.st_ino, st.st_size, st.st_mtime_ns) != file.fingerprint:
                return True
            with file.path.open("rb") as fh:
                return hashlib.file_digest(fh, "sha256").hexdigest() != file.sha256
        except FileNotFoundError:
            return True

    def release(self, file: LandedFile) -> bool:
        """Give up this owner's claim on ``file`` without recording it processed or moving it:
        it stays in ``landing/`` and the next run checks and reads it anew (a file that changed
        while it was processed). True if a claim was released."""
        with self._txn() as db:
            claim = self._own_claim(db, file)
            if claim is not None:
                db.execute("DELETE FROM files WHERE id = ?", (claim["id"],))
        return claim is not None

    def skip_duplicate(self, file: LandedFile) -> Path:
        """Move ``file``, whose content was processed before, to ``archive/<source>/<date>/
        duplicates/`` with status duplicate; returns where."""
        with self._locked(file):
            with self._txn() as db:
                original = db.execute(
                    "SELECT id FROM files WHERE source = ? AND sha256 = ? AND status = 'processed'",
                    (file.source, file.sha256),
                ).fetchone()
                if original is None:
                    raise LandingError(f"{file.source}/{file.name} is not a duplicate; process it")
                target = self._unfinished(db, file, "processed") or self._unfinished(
                    db, file, "duplicate"
                )
                if target is None:
                    target = self._free(db, self._archive(file.source) / "duplicates" / file.name)
                    db.execute(
                        "INSERT INTO files (source, name, sha256, size, status, duplicate_of,"
                        " owner, location, recorded_at, finished_at)"
                        " VALUES (?, ?, ?, ?, 'duplicate', ?, ?, ?, ?, ?)",
                        (file.source, file.name, file.sha256, file.size, original["id"],
                         self.owner, self._rel(target), _now(), _now()),
                    )  # fmt: skip
            return self._move(file, target, "duplicate")
