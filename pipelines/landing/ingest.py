"""Landed CSV files -> Spark, with the landing-zone contract: duplicates skipped, bad files
quarantined with a reason, good files read together, and each file committed only after its
rows were written downstream, with counts that reconcile twice: per file, the rows the file
check counted from the bytes equal the rows Spark read from it (:func:`set_aside`,
``core/reconcile.py``), and in = accepted + rejected."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipelines.core import faults
from pipelines.core.config import Settings
from pipelines.core.exceptions import LandingError
from pipelines.core.reconcile import FileMismatch, file_mismatches
from pipelines.landing.checks import CheckResult
from pipelines.landing.manifest import LandedFile
from pipelines.landing.zone import LandingZone

CORRUPT = "_corrupt"
RAW_LINE = "raw_line"


class FileReject(NamedTuple):
    """A file quarantined by a run, as its reject row has it (``transform/rejects.file_rows``):
    the job, why, and where it was (``<source>/<name>``, under ``landing/``)."""

    source: str
    reason: str
    where: str


@dataclass
class FileBatch:
    """What one run found in ``landing/<source>/``."""

    good: list[LandedFile] = field(default_factory=list)
    duplicates: int = 0
    quarantined: int = 0
    busy: int = 0  # claimed by another run
    rejects: list[FileReject] = field(default_factory=list)  # the quarantined files
    deferred: list[LandedFile] = field(default_factory=list)  # same content as a good file
    checked: dict[str, int] = field(default_factory=dict)  # rows the file check counted, by name

    def summary(self) -> dict[str, int]:
        return {"files": len(self.good), "duplicates": self.duplicates,
                "quarantined": self.quarantined, "busy": self.busy}  # fmt: skip


def zone(settings: Settings) -> LandingZone:
    return LandingZone(settings.resolve(settings.paths.data))


def claim_pending(
    lz: LandingZone, source: str, header_of: Any, job: str, pattern: str = "*.csv"
) -> FileBatch:
    """Claim the pending files of ``source``; ``header_of(file)`` gives the expected header
    (or, for a file this source does not know, which is quarantined: None or the reason).

    The first file of each content (in name order) is claimed, the whole batch in one manifest
    transaction (``claim_all``); a later copy waits for the first's fate (``deferred``), except
    when the first is quarantined: the copy is then claimed and checked in its own right (a
    badly named file does not hold back the same bytes under a good name)."""
    batch = FileBatch()
    done = lz.manifest.processed_sha256(source)  # one query, one transaction, not one per file
    candidates = []
    for f in lz.pending(source, pattern):
        if f.sha256 in done:
            lz.skip_duplicate(f)
            batch.duplicates += 1
        else:
            candidates.append(f)
    while candidates:
        first: dict[str, LandedFile] = {}
        copies = []
        for f in candidates:
            if f.sha256 in first:  # dropped twice before the first copy was processed
                copies.append(f)
            else:
                first[f.sha256] = f
        refused = _claim_and_check(lz, list(first.values()), header_of, job, source, batch)
        candidates = [f for f in copies if f.sha256 in refused]
        batch.deferred += [f for f in copies if f.sha256 not in refused]
    return batch


def _claim_and_check(
    lz: LandingZone, files: list[LandedFile], header_of: Any, job: str, source: str,
    batch: FileBatch,
) -> set[str]:  # fmt: skip
    """Claim ``files`` (one per content) and check each: good ones join ``batch.good``, bad ones
    are quarantined; the contents quarantined."""
    outcomes = lz.claim_all(files)
    refused: set[str] = set()
    for f in files:
        if outcomes[f.name] != "claimed":
            if f.path.exists():  # claimed by another run; a copy's fate is settled after
                batch.busy += 1
                batch.deferred.append(f)
            else:  # processed meanwhile: claim_all() archived it as a duplicate
                batch.duplicates += 1
            continue
        header = header_of(f)
        why = header if isinstance(header, str) else f"unexpected file {f.name}"
        result = lz.check(f, header) if header is not None and not isinstance(header, str) else None
        if result is None or not result.ok:
            reason = result.reason if result is not None else why
            lz.quarantine(f, result if result is not None else reason)
            refused.add(f.sha256)
            batch.quarantined += 1
            batch.rejects.append(FileReject(job, reason, f"{source}/{f.name}"))
            continue
        batch.good.append(f)
        batch.checked[f.name] = result.rows_in or 0
    return refused


def settle_deferred(lz: LandingZone, batch: FileBatch) -> None:
    """After the good files are committed, archive their same-content copies (and copies of
    what other runs processed meanwhile) as duplicates."""
    for f in batch.deferred:
        try:
            if f.path.exists() and lz.is_duplicate(f):
                lz.skip_duplicate(f)
                batch.duplicates += 1
        except LandingError:
            if f.path.exists():
                raise  # not just moved by another run
    batch.deferred = [f for f in batch.deferred if f.path.exists()]


READ_BYTES_PER_PARTITION = 64 * 1024 * 1024
MANY_FILES = 32  # from here on, a batch in one folder is read as that folder, kept by name


def read_partitions(spark: SparkSession, files: list[LandedFile]) -> int:
    """Partitions for reading ``files``: one per 64 MiB, at least one per task slot. Spark
    counts each file as 4 MiB to open (``openCostInBytes``), so a year of hourly weather files
    (8,714 files of 3 KB) read as 272 partitions, and every later action over the rows ran 272
    tasks; coalesced, the same rows are 2 partitions on 2 cores. The weather job of a year
    alone, 2 cores: 192 s before, 102 s coalesced, 79 s with the folder read of
    :func:`read_csv` too (README, "backfill")."""
    total = sum(f.size for f in files)
    return max(spark.sparkContext.defaultParallelism, -(-total // READ_BYTES_PER_PARTITION))


def read_csv(spark: SparkSession, files: list[LandedFile], header: list[str]) -> DataFrame:
    """The files as one DataFrame of strings (``NA`` kept as text) plus ``source_file``,
    ``source_dir``, ``_corrupt`` (the raw line of a row with the wrong number of fields) and
    ``raw_line`` (the row as text, for reject excerpts)."""
    faults.point("landing.before_read")  # tests: checked and counted, not yet listed by Spark
    schema = T.StructType([T.StructField(c, T.StringType()) for c in [*header, CORRUPT]])
    reader = (
        spark.read.option("header", True)
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", CORRUPT)
        .schema(schema)
    )
    folders = {f.path.parent for f in files}
    if len(files) > MANY_FILES and len(folders) == 1:
        # their folder listed once, the batch's files kept by folder and name: Spark checks
        # and lists every path it is given one by one (29 s for a year of weather files, 6 s
        # this way); a file of a subfolder is listed too (recursive), and dropped
        folder = folders.pop()
        frame = (
            reader.option("recursiveFileLookup", True)
            .csv(str(folder))
            .where(
                (F.regexp_extract(F.input_file_name(), r"([^/]+)/[^/]+$", 1) == folder.name)
                & F.regexp_extract(F.input_file_name(), r"([^/]+)$", 1).isin(
                    [f.path.name for f in files]
                )
            )
        )
    else:
        frame = reader.csv([str(f.path) for f in files])
    return (
        frame.coalesce(read_partitions(spark, files))
        .withColumn("source_file", F.regexp_extract(F.input_file_name(), r"([^/]+)$", 1))
        .withColumn("source_dir", F.regexp_extract(F.input_file_name(), r"([^/]+)/[^/]+$", 1))
        .withColumn(
            RAW_LINE,
            F.coalesce(
                F.col(CORRUPT), F.concat_ws(",", *[F.coalesce(c, F.lit("")) for c in header])
            ),
        )
    )


def with_malformed(cleaned: DataFrame) -> DataFrame:
    """Rows Spark could not split into the header's fields are refused first."""
    return cleaned.withColumn(
        "reject_reason",
        F.when(
            F.col(CORRUPT).isNotNull(), F.lit("malformed CSV row (wrong number of fields)")
        ).otherwise(F.col("reject_reason")),
    )


def file_counts(frame: DataFrame, by: str = "source_file") -> dict[str, tuple[int, int]]:
    """(accepted, rejected) rows per file."""
    rows = (
        frame.groupBy(by)
        .agg(
            F.count(F.when(F.col("reject_reason").isNull(), 1)).alias("ok"),
            F.count(F.when(F.col("reject_reason").isNotNull(), 1)).alias("bad"),
        )
        .collect()
    )
    return {r[by]: (r["ok"], r["bad"]) for r in rows}


@dataclass
class SetAside:
    """The files of a read whose counts did not reconcile, and what was done with each."""

    mismatches: list[FileMismatch] = field(default_factory=list)
    fates: dict[str, str] = field(default_factory=dict)  # file key -> what was done with it
    rejects: list[FileReject] = field(default_factory=list)  # the quarantined

    def keep(self, frame: DataFrame, by: str = "source_file") -> DataFrame:
        """``frame`` without the rows of the files set aside (``by``: the file key column)."""
        return frame.where(~F.col(by).isin(list(self.fates))) if self.fates else frame


def set_aside(
    lz: LandingZone,
    batch: FileBatch,
    read: dict[str, tuple[int, int]],
    job: str,
    files: list[LandedFile] | None = None,
    key: Any = lambda f: f.path.name,
) -> SetAside:
    """Compare, per file of ``files`` (default: the batch's good ones), the rows its check
    counted with the rows Spark ``read`` from it (accepted, rejected by ``key(file)``, from
    :func:`file_counts`), before anything is written. A file that does not reconcile leaves
    ``batch.good`` and is never committed: if its bytes changed since it was listed (rewritten
    in place while the run read it) its claim is released and it stays in ``landing/``, so the
    next run checks and reads it anew; if they did not, the two parsers split the same bytes
    differently and it is quarantined with the reason and both counts (a retry would fail the
    same way). The job drops their rows (:meth:`SetAside.keep`), processes the rest and fails
    the run at its end (``reconcile.files_error``)."""
    files = batch.good if files is None else files
    by_key = {key(f): f for f in files}
    checked = {key(f): batch.checked.get(f.name, 0) for f in files}
    found = [m for m in file_mismatches(checked, {k: sum(v) for k, v in read.items()})
             if m.name in by_key]  # fmt: skip
    aside = SetAside(mismatches=found)
    for m in found:
        f = by_key[m.name]
        batch.good.remove(f)
        if lz.changed(f):
            lz.release(f)
            aside.fates[m.name] = (
                f"changed while it was read: left in landing/{f.source}/ for the next run"
            )
            continue
        reason = (f"unreconciled: the file check counted {m.checked} rows, Spark read {m.read} "
                  "from the same bytes (a quoted value spanning lines?)")  # fmt: skip
        where = lz.quarantine(f, CheckResult(ok=False, code="unreconciled", reason=reason,
                                             rows_in=m.checked))  # fmt: skip
        aside.fates[m.name] = f"quarantined as {where.relative_to(lz.root)}"
        aside.rejects.append(FileReject(job, reason, f"{f.source}/{f.name}"))
    return aside


def commit_all(lz: LandingZone, files: list[LandedFile], counts: dict[str, tuple[int, int]],
               key: Any = lambda f: f.path.name) -> dict[str, int]:  # fmt: skip
    """Commit every good file with its row counts (one manifest transaction); the totals."""
    totals = {"rows_in": 0, "accepted": 0, "rejected": 0}
    done = []
    for f in files:
        ok, bad = counts.get(key(f), (0, 0))
        done.append((f, ok + bad, ok, bad))
        totals["rows_in"] += ok + bad
        totals["accepted"] += ok
        totals["rejected"] += bad
    lz.commit_all(done)  # one transaction for the batch
    return totals
