"""The soak's short version (``bench/soak.py --days 3 --minutes 3``) on the session's stack, as
an operator runs it: the stream and the alerts as services, the replay, the file jobs through
the runner, housekeeping on the replay clock, Voila and the page in Chromium. Asserts what it
must do, never how fast: a record for every replayed day with every area and process measured,
every KPI equal to the independent computation once drained, no restart, housekeeping run, and
nothing it started left running. The figures of its long run are in docs/operations.md."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import psutil
import pytest

from pipelines.core.config import REPO_ROOT, Settings
from pipelines.orchestration import service

pytestmark = pytest.mark.integration

AREAS = {"lake", "kafka", "mongo", "runs", "logs", "landing", "checkpoints"}
GROUPS = {"stream", "stream_lake", "alerts", "voila", "chromium", "kafka", "ferretdb"}


def _ours(marker: str) -> list[psutil.Process]:
    """Live processes started with the soak's own ``TARMAC_PARAMETERS_DIR``."""
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            mine = proc.environ().get("TARMAC_PARAMETERS_DIR") == marker
            if mine and proc.pid != os.getpid() and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
    return found


def test_the_short_soak_measures_every_day_and_ends_equal_to_the_oracle(
    stack: Settings, tmp_path: Path
) -> None:
    work, out = tmp_path / "soak", tmp_path / "soak.json"
    cmd = [sys.executable, "bench/soak.py", "--env", stack.env, "--days", "3", "--minutes", "3",
           "--workdir", str(work), "--out", str(out), "--reload-min", "2"]  # fmt: skip
    log = tmp_path / "soak.log"
    with log.open("wb") as f:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=f, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
                                start_new_session=True)  # fmt: skip
    try:
        code = proc.wait(timeout=2400)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait()
    text = log.read_text(errors="replace")
    print(text[-4000:])
    result = json.loads(out.read_text())
    assert code == 0, text[-3000:]
    assert result["error"] is None

    # a record for every replayed day (UTC, by the stream's clock), every area and process
    days = [d["day"] for d in result["days"]]
    first = date(2013, 1, 1)
    assert days[:3] == [f"{first + timedelta(days=i)}" for i in range(3)], days
    for day in result["days"]:
        assert set(day["disk_bytes"]) == AREAS
        assert set(day["rss_mb"]) >= GROUPS, day["rss_mb"]
        assert day["rss_mb"]["stream"]["max"] > 0 and day["rss_mb"]["voila"]["max"] > 0
        assert day["restarts"] == {"flights_stream": 0, "alerts": 0}
        assert day["health_read_ms_direct"] > 0
    last = result["days"][-1]["disk_bytes"]
    assert all(last[a] > 0 for a in ("lake", "kafka", "mongo", "runs", "logs")), last
    assert any(d["page"]["refreshes"] > 0 for d in result["days"]), result["page"]
    assert result["days"][-1]["file_job_runs"]["weather_hourly"] > 0
    assert result["latency_board_s_all"]["n"] > 0

    # housekeeping ran on the replay clock, through the runner, with its hot step
    assert result["housekeeping"], "no housekeeping run"
    assert all(r["status"] == "success" for r in result["housekeeping"]), result["housekeeping"]
    assert all("hot" in r["steps"] for r in result["housekeeping"])

    # every KPI equals the independent computation; nothing restarted; everything stopped
    oracle = result["oracle"]
    assert oracle["equal"], oracle
    assert oracle["flights"]["expected"] > 2000 and oracle["days"]["served"] >= 3
    assert result["targets"]["no_restart"] and result["targets"]["oracle_equal"]
    assert result["stopped"]["services_running_after_stop"] == []
    outputs = work / "outputs"
    assert not any(service.is_running(stack, job, outputs) for job in ("flights_stream", "alerts"))
    left = _ours(str(work / "parameters"))
    assert not left, [" ".join(p.cmdline())[:150] for p in left]
