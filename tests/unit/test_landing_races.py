"""The landing manifest under overlapping runs, race by race (no service needed).

The flake of ``test_overlapping_runs_handle_each_file_once`` (quarantined 3 of 4, once in a
clean-clone CI run): six runs each make one pass; a run meeting a *copy* of content that another
live run had claimed under another name got ``claim() == False`` and went on, and when the other
run finished, no run came back for the copy: it stayed in ``landing/`` (1 in 100 loops of the
test, 2 in 20 with a 10 ms ``check``). Now ``claim`` waits for the other claim to end and then
takes the copy (quarantined content: checked again) or archives it as a duplicate (processed).
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from pathlib import Path

import pytest

from pipelines.landing.zone import LandingZone
from tests.unit.test_landing import GOOD, HEADER, SRC, _overlapping_run, drop, stored

BAD = b"station;ts;temp_c\n"


def _later(seconds: float, action) -> threading.Thread:
    def run() -> None:
        time.sleep(seconds)
        action()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_copy_of_claimed_bad_content_is_checked_after_the_claim_ends(tmp_path: Path) -> None:
    drop(tmp_path, "a.csv", BAD)
    drop(tmp_path, "b.csv", BAD)
    first = LandingZone(tmp_path, owner="otherhost:1")  # another host: never stale
    second = LandingZone(tmp_path, owner="otherhost:2")
    a, b = first.pending(SRC)
    assert first.claim(a)
    assert not second.claim(b, wait_s=0)  # no waiting: left for later, still in landing/
    assert b.path.exists()
    thread = _later(0.3, lambda: first.quarantine(a, first.check(a, HEADER)))
    assert second.claim(b, wait_s=30)  # waited for the quarantine, then took the copy
    thread.join()
    second.quarantine(b, second.check(b, HEADER))
    assert [r["status"] for r in second.manifest.records(SRC)] == ["quarantined", "quarantined"]
    assert second.reconcile(SRC)["pending"] == 0


def test_a_copy_of_content_processed_meanwhile_is_archived_as_duplicate(tmp_path: Path) -> None:
    drop(tmp_path, "a.csv", GOOD)
    drop(tmp_path, "b.csv", GOOD)
    first = LandingZone(tmp_path, owner="otherhost:1")
    second = LandingZone(tmp_path, owner="otherhost:2")
    a, b = first.pending(SRC)
    assert first.claim(a)
    assert not second.is_duplicate(b)
    thread = _later(0.3, lambda: first.commit(a, 3, 3, 0))
    assert not second.claim(b)  # content processed while waiting: archived as duplicate
    thread.join()
    assert not b.path.exists()
    assert [r["status"] for r in second.manifest.records(SRC)] == ["processed", "duplicate"]
    assert second.reconcile(SRC)["pending"] == 0


def test_the_same_file_claimed_by_another_run_is_left_to_it(tmp_path: Path) -> None:
    drop(tmp_path, "a.csv", GOOD)
    first = LandingZone(tmp_path, owner="otherhost:1")
    second = LandingZone(tmp_path, owner="otherhost:2")
    t0 = time.monotonic()
    assert first.claim(first.pending(SRC)[0])
    assert not second.claim(second.pending(SRC)[0], wait_s=60)  # no wait: the other moves it
    assert time.monotonic() - t0 < 30


def test_a_deleted_quarantined_file_does_not_lend_its_place(tmp_path: Path) -> None:
    """An unfinished move is found by name *and* content: a copy under another name, after an
    operator deleted the first quarantined file, gets its own row and place."""
    zone = LandingZone(tmp_path)
    drop(tmp_path, "a.csv", BAD)
    (a,) = zone.pending(SRC)
    assert zone.claim(a)
    first = zone.quarantine(a, zone.check(a, HEADER))
    first.unlink()  # inspected and deleted
    drop(tmp_path, "b.csv", BAD)
    (b,) = zone.pending(SRC)
    assert zone.claim(b)
    second = zone.quarantine(b, zone.check(b, HEADER))
    assert second.name == "b.csv"
    assert [(r["name"], r["status"]) for r in zone.manifest.records(SRC)] == [
        ("a.csv", "quarantined"),
        ("b.csv", "quarantined"),
    ]


@pytest.mark.parametrize("round_", range(5))
def test_overlapping_runs_with_slow_checks_leave_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, round_: int
) -> None:
    """The overlap test with the window widened (a 10 ms check holds each claim longer)."""
    real = LandingZone.check

    def slow(self, *args, **kwargs):
        time.sleep(0.01)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(LandingZone, "check", slow)
    zone = LandingZone(tmp_path)
    inputs = [GOOD + f"S{i % 5},2024-01-01T00,{i % 5}\n".encode() for i in range(40)]
    inputs += [BAD] * 4
    for i, data in enumerate(inputs):
        drop(tmp_path, f"f{i:02d}.csv", data)
    with multiprocessing.get_context("fork").Pool(6) as pool:
        pool.map(_overlapping_run, [(tmp_path, f"run{k}") for k in range(6)])
    counts = zone.reconcile(SRC)
    assert (counts["processed"], counts["duplicate"], counts["quarantined"]) == (5, 35, 4)
    assert (counts["files_in"], counts["missing"], counts["pending"]) == (44, 0, 0)
    assert sorted(p.read_bytes() for p in stored(tmp_path)) == sorted(inputs)
