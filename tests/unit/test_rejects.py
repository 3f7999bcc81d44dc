"""The one reject shape (``transform/rejects``): its columns, and a quarantined file's row. The
Spark builders (``reject_rows`` and its kinds) run in ``tests/integration`` (they need the JVM)."""

from __future__ import annotations

from datetime import datetime

from pipelines.landing.ingest import FileReject
from pipelines.transform import rejects

AT = datetime(2013, 1, 1, 5, 30)


def test_the_reject_schema_is_the_lake_table_s() -> None:
    # raw/rejects holds these columns in this order, and the documents' _id hashes three of them
    assert rejects.REJECT_SCHEMA == (
        "source string, reason string, where string, kind string, excerpt string, at timestamp"
    )
    assert rejects.REJECT_COLUMNS == ("source", "reason", "where", "kind", "excerpt", "at")
    assert rejects.EXCERPT_CHARS == 500


def test_a_quarantined_file_is_a_row_of_kind_file_without_excerpt() -> None:
    reject = FileReject("weather_hourly", "empty file", "weather/weather_20130101T05Z.csv")
    row = rejects.file_row(*reject, AT)
    assert dict(zip(rejects.REJECT_COLUMNS, row, strict=True)) == {
        "source": "weather_hourly", "reason": "empty file",
        "where": "weather/weather_20130101T05Z.csv", "kind": "file", "excerpt": "", "at": AT,
    }  # fmt: skip
