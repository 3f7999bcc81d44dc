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

The bookkeeping, one row per file handled, is the zone's :class:`Manifest` (SQLite, see
:mod:`pipelines.landing.manifest`); the zone holds it and owns the folders, the moves and the
contract above. Recording and moving a file happen under one zone lock (``_manifest.lock``),
the row committed first; if a crash stops the move, the next call meeting the same content
finishes it instead of recording a new row. Moves are renames within the root, never over an
existing file.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipelines.core.exceptions import LandingError
from pipelines.core.files import write_atomic
from pipelines.landing.checks import CheckResult, check_csv
from pipelines.landing.manifest import STATUSES, LandedFile, Manifest

TEMP_SUFFIXES = (".tmp", ".part", ".partial", ".inprogress")


def _is_temp(relative: Path) -> bool:
    return relative.name.endswith(TEMP_SUFFIXES) or any(
        part.startswith((".", "_")) for part in relative.parts
    )


def _reason_path(path: Path) -> Path:
    return path.with_name(f"{path.name}.reason.json")


class LandingZone:
    """Folders and manifest under ``root`` (see the module docstring for the contract).

    ``owner`` names this run in claims (default ``host:pid``). A claim held by someone else is
    taken over when older than ``claim_ttl_s`` or when its process on this host is gone.
    ``manifest`` is the zone's :class:`Manifest` (its rows: ``zone.manifest.records()``).
    """

    def __init__(self, root: Path, *, owner: str | None = None, claim_ttl_s: float = 3600.0):
        self.root = Path(root)
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
        owner = owner or f"{socket.gethostname()}:{os.getpid()}"
        self.manifest = Manifest(self.root, owner, claim_ttl_s)

    @property
    def owner(self) -> str:
        return self.manifest.owner

    # -- folders ----------------------------------------------------------------------------

    def _folder(self, kind: str, source: str) -> Path:
        if not source or source.startswith((".", "_")) or "/" in source or "\\" in source:
            raise LandingError(f"invalid source name {source!r}; use a plain folder name")
        return self.root / kind / source

    def _archive(self, source: str) -> Path:
        return self._folder("archive", source) / datetime.now(UTC).date().isoformat()

    def _free(self, db: sqlite3.Connection, target: Path) -> Path:
        """``target``, or ``<stem>.<n><suffix>`` if taken on disk or in the manifest."""
        candidate, n = target, 0
        while (
            candidate.exists()
            or _reason_path(candidate).exists()
            or self.manifest.location_taken(db, candidate)
        ):
            n += 1
            candidate = target.with_name(f"{target.stem}.{n}{target.suffix}")
        return candidate

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
            raise file.gone() from None

    def is_duplicate(self, file: LandedFile) -> bool:
        """True if content with this sha256 was processed already for this source."""
        return self.manifest.is_processed(file)

    @contextmanager
    def _locked(self, *landed: LandedFile) -> Iterator[None]:
        """Hold the zone lock while ``landed`` files are recorded and moved, so overlapping runs
        never act on a file another run is moving; fails if one of them changed or is gone."""
        for file in landed:
            file.sha256  # noqa: B018 - hashed before taking the lock
        with self.manifest.locked():
            for file in landed:
                self._unchanged(file)
            yield

    def _unchanged(self, file: LandedFile) -> None:
        try:
            st = file.path.stat()
        except FileNotFoundError:
            raise file.gone() from None
        if (st.st_ino, st.st_size, st.st_mtime_ns) != file.fingerprint:
            raise LandingError(f"{file.path} changed since it was listed; rerun to process it anew")

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
            with self._locked(file), self.manifest.transaction() as db:
                outcome = self.manifest.take(db, file)
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
        with self._locked(*files), self.manifest.transaction() as db:
            outcomes = {f.name: self.manifest.take(db, f) for f in files}
        for f in files:
            if outcomes[f.name] == "processed":
                self.skip_duplicate(f)
        return outcomes

    def _move(self, file: LandedFile, target: Path, status: str) -> Path:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                raise FileExistsError(target)
            os.rename(file.path, target)
        except FileNotFoundError:
            raise file.gone() from None
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
            with self.manifest.transaction() as db:
                for file, rows_in, accepted, rejected in done:
                    if (claim := self.manifest.own_claim(db, file)) is None:
                        raise LandingError(
                            f"{file.source}/{file.name} is not claimed by {self.owner} "
                            "(committed already, or claim() was skipped); claim before processing"
                        )
                    target = self._free(db, self._archive(file.source) / file.name)
                    counts = (rows_in, accepted, rejected)
                    self.manifest.record_processed(db, claim, file, counts, target)
                    targets.append(target)
            return [self._move(f, t, "processed") for f, t in zip(files, targets, strict=True)]

    def quarantine(self, file: LandedFile, reason: str | CheckResult) -> Path:
        """Move ``file`` to ``quarantine/<source>/`` with ``<name>.reason.json``; returns where."""
        result = reason if isinstance(reason, CheckResult) else CheckResult(ok=False)
        text = reason if isinstance(reason, str) else (reason.reason or "refused")
        counts = (result.rows_in, result.rows_accepted, result.rows_rejected)
        with self._locked(file):
            with self.manifest.transaction() as db:
                claim = self.manifest.own_claim(db, file)
                if target := self.manifest.unfinished(db, file, "quarantined"):
                    if claim is not None:
                        self.manifest.forget(db, claim)
                else:
                    target = self._free(db, self._folder("quarantine", file.source) / file.name)
                    self.manifest.record_quarantined(db, claim, file, counts, text, target)
            details = {
                "reason": text,
                "code": result.code,
                "detected_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
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
        return self.manifest.release(file)

    def skip_duplicate(self, file: LandedFile) -> Path:
        """Move ``file``, whose content was processed before, to ``archive/<source>/<date>/
        duplicates/`` with status duplicate; returns where."""
        with self._locked(file):
            with self.manifest.transaction() as db:
                original = self.manifest.processed_id(db, file)
                if original is None:
                    raise LandingError(f"{file.source}/{file.name} is not a duplicate; process it")
                unfinished = self.manifest.unfinished
                target = unfinished(db, file, "processed") or unfinished(db, file, "duplicate")
                if target is None:
                    target = self._free(db, self._archive(file.source) / "duplicates" / file.name)
                    self.manifest.record_duplicate(db, file, original, target)
            return self._move(file, target, "duplicate")

    def reconcile(self, source: str) -> dict[str, int]:
        """Counts of ``source`` from the manifest (rows over processed files) plus ``pending``
        files and ``missing`` ones (recorded but not in their folder); raises
        :class:`LandingError` unless ``rows_in == rows_accepted + rows_rejected``."""
        rows = self.manifest.records(source)
        counts = {
            "files_in": len(rows),
            **{s: 0 for s in STATUSES},
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
