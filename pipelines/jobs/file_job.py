"""The skeleton of every file job (``weather_hourly``, ``reference_daily``): the landing-zone
contract once, each job only its ``process``.

:func:`run_file_job` claims the pending files of a source (``landing/ingest.claim_pending``:
duplicates archived, bad files quarantined), starts Spark only when there is something to
write, writes the quarantined files as rejects, hands the good files to the job's ``process``
(a :class:`FileRun`: read, clean, reconcile each file's rows with its check
(:meth:`FileRun.set_aside`), write downstream, commit (:meth:`FileRun.commit`)), settles the
copies that waited for a good file's fate, records the run's counts in ``pipeline_state`` and
logs them; a file that did not reconcile fails the run once the others are processed
(``ReconcileError``, ``core/reconcile.files_error``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from pyspark.sql import DataFrame, SparkSession

from pipelines.clients.mongo import Mongo
from pipelines.clients.spark import build_session
from pipelines.core import reconcile
from pipelines.core.config import Settings
from pipelines.lake.tables import Lake
from pipelines.landing import ingest
from pipelines.landing.manifest import LandedFile
from pipelines.landing.zone import LandingZone
from pipelines.serving import publish, sinks
from pipelines.transform import rejects

log = structlog.get_logger(__name__)


def _no_rows() -> dict[str, int]:
    return {"rows_in": 0, "accepted": 0, "rejected": 0}


@dataclass
class FileRun:
    """One run of a file job, as its ``process`` sees it: the good files (:attr:`files`), the
    session, the run's time (``now``: its rows' ``landed_at``, its rejects' ``at``) and what
    the run has counted so far; the stores it writes (the environment's lake and serving
    database, built once for the run)."""

    settings: Settings
    job: str
    lz: LandingZone
    batch: ingest.FileBatch
    lake: Lake
    store: Mongo
    now: datetime
    totals: dict[str, int] = field(default_factory=_no_rows)  # of the committed files
    mismatches: list[reconcile.FileMismatch] = field(default_factory=list)
    fates: dict[str, str] = field(default_factory=dict)  # of the unreconciled files, by key

    @property
    def spark(self) -> SparkSession:
        return self.lake.spark

    @property
    def files(self) -> list[LandedFile]:
        """The good files still in the run (a file set aside leaves it)."""
        return self.batch.good

    def set_aside(
        self,
        read: dict[str, tuple[int, int]],
        files: list[LandedFile] | None = None,
        key: Callable[[LandedFile], str] = lambda f: f.path.name,
    ) -> ingest.SetAside:
        """``ingest.set_aside`` of ``files`` (default: every good file), before anything is
        written: the files that do not reconcile leave the run, those quarantined are written
        as rejects at once; the run fails at its end."""
        aside = ingest.set_aside(self.lz, self.batch, read, self.job, files, key)
        self.mismatches += aside.mismatches
        self.fates |= aside.fates
        if aside.rejects:
            self.reject_files(aside.rejects)
        return aside

    def reject(self, rows: DataFrame) -> None:
        """Write reject rows (``transform/rejects``) to the lake and MongoDB."""
        publish.publish_rejects(self.lake, self.store, rows)

    def reject_files(self, files: list[ingest.FileReject]) -> None:
        """Write quarantined files as rejects, refused at the run's time."""
        self.reject(rejects.file_rows(self.spark, files, self.now))

    def commit(
        self,
        files: list[LandedFile],
        read: dict[str, tuple[int, int]],
        key: Callable[[LandedFile], str] = lambda f: f.path.name,
    ) -> None:
        """Commit ``files`` (written downstream) with their rows as Spark ``read`` them; their
        counts add to the run's."""
        done = ingest.commit_all(self.lz, files, read, key)
        self.totals = {k: self.totals[k] + done[k] for k in self.totals}


def run_file_job(
    settings: Settings,
    job: str,
    source: str,
    header_of: Callable[[LandedFile], list[str] | str | None],
    pattern: str,
    process: Callable[[FileRun], datetime | None],
) -> dict[str, Any]:
    """Process every pending file of ``landing/<source>/`` matching ``pattern`` once, as
    ``job``; ``header_of(file)`` gives its expected header (or why it is refused, or None for a
    file the source does not know: quarantined). ``process(run)`` runs when there are good
    files, and returns the newest time they held (the job's state), or None. Returns the file
    and row counts (``rows_in`` = ``accepted`` + ``rejected`` of the committed files)."""
    t0 = time.monotonic()
    lz = ingest.zone(settings)
    batch = ingest.claim_pending(lz, source, header_of, job, pattern)
    now = datetime.now(UTC).replace(tzinfo=None)
    store = Mongo.of(settings)
    run = None
    if batch.good or batch.rejects:
        lake = Lake.of(build_session(settings, job), settings)
        run = FileRun(settings, job, lz, batch, lake, store, now)
    newest = None
    if run is not None:
        if batch.rejects:
            run.reject_files(batch.rejects)
        if batch.good:
            newest = process(run)
    ingest.settle_deferred(lz, batch)
    mismatches = run.mismatches if run is not None else []
    result = {**batch.summary(), **(run.totals if run is not None else _no_rows()),
              "unreconciled": len(mismatches),
              "seconds": round(time.monotonic() - t0, 2)}  # fmt: skip
    sinks.set_state(store, job, newest, last_run=result)
    log.info(f"{job}.done", **result)
    if run is not None and mismatches:
        raise reconcile.files_error(source, mismatches, run.fates)
    return result
