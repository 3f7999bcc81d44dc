"""The lake path's temporary folders: a driver killed before it could remove its own leaves one,
removed by the next driver that starts a lake path (``path_process.prune_orphans``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pipelines.jobs import path_process


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_dead_drivers_folder_goes_and_a_live_ones_stays(tmp_path: Path) -> None:
    dead = tmp_path / f"tarmac-lake-{_dead_pid()}-abc123"
    live = tmp_path / f"tarmac-lake-{os.getpid()}-def456"
    other = tmp_path / "tarmac-lake-unnamed"  # an older name without a pid: not ours to judge
    for folder in (dead, live, other):
        folder.mkdir()
        (folder / "result.json").write_text("{}")
    assert path_process.prune_orphans(tmp_path) == [dead]
    assert not dead.exists() and live.exists() and other.exists()
