"""A fresh ``make demo`` does not wait through 2013's first night (``demo.quiet_start``): the
hours before the first flight event are landed at once, the paced replay starts 30 replayed
minutes before it; a window that opens on flights, or a replay that already sent some, is
paced from where it is, as before."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from pipelines.core import config
from pipelines.orchestration import demo
from pipelines.sources import replay


def test_a_fresh_demo_skips_the_night_before_the_first_flight(tmp_path: Path) -> None:
    settings = config.load("local").isolated("qs", tmp_path)
    # the first event of 2013: a 05:15 (New York) departure enters the board 2 h before
    first = datetime(2013, 1, 1, 8, 15, tzinfo=UTC)
    assert demo.quiet_start(settings, "2013-01-01T00:00:00Z", 24.0) == first - demo.LEAD_IN
    # flights already under way, or too little wall time to skip at that speed
    assert demo.quiet_start(settings, "2013-01-01T12:00:00Z", 24.0) is None
    assert demo.quiet_start(settings, "2013-01-01T07:30:00Z", 24.0) is None
    # a replay that sent flights resumes from its position instead
    position = replay.make(settings, "all", progress=False).position()
    position.set("flights", datetime(2013, 1, 1, 9, tzinfo=UTC), "x")
    position.save()
    assert demo.quiet_start(settings, "2013-01-01T00:00:00Z", 24.0) is None
