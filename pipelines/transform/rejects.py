"""The one shape of a refused record, whatever refused it: a reject row of :data:`REJECT_SCHEMA`.

Every reject (a Kafka event the stream refused, a CSV row a file job refused, a value a file
job nulled, a whole file the landing zone quarantined) is one row of the same six columns
(:data:`REJECT_COLUMNS`), built here, pure: :func:`reject_rows` from a frame whose refused rows
carry a reason, through one builder per kind of input (:func:`event_rejects`,
:func:`line_rejects`, :func:`value_rejects`), and :func:`file_rows` from the files a landing
batch quarantined. One writer puts them in ``raw/rejects`` and the ``rejects`` collection
(``serving/publish.publish_rejects``), where each document's ``_id`` hashes its source,
``where`` and reason (``serving/documents.reject_docs``), so a rerun adds no copy.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from pipelines.landing.ingest import RAW_LINE

# source: the job that refused it; where: how to find it again (Kafka coordinates, file and
# line, file and key, landing folder and file); kind: row, value or file; excerpt: the raw text
REJECT_COLUMNS = ("source", "reason", "where", "kind", "excerpt", "at")
REJECT_TYPES = ("string", "string", "string", "string", "string", "timestamp")
REJECT_SCHEMA = ", ".join(f"{c} {t}" for c, t in zip(REJECT_COLUMNS, REJECT_TYPES, strict=True))
EXCERPT_CHARS = 500  # of the raw text kept in a reject


def reject_rows(
    frame: DataFrame,
    source: str,
    where: Sequence[str],
    excerpt: str,
    at: Column | datetime,
    reason: str = "reject_reason",
    kind: str = "row",
) -> DataFrame:
    """The rows of ``frame`` whose ``reason`` column is set, as reject rows of ``source``:
    located by the ``where`` columns (joined with ``:``), the first :data:`EXCERPT_CHARS`
    characters of the ``excerpt`` column, refused ``at`` (a column, or one time for all).
    Each kind of input has its builder below; they differ only in these arguments."""
    when = at if isinstance(at, Column) else F.lit(at).cast("timestamp")
    return frame.where(F.col(reason).isNotNull()).select(
        F.lit(source).alias("source"),
        F.col(reason).alias("reason"),
        F.concat_ws(":", *where).alias("where"),
        F.lit(kind).alias("kind"),
        F.substring(excerpt, 1, EXCERPT_CHARS).alias("excerpt"),
        when.alias("at"),
    )


def event_rejects(events: DataFrame, source: str) -> DataFrame:
    """The Kafka events ``flight_state.parse_events`` refused: located by topic, partition and
    offset, the raw payload as excerpt, refused at their Kafka timestamp."""
    return reject_rows(events, source, ["kafka_topic", "kafka_partition", "kafka_offset"],
                       "raw", F.col("kafka_timestamp"))  # fmt: skip


def line_rejects(rows: DataFrame, source: str, where: Sequence[str], at: datetime) -> DataFrame:
    """The CSV rows a file job refused (``landing.ingest.read_csv`` rows, cleaned): located by
    the ``where`` columns (the file, and the raw line or the key), the raw line as excerpt."""
    return reject_rows(rows, source, where, RAW_LINE, at)


def value_rejects(rows: DataFrame, source: str, at: datetime) -> DataFrame:
    """The values nulled on accepted rows (``value_issues``, e.g. an out-of-range wind): kind
    ``value``, located by file and row ``_id``, the ``_id`` as excerpt."""
    return reject_rows(rows, source, ["source_file", "_id"], "_id", at, "value_issues", "value")


def file_row(source: str, reason: str, where: str, at: datetime) -> tuple[object, ...]:
    """A quarantined file as the values of one reject row (:data:`REJECT_COLUMNS`): kind
    ``file``, no excerpt."""
    return (source, reason, where, "file", "", at)


def file_rows(
    spark: SparkSession, files: Iterable[tuple[str, str, str]], at: datetime
) -> DataFrame:
    """The files a landing batch quarantined (``(source, reason, where)`` each, a handful:
    ``landing.ingest.FileReject``) as reject rows, refused ``at``."""
    return spark.createDataFrame([file_row(*f, at) for f in files], REJECT_SCHEMA)
