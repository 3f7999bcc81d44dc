"""Checks of a landed CSV file before anything reads it: encoding, header, truncation, and the
share of rows refused. Pure: a path in, a :class:`CheckResult` out."""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

MAX_ROW_ERRORS = 100
# a line of only these bytes (spaces, tabs, control characters) is blank, as for Spark's CSV
# reader (``line.trim.isEmpty``): counted as a record here, it made the check count one row
# more than Spark read (found by the reconciliation, ``core/reconcile.py``)
_BLANK = bytes(range(33))


@dataclass(frozen=True)
class RowError:
    line: int
    reason: str


@dataclass(frozen=True)
class CheckResult:
    """Outcome of :func:`check_csv`; ``ok=False`` means quarantine the whole file.

    Row counts are ``None`` where the file was not read far enough to know them.
    """

    ok: bool
    code: str | None = None  # empty | encoding | header | truncated | too_many_rejected
    reason: str | None = None
    header: tuple[str, ...] = ()
    rows_in: int | None = None
    rows_accepted: int | None = None
    rows_rejected: int | None = None
    row_errors: tuple[RowError, ...] = ()  # the first MAX_ROW_ERRORS


_NONE = {"rows_in": 0, "rows_accepted": 0, "rows_rejected": 0}


def _refuse(code: str, detail: str, **counts: Any) -> CheckResult:
    return CheckResult(ok=False, code=code, reason=f"{code}: {detail}", **counts)


def check_csv(
    path: Path,
    expected_header: Sequence[str] | None = None,
    encoding: str = "utf-8",
    *,
    delimiter: str = ",",
    required: Sequence[str] = (),
    allow_truncated: bool = False,
    max_rejected_fraction: float = 0.5,
) -> CheckResult:
    """Structural check of a CSV file; value types are left to the Spark job.

    Refused whole: empty, not ``encoding`` (ASCII-compatible ones; a UTF-8 BOM is allowed), a
    header other than ``expected_header`` (or lacking a ``required`` column), truncated (the last
    record has no newline and is malformed) unless ``allow_truncated``, or more than
    ``max_rejected_fraction`` of rows rejected. Otherwise rows with the wrong field count, bad
    quoting, or an empty ``required`` value are rejected with a reason; blank lines (also of
    only whitespace) are ignored. ``rows_in`` counts the records from the bytes, independently
    of Spark: the jobs compare it with the rows Spark read from the file (``core/reconcile.py``).
    """
    if path.stat().st_size == 0:
        return _refuse("empty", "the file has 0 bytes", **_NONE)
    line_no, last_raw = 0, b""

    def lines(fh: BinaryIO) -> Iterator[str]:
        nonlocal line_no, last_raw
        for line_no, last_raw in enumerate(fh, 1):  # noqa: B007 - nonlocal, read after
            yield last_raw.decode(encoding)

    header: list[str] | None = None
    need: list[int] = []
    rows_in = rejected = 0
    errors: list[RowError] = []
    last_bad = False
    try:
        with path.open("rb") as fh:
            reader = csv.reader(lines(fh), delimiter=delimiter)
            while True:
                try:
                    row, problem = next(reader), None
                except StopIteration:
                    break
                except csv.Error as exc:
                    row, problem = [], f"unparsable: {exc}"
                if header is None:
                    if problem:
                        return _refuse("header", f"unparsable header row: {problem}")
                    if not any(cell.strip() for cell in row):
                        continue
                    header = [cell.strip() for cell in row]
                    header[0] = header[0].lstrip("\ufeff")
                    if expected_header is not None and header != list(expected_header):
                        return _refuse("header", f"expected {list(expected_header)}, got {header}")
                    if missing := [c for c in required if c not in header]:
                        return _refuse("header", f"required columns {missing} not in {header}")
                    need = [header.index(c) for c in required]
                    continue
                if problem is None and len(row) <= 1 and not last_raw.strip(_BLANK):
                    continue  # a blank line, or one of only whitespace
                rows_in += 1
                if problem is None and len(row) != len(header):
                    problem = f"fields: expected {len(header)}, got {len(row)}"
                if problem is None and (empty := [header[i] for i in need if not row[i].strip()]):
                    problem = f"missing value: {', '.join(empty)}"
                last_bad = problem is not None
                if problem:
                    rejected += 1
                    if len(errors) < MAX_ROW_ERRORS:
                        errors.append(RowError(reader.line_num, problem))
    except UnicodeDecodeError as exc:
        byte = exc.object[exc.start]
        return _refuse(
            "encoding", f"not {encoding}: byte 0x{byte:02x} at line {line_no} ({exc.reason})"
        )
    if header is None:
        return _refuse("empty", "no header row, only blank lines", **_NONE)
    counts: dict[str, Any] = dict(
        header=tuple(header),
        rows_in=rows_in,
        rows_accepted=rows_in - rejected,
        rows_rejected=rejected,
        row_errors=tuple(errors),
    )
    if last_bad and not last_raw.endswith((b"\n", b"\r")) and not allow_truncated:
        return _refuse("truncated", f"last record (line {line_no}) has no newline", **counts)
    if rows_in and rejected / rows_in > max_rejected_fraction:
        return _refuse("too_many_rejected", f"{rejected} of {rows_in} rows rejected", **counts)
    return CheckResult(ok=True, **counts)
