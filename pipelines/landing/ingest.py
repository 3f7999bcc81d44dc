"""Landed CSV files -> Spark, with the landing-zone contract: duplicates skipped, bad files
quarantined with a reason, good files read together, and each file committed only after its
rows were written downstream, with counts that reconcile (in = accepted + rejected)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipelines.core.config import Settings
from pipelines.core.exceptions import LandingError
from pipelines.landing.manifest import LandedFile
from pipelines.landing.zone import LandingZone

CORRUPT = "_corrupt"
RAW_LINE = "raw_line"


@dataclass
class FileBatch:
    """What one run found in ``landing/<source>/``."""

    good: list[LandedFile] = field(default_factory=list)
    duplicates: int = 0
    quarantined: int = 0
    busy: int = 0  # claimed by another run
    rejects: list[dict[str, Any]] = field(default_factory=list)
    deferred: list[LandedFile] = field(default_factory=list)  # same content as a good file

    def summary(self) -> dict[str, int]:
        return {"files": len(self.good), "duplicates": self.duplicates,
                "quarantined": self.quarantined, "busy": self.busy}  # fmt: skip


def zone(settings: Settings) -> LandingZone:
    return LandingZone(settings.resolve(settings.paths.data))


def claim_pending(
    lz: LandingZone, source: str, header_of: Any, job: str, pattern: str = "*.csv"
) -> FileBatch:
    """Claim the pending files of ``source``; ``header_of(file)`` gives the expected header
    (or, for a file this source does not know, which is quarantined: None or the reason)."""
    batch = FileBatch()
    claimed: set[str] = set()
    for f in lz.pending(source, pattern):
        if lz.is_duplicate(f):
            lz.skip_duplicate(f)
            batch.duplicates += 1
            continue
        if f.sha256 in claimed:  # dropped twice before the first copy was processed
            batch.deferred.append(f)
            continue
        if not lz.claim(f, wait_s=0):
            if f.path.exists():  # claimed by another run; a copy's fate is settled after
                batch.busy += 1
                batch.deferred.append(f)
            else:  # processed meanwhile: claim() archived it as a duplicate
                batch.duplicates += 1
            continue
        header = header_of(f)
        refused = header if isinstance(header, str) else f"unexpected file {f.name}"
        result = lz.check(f, header) if header is not None and not isinstance(header, str) else None
        if result is None or not result.ok:
            reason = result.reason if result is not None else refused
            lz.quarantine(f, result if result is not None else reason)
            batch.quarantined += 1
            batch.rejects.append({"source": job, "reason": reason, "where": f"{source}/{f.name}",
                                  "file": f.name, "kind": "file", "excerpt": ""})  # fmt: skip
            continue
        batch.good.append(f)
        claimed.add(f.sha256)
    return batch


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


def read_csv(spark: SparkSession, files: list[LandedFile], header: list[str]) -> DataFrame:
    """The files as one DataFrame of strings (``NA`` kept as text) plus ``source_file``,
    ``source_dir``, ``_corrupt`` (the raw line of a row with the wrong number of fields) and
    ``raw_line`` (the row as text, for reject excerpts)."""
    schema = T.StructType([T.StructField(c, T.StringType()) for c in [*header, CORRUPT]])
    return (
        spark.read.option("header", True)
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", CORRUPT)
        .schema(schema)
        .csv([str(f.path) for f in files])
        .withColumn("source_file", F.regexp_extract(F.input_file_name(), r"([^/]+)$", 1))
        .withColumn("source_dir", F.regexp_extract(F.input_file_name(), r"([^/]+)/[^/]+$", 1))
        .withColumn(
            RAW_LINE,
            F.coalesce(
                F.col(CORRUPT), F.concat_ws(",", *[F.coalesce(c, F.lit("")) for c in header])
            ),
        )
    )


def row_rejects(frame: DataFrame, source: str, where: list[str], at: Any) -> DataFrame:
    """The rows of ``frame`` with a ``reject_reason`` as reject rows (``derive.REJECT_SCHEMA``):
    located by the ``where`` columns, the raw line as excerpt."""
    return frame.where(F.col("reject_reason").isNotNull()).select(
        F.lit(source).alias("source"),
        F.col("reject_reason").alias("reason"),
        F.concat_ws(":", *where).alias("where"),
        F.lit("row").alias("kind"),
        F.substring(RAW_LINE, 1, 500).alias("excerpt"),
        F.lit(at).cast("timestamp").alias("at"),
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


def commit_all(lz: LandingZone, files: list[LandedFile], counts: dict[str, tuple[int, int]],
               key: Any = lambda f: f.path.name) -> dict[str, int]:  # fmt: skip
    """Commit every good file with its row counts; return the totals."""
    totals = {"rows_in": 0, "accepted": 0, "rejected": 0}
    for f in files:
        ok, bad = counts.get(key(f), (0, 0))
        lz.commit(f, ok + bad, ok, bad)
        totals["rows_in"] += ok + bad
        totals["accepted"] += ok
        totals["rejected"] += bad
    return totals
