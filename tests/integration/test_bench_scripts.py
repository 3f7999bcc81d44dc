"""Every benchmark under ``bench/`` starts: its ``--help`` answers. A module the benchmarks share
moved (``pipelines.stack.mongo`` became ``pipelines.clients.mongo``) and ``bench/latency.py``
kept importing the old name: nothing ran it between two measurements, so nothing said it was
broken. The helpers they import (no ``__main__``) are imported through them."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(p for p in (REPO / "bench").glob("*.py") if "__main__" in p.read_text())


def _help(script: Path) -> tuple[str, int, str]:
    done = subprocess.run(
        [sys.executable, str(script), "--help"], cwd=REPO, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    return script.name, done.returncode, (done.stderr or done.stdout)[-600:]


def test_every_benchmark_answers_its_help() -> None:
    assert len(SCRIPTS) >= 15, [p.name for p in SCRIPTS]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(_help, SCRIPTS))
    broken = {name: said for name, code, said in results if code != 0}
    assert broken == {}, broken
