"""The pure comparisons of ``core/reconcile.py`` (counts of one input from two independent
sources), the offset log they read, and the landing zone's side of a file that does not
reconcile (``changed``, ``release``). The same checks on the real path, with Spark and Kafka:
``tests/integration/test_reconcile.py``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipelines.core import faults
from pipelines.core.exceptions import ReconcileError
from pipelines.core.reconcile import (
    FileMismatch,
    OffsetRange,
    PartitionRows,
    batch_ranges,
    check_batch,
    file_mismatches,
    files_error,
    gap_reason,
    offset_mismatches,
)
from pipelines.landing.checks import check_csv
from pipelines.landing.zone import LandingZone

T = "tarmac.flights.events"


def test_files_reconcile_by_name_and_a_mismatch_says_both_counts() -> None:
    checked = {"a.csv": 24, "b.csv": 3, "c.csv": 5}
    read = {"a.csv": 24, "b.csv": 4, "d.csv": 1}  # c read nothing, d never checked
    assert file_mismatches(checked, read) == [
        FileMismatch("b.csv", 3, 4), FileMismatch("c.csv", 5, 0), FileMismatch("d.csv", 0, 1),
    ]  # fmt: skip
    assert file_mismatches(checked, {**checked}) == []
    error = files_error("weather", [FileMismatch("b.csv", 3, 4)], {"b.csv": "quarantined as q"})
    assert isinstance(error, ReconcileError) and error.exit_code == 12
    assert str(error).startswith(
        "weather: 1 landed file(s) do not reconcile (b.csv: the file check counted 3 rows, "
        "Spark read 4 -- quarantined as q). The other files were processed."
    )


def _rows(partition: int, rows: int, first: int, last: int) -> PartitionRows:
    return PartitionRows(T, partition, rows, first, last)


def test_a_batch_covers_its_offsets_exactly_per_partition() -> None:
    ranges = [OffsetRange(T, 0, 100, 200), OffsetRange(T, 1, 40, 40), OffsetRange(T, 2, 0, 7)]
    parsed = [_rows(0, 100, 100, 199), _rows(2, 7, 0, 6)]  # partition 1 had nothing new
    assert offset_mismatches(ranges, parsed) == []
    check_batch(3, ranges, parsed)


@pytest.mark.parametrize(
    ("parsed", "problem"),
    [
        ([_rows(0, 99, 100, 199)], "1 rows lost between Kafka and the count"),  # inside
        ([_rows(0, 99, 100, 198)], "1 rows lost between Kafka and the count"),  # the last one
        ([_rows(0, 99, 101, 199)], "1 rows lost between Kafka and the count"),  # the first one
        ([], "100 rows lost between Kafka and the count"),  # all of them
        ([_rows(0, 101, 100, 199)], "more rows than offsets: rows read twice"),
        ([_rows(0, 100, 150, 249)], "rows at offsets 150..249, outside the range"),
    ],
)
def test_rows_that_do_not_cover_the_range_fail_naming_the_partition(parsed, problem) -> None:
    ranges = [OffsetRange(T, 0, 100, 200)]
    [found] = offset_mismatches(ranges, parsed)
    assert found.problem.startswith(problem)
    with pytest.raises(ReconcileError) as err:
        check_batch(7, ranges, parsed)
    assert str(err.value).startswith(
        f"micro-batch 7 does not reconcile with its Kafka offsets: {T} partition 0: offsets "
        f"[100, 200) hold 100 records, the batch parsed {found.rows} ({problem}"
    )
    assert "the next run reads it again" in str(err.value)


def test_rows_of_a_partition_the_batch_did_not_plan_fail() -> None:
    [found] = offset_mismatches([OffsetRange(T, 0, 0, 2)], [_rows(0, 2, 0, 1), _rows(5, 1, 9, 9)])
    assert (found.range.partition, found.problem) == (5, "a partition the batch did not plan")


def test_gaps_are_legitimate_only_on_compacted_or_transactional_topics() -> None:
    assert gap_reason(T, "delete", False) is None
    assert gap_reason(T, None, False) is None  # unknown: the exact check
    compacted = gap_reason(T, "compact,delete", False)
    assert compacted is not None and "compacted (cleanup.policy=compact,delete)" in compacted
    transactional = gap_reason(T, "delete", True)
    assert transactional is not None and "commit/abort markers take offsets" in transactional
    ranges = [OffsetRange(T, 0, 100, 200)]
    assert offset_mismatches(ranges, [_rows(0, 60, 100, 199)], compacted) == []
    [twice] = offset_mismatches(ranges, [_rows(0, 101, 100, 199)], compacted)
    assert twice.problem == "more rows than offsets: rows read twice"


def test_without_an_offset_log_the_rows_are_held_to_their_own_offsets() -> None:
    check_batch(0, None, [_rows(0, 3, 10, 12)])
    with pytest.raises(ReconcileError, match=r"offsets \[10, 13\) hold 3 records, the batch "):
        check_batch(0, None, [_rows(0, 2, 10, 12)])  # one lost inside


def _log(folder: Path, name: str, text: str) -> None:
    (folder / name).parent.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)


def test_batch_ranges_come_from_the_querys_offset_log(tmp_path: Path) -> None:
    """The files as Spark 4.2 writes them (seen in a real checkpoint): ``sources/0/0`` holds
    the first batch's start (a NUL byte, ``v1``, the offsets), ``offsets/<n>`` a version line,
    the batch's metadata, then its end offsets; a partition added later starts at 0."""
    meta = '{"batchWatermarkMs":0,"batchTimestampMs":1,"conf":{}}'
    _log(tmp_path, "sources/0/0", '\x00v1\n{"t":{"0":5,"1":0}}')
    _log(tmp_path, "offsets/0", f'v1\n{meta}\n{{"t":{{"0":8,"1":2}}}}')
    _log(tmp_path, "offsets/1", f'v1\n{meta}\n{{"t":{{"0":9,"1":2,"2":4}}}}')

    def read(name: str) -> str:
        return (tmp_path / name).read_text()

    assert batch_ranges(read, 0) == [OffsetRange("t", 0, 5, 8), OffsetRange("t", 1, 0, 2)]
    assert batch_ranges(read, 1) == [
        OffsetRange("t", 0, 8, 9), OffsetRange("t", 1, 2, 2), OffsetRange("t", 2, 0, 4),
    ]  # fmt: skip
    assert batch_ranges(read, 2) is None  # no such batch
    _log(tmp_path, "offsets/2", f'v9\n{meta}\n{{"t":{{"0":9}}}}')
    assert batch_ranges(read, 2) is None  # a format this code does not know


def test_whitespace_only_lines_are_blank_to_the_check_as_to_spark(tmp_path: Path) -> None:
    """Spark's CSV reader skips a line of only spaces or tabs; the check counted it as a
    rejected record, one row more than Spark read (found by the reconciliation)."""
    path = tmp_path / "x.csv"
    path.write_bytes(b"a,b,c\n1,2,3\n   \n\t\r\n4,5,6\n\n")
    result = check_csv(path, ["a", "b", "c"])
    assert (result.ok, result.rows_in, result.rows_rejected) == (True, 2, 0)
    path.write_bytes(b'a,b,c\n1,"x\ny",3\n')  # one record to csv, two lines to Spark
    assert check_csv(path, ["a", "b", "c"]).rows_in == 1


def test_a_changed_file_is_released_for_the_next_run(tmp_path: Path) -> None:
    zone = LandingZone(tmp_path)
    landing = tmp_path / "landing" / "weather"
    landing.mkdir(parents=True)
    (landing / "w.csv").write_text("a\n1\n")
    [file] = zone.pending("weather")
    assert zone.claim(file) and not zone.changed(file)
    stat = (landing / "w.csv").stat()
    (landing / "w.csv").write_text("a\n2\n")  # same size, rewritten in place, mtime put back
    os.utime(landing / "w.csv", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert zone.changed(file)  # the content hash tells
    assert zone.release(file) and not zone.release(file)
    assert zone.manifest.records("weather") == []  # no claim left: nothing recorded, nothing moved
    [again] = zone.pending("weather")
    assert zone.claim(again)
    zone.commit(again, 1, 1, 0)
    assert [r["status"] for r in zone.manifest.records("weather")] == ["processed"]


def test_drop_is_a_fault_that_only_active_reads(monkeypatch) -> None:
    monkeypatch.setenv(faults.ENV, "stream.before_count:drop")
    faults.point("stream.before_count")  # neither kills nor pauses
    assert faults.active("stream.before_count", "drop")
    assert not faults.active("stream.before_count", "pause")
    assert not faults.active("landing.before_read", "drop")
