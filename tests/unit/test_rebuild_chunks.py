"""How ``rebuild`` cuts its range (``jobs/rebuild.py``): whole calendar months, quarters or
years of local dates, in order, and which recorded rebuild a resumed one continues."""

from __future__ import annotations

from datetime import date

import pytest

from pipelines.jobs import rebuild
from pipelines.jobs.params import RebuildParams

DATES = ["2013-02-27", "2013-02-28", "2013-03-01", "2013-04-01", "2013-12-31", "2014-01-01"]


def test_a_range_goes_by_month_quarter_or_year_in_order() -> None:
    assert [(c, len(ds)) for c, ds in rebuild.chunks(DATES)] == [
        ("2013-02", 2), ("2013-03", 1), ("2013-04", 1), ("2013-12", 1), ("2014-01", 1),
    ]  # fmt: skip
    assert list(rebuild.chunks(DATES, "quarter")) == [
        ("2013-Q1", DATES[:3]), ("2013-Q2", ["2013-04-01"]), ("2013-Q4", ["2013-12-31"]),
        ("2014-Q1", ["2014-01-01"]),
    ]  # fmt: skip
    assert [c for c, _ in rebuild.chunks(DATES, "year")] == ["2013", "2014"]
    assert [d for _, ds in rebuild.chunks(DATES, "quarter") for d in ds] == DATES  # each once


def test_a_rebuild_by_another_chunk_size_does_not_resume_this_one() -> None:
    start, end = date(2013, 1, 1), None
    assert rebuild.range_key(start, end) == "2013-01-01.."  # by month: the key it always had
    assert rebuild.range_key(start, end, "quarter") == "2013-01-01.. by quarter"
    with pytest.raises(ValueError, match="month or quarter or year, not 'week'"):
        rebuild.chunk_of("2013-01-01", "week")
    assert RebuildParams(env="ci", by="year").by == "year"
    with pytest.raises(ValueError, match="by"):
        RebuildParams(env="ci", by="week")
