"""Counts of one input taken from two independent sources and compared: a difference fails the
run with :class:`~pipelines.core.exceptions.ReconcileError` naming the file or the Kafka
partition, both counts and what to do. Pure (no Spark): the jobs compute the counts.

**Landing files** (``weather_hourly``, ``reference_daily``): the file check
(``landing/checks.py``, Python's ``csv`` over the file's bytes) counts each file's records
before Spark opens it; Spark then reads the file, and the rows it attributes to it
(``input_file_name()``, accepted + rejected, grouped on the executors: one small dict per run
on the driver) must be the same number (:func:`file_mismatches`). They differ when the file
changed between the check and the read (a writer rewriting it in place), or when the two parsers
split the same bytes differently: a quoted value spanning two lines is one record to ``csv``
(RFC 4180) and two to Spark's line reader (``multiLine`` off) -- found by feeding both the same
files. The job then handles that file apart (``ingest.set_aside``) and fails the run.

**Kafka micro-batches** (the stream's lake path): the offsets Spark planned for the batch,
``[start, end)`` per partition, are read from the query's own offset log in its checkpoint
(:func:`batch_ranges`: ``offsets/<batch>`` is written before the batch runs, its start is the
previous batch's end, or ``sources/0/0`` for the first batch), independently of the rows. The
rows the batch parsed (accepted + rejected, counted per partition in the job's one aggregate
with their first and last offset) must cover it (:func:`offset_mismatches`): ``rows == end -
start`` and no row outside the range. A gap in the offsets is legitimate only where Kafka itself
leaves one: on a *compacted* topic (``cleanup.policy`` contains ``compact``: the cleaner removes
records, their offsets stay) and where *transactions* write commit/abort markers (each takes an
offset but is no record) and, read ``read_committed``, aborted records are skipped. Our topics
are neither: ``kafka_io.ensure_topics`` creates them with the broker's default
``cleanup.policy=delete`` (retention deletes whole old segments, never a record inside a
range: ``TopicSettings.retention_ms``/``retention_bytes``) and
``kafka_io.producer`` is idempotent without a ``transactional_id``, so a record is an offset and
the check is exact. The stream reads the topic's ``cleanup.policy`` from the broker and the
``transactional`` flag of its parameters (:func:`gap_reason`); either one relaxes the check to
``rows <= end - start``, with the reason logged. Records deleted by retention before they were
read fail the query itself (``failOnDataLoss``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from pipelines.core.exceptions import ReconcileError


# --------------------------------------------------------------------------- landing files
@dataclass(frozen=True)
class FileMismatch:
    """A landed file whose rows the file check and Spark counted differently."""

    name: str
    checked: int  # records the file check counted from the bytes
    read: int  # rows Spark read from it (accepted + rejected)

    def __str__(self) -> str:
        return f"{self.name}: the file check counted {self.checked} rows, Spark read {self.read}"


def file_mismatches(checked: Mapping[str, int], read: Mapping[str, int]) -> list[FileMismatch]:
    """The files (by name) whose ``checked`` rows differ from the ``read`` ones, sorted; a file
    Spark read nothing from has read 0, rows Spark attributes to a file no check counted have
    checked 0."""
    return [
        FileMismatch(name, checked.get(name, 0), read.get(name, 0))
        for name in sorted(set(checked) | set(read))
        if checked.get(name, 0) != read.get(name, 0)
    ]


def files_error(source: str, mismatches: Sequence[FileMismatch], fates: Mapping[str, str]) -> (
    ReconcileError
):  # fmt: skip
    """The error of a run some of whose files did not reconcile (``fates``: what was done with
    each, by name)."""
    lines = "; ".join(f"{m} -- {fates.get(m.name, 'left as it was')}" for m in mismatches)
    return ReconcileError(
        f"{source}: {len(mismatches)} landed file(s) do not reconcile ({lines}). The other "
        "files were processed. A file changed while it was read is retried by the next run; a "
        "quarantined one holds rows the two parsers split differently: fix it (one record a "
        "line, no line break inside quotes) and drop it into landing/ again"
    )


# ------------------------------------------------------------------------- Kafka offsets
@dataclass(frozen=True)
class OffsetRange:
    """The offsets ``[start, end)`` a micro-batch planned to read from one partition."""

    topic: str
    partition: int
    start: int
    end: int


@dataclass(frozen=True)
class PartitionRows:
    """The rows a micro-batch parsed from one partition: how many, first and last offset."""

    topic: str
    partition: int
    rows: int
    first: int
    last: int


@dataclass(frozen=True)
class OffsetMismatch:
    """A partition whose parsed rows do not cover the batch's offset range."""

    range: OffsetRange
    rows: int
    problem: str

    def __str__(self) -> str:
        r = self.range
        held = r.end - r.start
        return (f"{r.topic} partition {r.partition}: offsets [{r.start}, {r.end}) hold {held} "
                f"records, the batch parsed {self.rows} ({self.problem})")  # fmt: skip


def gap_reason(topic: str, cleanup_policy: str | None, transactional: bool) -> str | None:
    """Why offsets of ``topic`` may be missing from what a batch reads, or None (every offset
    is a record: the check is exact)."""
    reasons = []
    if cleanup_policy and "compact" in cleanup_policy:
        reasons.append(f"{topic} is compacted (cleanup.policy={cleanup_policy}): the cleaner "
                       "removed records, their offsets stay")  # fmt: skip
    if transactional:
        reasons.append(f"{topic} is written in transactions: commit/abort markers take offsets "
                       "and aborted records are skipped read_committed")  # fmt: skip
    return "; ".join(reasons) or None


def offset_mismatches(
    ranges: Sequence[OffsetRange], parsed: Sequence[PartitionRows], gaps: str | None = None
) -> list[OffsetMismatch]:
    """The partitions whose ``parsed`` rows do not cover their planned ``ranges``: rows outside
    the range (from another batch, or read twice), or a count other than ``end - start``
    (``gaps``: a reason offsets may be missing, :func:`gap_reason`; then only more rows than
    offsets is a mismatch). A partition with rows but no planned range is one too."""
    rows = {(p.topic, p.partition): p for p in parsed}
    planned = {(r.topic, r.partition): r for r in ranges}
    found = []
    for key in sorted(set(rows) | set(planned)):
        got = rows.get(key)
        if key not in planned:
            assert got is not None
            unplanned = OffsetRange(*key, got.first, got.first)
            found.append(OffsetMismatch(unplanned, got.rows, "a partition the batch did not plan"))
            continue
        r, n = planned[key], (got.rows if got else 0)
        if got and n and (got.first < r.start or got.last >= r.end):
            problem = f"rows at offsets {got.first}..{got.last}, outside the range"
        elif n > r.end - r.start:
            problem = "more rows than offsets: rows read twice"
        elif n < r.end - r.start and gaps is None:
            lost = r.end - r.start - n
            problem = (f"{lost} rows lost between Kafka and the count; the topic is neither "
                       "compacted nor transactional: an offset is a record")  # fmt: skip
        else:
            continue
        found.append(OffsetMismatch(r, n, problem))
    return found


def offsets_error(batch_id: int, mismatches: Sequence[OffsetMismatch]) -> ReconcileError:
    """The error of a micro-batch whose rows do not cover its offsets: nothing of it was
    written and its offsets are not committed, so the next run reads the batch again."""
    return ReconcileError(
        f"micro-batch {batch_id} does not reconcile with its Kafka offsets: "
        + "; ".join(str(m) for m in mismatches)
        + ". Nothing of this batch was written and its offsets were not committed: the next "
        "run reads it again. If it fails again the same way, a transform drops or duplicates "
        "rows: see the job's log"
    )


def _offsets(line: str) -> dict[tuple[str, int], int]:
    data = json.loads(line)
    return {(topic, int(p)): int(o) for topic, parts in data.items() for p, o in parts.items()}


def batch_ranges(read: Callable[[str], str], batch_id: int) -> list[OffsetRange] | None:
    """The offsets ``batch_id`` of a Kafka query planned, from the offset log of its checkpoint
    (``read(name)``: the text of the checkpoint's file ``name``, wherever it lives: a local
    folder, any Hadoop URI; ``OSError`` when absent). ``offsets/<n>``: a version line ``v1``,
    the batch's metadata, then one line per source; ``sources/0/0``: the first batch's start.
    None when the log is not in that format. A partition absent from the start (added to the
    topic meanwhile) starts at 0."""
    try:
        end_lines = read(f"offsets/{batch_id}").splitlines()
        if batch_id > 0:
            start_lines = read(f"offsets/{batch_id - 1}").splitlines()
            start_line = start_lines[2] if start_lines[0] == "v1" else ""
        else:
            start_lines = read("sources/0/0").splitlines()
            start_line = start_lines[-1] if start_lines[0].lstrip("\x00") == "v1" else ""
        if end_lines[0] != "v1" or not start_line:
            return None
        start, end = _offsets(start_line), _offsets(end_lines[2])
    except (OSError, IndexError, ValueError, AttributeError):
        return None
    return [OffsetRange(t, p, start.get((t, p), 0), e) for (t, p), e in sorted(end.items())]


def check_batch(
    batch_id: int,
    ranges: Sequence[OffsetRange] | None,
    parsed: Sequence[PartitionRows],
    gaps: str | None = None,
) -> None:
    """Raise :func:`offsets_error` unless the ``parsed`` rows of micro-batch ``batch_id`` cover
    its planned ``ranges``. Without them (None: an offset log in another format) the rows are
    held to their own first..last offsets: a row lost inside still shows, one at an edge not."""
    if ranges is None:
        ranges = [OffsetRange(p.topic, p.partition, p.first, p.last + 1) for p in parsed]
    if found := offset_mismatches(ranges, parsed, gaps):
        raise offsets_error(batch_id, found)
