"""Landing zone: a corpus of bad inputs, each ends up archived or quarantined with its reason."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import socket
from pathlib import Path

import pytest

from pipelines.core import files
from pipelines.core.exceptions import LandingError
from pipelines.core.files import write_atomic
from pipelines.landing import zone
from pipelines.landing import zone as zone_module
from pipelines.landing.checks import CheckResult, check_csv
from pipelines.landing.zone import LandingZone

SRC = "weather"
HEADER = ["station", "ts", "temp_c"]
GOOD = b"station,ts,temp_c\nS1,2024-01-01T00,1.5\nS2,2024-01-01T00,2.0\nS3,2024-01-01T00,-0.5\n"

CORPUS: dict[str, bytes] = {
    "01_good.csv": GOOD,
    "02_malformed.csv": GOOD + b"S4,2024-01-01T00,3.0,extra\n",
    "03_missing_fields.csv": GOOD + b"S5,2024-01-01T00\n,2024-01-01T00,1.0\nS6,2024-01-01T00,\n",
    "04_non_numeric.csv": b"station,ts,temp_c\nS1,2024-01-01T01,warm\nS2,not-a-date,1e999\n",
    "05_quoted_bom.csv": b'\xef\xbb\xbfstation,ts,temp_c\n"S,1","2024-01-01T02",1\n"S\n2",x,2\n',
    "06_empty.csv": b"",
    "07_blank.csv": b"\n\r\n\n",
    "08_truncated.csv": GOOD + b"S4,2024-01-0",
    "09_latin1.csv": "station,ts,temp_c\nZürich,2024-01-01T00,1\n".encode("latin-1"),
    "10_wrong_header.csv": b"station;ts;temp_c\nS1;2024-01-01T00;1\n",
    "11_mostly_bad.csv": b"station,ts,temp_c\nS1\nS2\nS3,2024-01-01T00,1\n",
    "12_copy_of_good.csv": GOOD,
}
# name -> (status, code or None, rows_in, rows_accepted, rows_rejected)
EXPECTED = {
    "01_good.csv": ("processed", None, 3, 3, 0),
    "02_malformed.csv": ("processed", None, 4, 3, 1),
    "03_missing_fields.csv": ("processed", None, 6, 4, 2),
    "04_non_numeric.csv": ("processed", None, 2, 2, 0),
    "05_quoted_bom.csv": ("processed", None, 2, 2, 0),
    "06_empty.csv": ("quarantined", "empty", 0, 0, 0),
    "07_blank.csv": ("quarantined", "empty", 0, 0, 0),
    "08_truncated.csv": ("quarantined", "truncated", 4, 3, 1),
    "09_latin1.csv": ("quarantined", "encoding", None, None, None),
    "10_wrong_header.csv": ("quarantined", "header", None, None, None),
    "11_mostly_bad.csv": ("quarantined", "too_many_rejected", 3, 1, 2),
    "12_copy_of_good.csv": ("duplicate", None, None, None, None),
}


def drop(root: Path, name: str, data: bytes) -> Path:
    return write_atomic(root / "landing" / SRC / name, data)


def run(zone: LandingZone) -> dict[str, CheckResult | None]:
    """What a job does per file; the downstream write would sit right before commit()."""
    seen: dict[str, CheckResult | None] = {}
    for f in zone.pending(SRC):
        if zone.is_duplicate(f):
            zone.skip_duplicate(f)
            seen[f.name] = None
        elif zone.claim(f):
            result = seen[f.name] = zone.check(f, HEADER, required=["station"])
            if not result.ok:
                zone.quarantine(f, result)
            else:
                assert result.rows_in is not None and result.rows_accepted is not None
                zone.commit(
                    f, result.rows_in, result.rows_accepted, result.rows_in - result.rows_accepted
                )
    return seen


def stored(root: Path) -> list[Path]:
    """Every data file in archive/ and quarantine/ (reason files and the manifest excluded)."""
    return [
        p
        for kind in ("archive", "quarantine")
        for p in (root / kind).rglob("*")
        if p.is_file() and not p.name.endswith(".reason.json")
    ]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_corpus_each_file_archived_or_quarantined_with_reason(tmp_path: Path) -> None:
    zone = LandingZone(tmp_path)
    for name, data in CORPUS.items():
        drop(tmp_path, name, data)

    seen = run(zone)

    assert sorted(seen) == sorted(CORPUS)
    assert zone.pending(SRC) == []
    records = {r["name"]: r for r in zone.manifest.records(SRC)}
    for name, (status, code, rows_in, accepted, rejected) in EXPECTED.items():
        rec = records[name]
        assert rec["status"] == status, (name, seen[name])
        assert (rec["rows_in"], rec["rows_accepted"], rec["rows_rejected"]) == (
            (rows_in, accepted, rejected) if status != "duplicate" else (None, None, None)
        ), name
        assert rec["sha256"] == sha(CORPUS[name]) and rec["size"] == len(CORPUS[name])
        location = tmp_path / rec["location"]
        assert location.read_bytes() == CORPUS[name]
        kind = {"processed": "archive", "duplicate": "archive", "quarantined": "quarantine"}
        assert location.relative_to(tmp_path).parts[:2] == (kind[status], SRC)
        if status == "duplicate":
            assert location.parent.name == "duplicates"
            assert rec["duplicate_of"] == records["01_good.csv"]["id"]
        if status == "quarantined":
            reason = json.loads((location.parent / f"{location.name}.reason.json").read_text())
            assert reason["code"] == code and reason["reason"].startswith(f"{code}: ")
            assert reason["reason"] == rec["reason"]
            assert reason["sha256"] == rec["sha256"] and reason["size"] == rec["size"]
            assert reason["detected_at"] and reason["name"] == name
            assert (reason["rows_in"], reason["rows_rejected"]) == (rows_in, rejected)

    # Per-row reasons of files accepted with some rows rejected.
    malformed = seen["02_malformed.csv"]
    assert malformed is not None
    assert [(e.line, e.reason) for e in malformed.row_errors] == [(5, "fields: expected 3, got 4")]
    missing = seen["03_missing_fields.csv"]
    assert missing is not None
    assert [e.reason for e in missing.row_errors] == [
        "fields: expected 3, got 2",
        "missing value: station",
    ]
    assert "line 2" in records["09_latin1.csv"]["reason"]
    assert "0xfc" in records["09_latin1.csv"]["reason"]

    # Nothing lost: every input is in exactly one place, and the counts reconcile.
    assert sorted(sha(p.read_bytes()) for p in stored(tmp_path)) == sorted(
        sha(d) for d in CORPUS.values()
    )
    counts = zone.reconcile(SRC)
    assert counts == {
        "files_in": 12,
        "claimed": 0,
        "processed": 5,
        "quarantined": 6,
        "duplicate": 1,
        "rows_in": 17,
        "rows_accepted": 14,
        "rows_rejected": 3,
        "missing": 0,
        "pending": 0,
    }

    # A rerun changes nothing.
    assert run(zone) == {}
    assert zone.reconcile(SRC) == counts


def test_same_name_again_after_archive(tmp_path: Path) -> None:
    zone = LandingZone(tmp_path)
    drop(tmp_path, "obs.csv", GOOD)
    run(zone)
    drop(tmp_path, "obs.csv", GOOD)  # same name, same content: duplicate
    run(zone)
    changed = GOOD + b"S9,2024-01-01T00,9\n"
    drop(tmp_path, "obs.csv", changed)  # same name, new content: processed, never overwrites
    run(zone)

    statuses = [(r["status"], Path(r["location"]).name) for r in zone.manifest.records(SRC)]
    assert statuses == [
        ("processed", "obs.csv"),
        ("duplicate", "obs.csv"),
        ("processed", "obs.1.csv"),
    ]
    assert sorted(p.read_bytes() for p in stored(tmp_path)) == sorted([GOOD, GOOD, changed])
    assert zone.reconcile(SRC)["rows_in"] == 7


def test_crash_between_write_and_commit_reprocesses(tmp_path: Path) -> None:
    drop(tmp_path, "a.csv", GOOD)
    crashed = LandingZone(tmp_path, owner="otherhost:1")
    (f,) = crashed.pending(SRC)
    assert crashed.claim(f)
    # ... downstream write happened, then the job died before commit().

    concurrent = LandingZone(tmp_path, owner="otherhost:2")
    assert not concurrent.claim(concurrent.pending(SRC)[0])  # live claim of someone else
    rerun = LandingZone(tmp_path, owner="otherhost:3", claim_ttl_s=0)
    (f,) = rerun.pending(SRC)
    assert not rerun.is_duplicate(f)
    assert rerun.claim(f)  # stale claim taken over
    with pytest.raises(LandingError, match="not claimed by otherhost:1"):
        crashed.commit(f, 3, 3, 0)
    rerun.commit(f, 3, 3, 0)

    assert [(r["status"], r["owner"]) for r in rerun.manifest.records(SRC)] == [
        ("processed", "otherhost:3")
    ]
    assert rerun.reconcile(SRC)["processed"] == 1


def _overlapping_run(args: tuple[Path, str]) -> int:
    zone = LandingZone(args[0], owner=args[1])
    done = 0
    for f in zone.pending(SRC):
        try:
            if zone.is_duplicate(f):
                zone.skip_duplicate(f)
            elif zone.claim(f):
                result = zone.check(f, HEADER)
                if not result.ok:
                    zone.quarantine(f, result)
                else:
                    zone.commit(f, result.rows_in or 0, result.rows_accepted or 0, 0)
            done += 1
        except LandingError as exc:
            assert "is gone" in str(exc)  # another run moved it meanwhile
    return done


def test_overlapping_runs_handle_each_file_once(tmp_path: Path) -> None:
    zone = LandingZone(tmp_path)
    inputs = [GOOD + f"S{i % 5},2024-01-01T00,{i % 5}\n".encode() for i in range(40)]
    inputs += [b"station;ts;temp_c\n"] * 4
    for i, data in enumerate(inputs):
        drop(tmp_path, f"f{i:02d}.csv", data)
    with multiprocessing.get_context("fork").Pool(6) as pool:
        pool.map(_overlapping_run, [(tmp_path, f"run{k}") for k in range(6)])

    counts = zone.reconcile(SRC)
    assert (counts["processed"], counts["duplicate"], counts["quarantined"]) == (5, 35, 4)
    assert (counts["files_in"], counts["missing"], counts["pending"]) == (44, 0, 0)
    assert sorted(p.read_bytes() for p in stored(tmp_path)) == sorted(inputs)


def test_claim_of_dead_local_process_is_stale(tmp_path: Path) -> None:
    drop(tmp_path, "a.csv", GOOD)
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    dead = LandingZone(tmp_path, owner=f"{socket.gethostname()}:{pid}")
    assert dead.claim(dead.pending(SRC)[0])
    me = LandingZone(tmp_path)
    assert me.claim(me.pending(SRC)[0])


def test_commit_contract_is_enforced(tmp_path: Path) -> None:
    zone = LandingZone(tmp_path)
    drop(tmp_path, "a.csv", GOOD)
    (f,) = zone.pending(SRC)
    with pytest.raises(LandingError, match="claim before processing"):
        zone.commit(f, 3, 3, 0)
    assert zone.claim(f)
    assert zone.claim(f)  # idempotent for the same owner
    with pytest.raises(LandingError, match="every input row"):
        zone.commit(f, 3, 2, 0)
    with pytest.raises(LandingError, match="not a duplicate"):
        zone.skip_duplicate(f)
    zone.commit(f, 3, 3, 0)
    with pytest.raises(LandingError, match="is gone"):
        zone.commit(f, 3, 3, 0)


def test_file_replaced_while_processed_is_not_archived(tmp_path: Path) -> None:
    zone = LandingZone(tmp_path)
    drop(tmp_path, "a.csv", GOOD)
    (f,) = zone.pending(SRC)
    assert zone.claim(f)
    drop(tmp_path, "a.csv", GOOD + b"S9,2024-01-01T00,9\n")
    with pytest.raises(LandingError, match="changed since it was listed"):
        zone.commit(f, 3, 3, 0)
    assert run(LandingZone(tmp_path)) != {}  # the new content is a new file
    assert [r["status"] for r in zone.manifest.records(SRC)] == ["claimed", "processed"]


def test_crash_after_manifest_before_move_is_finished_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    zone = LandingZone(tmp_path)
    drop(tmp_path, "a.csv", GOOD)
    (f,) = zone.pending(SRC)
    assert zone.claim(f)

    def no_rename(src: Path, dst: Path) -> None:
        raise OSError("disk went away")

    with monkeypatch.context() as m:
        m.setattr(zone_module.os, "rename", no_rename)
        with pytest.raises(LandingError, match="the next run finishes the move"):
            zone.commit(f, 3, 3, 0)
    assert zone.reconcile(SRC)["missing"] == 1

    run(zone)  # sees a duplicate of processed content whose archive copy is missing
    (rec,) = zone.manifest.records(SRC)
    assert rec["status"] == "processed"
    assert (tmp_path / rec["location"]).read_bytes() == GOOD
    assert zone.reconcile(SRC)["missing"] == 0


def test_pending_ignores_files_being_written(tmp_path: Path) -> None:
    zone = LandingZone(tmp_path)
    folder = tmp_path / "landing" / SRC
    folder.mkdir(parents=True)
    for name in [".b.csv.1a2b.tmp", "c.csv.tmp", ".hidden.csv", "_SUCCESS", "d.csv.part"]:
        (folder / name).write_text("partial")
    (folder / "_temporary").mkdir()
    (folder / "_temporary" / "x.csv").write_text("partial")
    drop(tmp_path, "z.csv", GOOD)
    drop(tmp_path, "2024/01/a.csv", GOOD)
    assert [f.name for f in zone.pending(SRC)] == ["2024/01/a.csv", "z.csv"]
    assert zone.pending("other") == []
    with pytest.raises(LandingError, match="invalid source"):
        zone.pending("../etc")


def test_write_atomic_never_shows_a_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    zone = LandingZone(tmp_path)
    final = tmp_path / "landing" / SRC / "h.csv"
    real_fsync = os.fsync
    observed: list[tuple[bool, list[str], list[zone.LandedFile]]] = []

    def spy(fd: int) -> None:
        real_fsync(fd)
        if not observed:  # the data file, before its rename
            temps = [p.name for p in final.parent.iterdir()]
            observed.append((final.exists(), temps, zone.pending(SRC)))

    monkeypatch.setattr(files.os, "fsync", spy)
    write_atomic(final, GOOD)
    (exists, temps, pending) = observed[0]
    assert not exists and pending == []
    assert len(temps) == 1 and temps[0].startswith(".h.csv.") and temps[0].endswith(".tmp")
    assert final.read_bytes() == GOOD
    assert [p.name for p in final.parent.iterdir()] == ["h.csv"]

    def boom(src: object, dst: object) -> None:
        raise OSError("crash before rename")

    monkeypatch.setattr(files.os, "replace", boom)
    with pytest.raises(OSError, match="crash before rename"):
        write_atomic(final, "new content")
    assert final.read_bytes() == GOOD  # old content intact, temp file cleaned up
    assert [p.name for p in final.parent.iterdir()] == ["h.csv"]


def test_check_options(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(GOOD + b"S4,2024-01-0")
    assert check_csv(path, HEADER).code == "truncated"
    lenient = check_csv(path, HEADER, allow_truncated=True)
    assert lenient.ok and lenient.rows_rejected == 1
    path.write_bytes(GOOD.rstrip(b"\n"))  # complete last line without newline is fine
    assert check_csv(path, HEADER).ok
    path.write_bytes(b"a;b\n1;2\n")
    assert check_csv(path, delimiter=";").header == ("a", "b")
    assert check_csv(path, ["a", "b"], required=["c"]).code == "header"
    path.write_bytes(b"a,b\n1\n2\n")
    assert check_csv(path, max_rejected_fraction=1.0).ok
    path.write_bytes("a,b\n\u00e9,1\n".encode("latin-1"))
    assert check_csv(path, encoding="latin-1").ok


def test_write_atomic_leaves_a_file_with_the_same_bytes_untouched(tmp_path: Path) -> None:
    """A replay run again rewrites nothing: a job that listed the file sees it unchanged."""
    final = write_atomic(tmp_path / "landing" / SRC / "h.csv", GOOD)
    before = final.stat()
    write_atomic(final, GOOD)
    after = final.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    write_atomic(final, GOOD + b"x")
    assert final.read_bytes() == GOOD + b"x" and final.stat().st_ino != before.st_ino


# ------------------------------------------------------- a batch in one manifest transaction
def _batch(root: Path, n: int) -> list:
    for i in range(n):
        drop(root, f"b{i:02d}.csv", GOOD + f"S{i},2024-01-01T00,{i}\n".encode())
    return LandingZone(root).pending(SRC)


def test_claim_all_takes_a_batch_and_commit_all_records_and_moves_it(tmp_path: Path) -> None:
    lz = LandingZone(tmp_path, owner="a:1")
    files = _batch(tmp_path, 5)
    assert set(lz.claim_all(files).values()) == {"claimed"}
    other = LandingZone(tmp_path, owner="b:2")  # a live run of another host holds them now
    assert set(other.claim_all(other.pending(SRC)).values()) == {"busy"}
    where = lz.commit_all([(f, 4, 4, 0) for f in files])
    assert [p.name for p in where] == [f.name for f in files] and all(p.is_file() for p in where)
    assert {r["status"] for r in lz.manifest.records(SRC)} == {"processed"}
    assert lz.manifest.processed_sha256(SRC) == {f.sha256 for f in files}


def test_commit_all_records_all_or_none(tmp_path: Path) -> None:
    """One file of the batch not claimed by this run: nothing recorded, nothing moved."""
    lz = LandingZone(tmp_path, owner="a:1")
    files = _batch(tmp_path, 3)
    lz.claim_all(files[:2])
    with pytest.raises(LandingError, match="not claimed by a:1"):
        lz.commit_all([(f, 4, 4, 0) for f in files])
    assert {r["status"] for r in lz.manifest.records(SRC)} == {"claimed"}
    assert all(f.path.is_file() for f in files)
    with pytest.raises(LandingError, match="every input row"):
        lz.commit_all([(files[0], 4, 3, 0)])


def test_claim_all_archives_what_was_processed_meanwhile_and_refuses_copies(
    tmp_path: Path,
) -> None:
    first = LandingZone(tmp_path, owner="a:1")
    files = _batch(tmp_path, 2)
    first.claim_all(files[:1])
    first.commit_all([(files[0], 4, 4, 0)])
    drop(tmp_path, "again.csv", files[0].path.parent.parent.parent.joinpath(
        "archive", SRC).rglob("b00.csv").__next__().read_bytes())  # fmt: skip
    late = LandingZone(tmp_path, owner="b:2")
    again = [f for f in late.pending(SRC) if f.name == "again.csv"]
    assert late.claim_all(again) == {"again.csv": "processed"}
    assert not again[0].path.exists()  # archived as a duplicate
    assert [r["status"] for r in late.manifest.records(SRC) if r["name"] == "again.csv"] == [
        "duplicate"
    ]
    copies = _batch(tmp_path / "copies", 1) * 2
    with pytest.raises(LandingError, match="one file per content"):
        LandingZone(tmp_path / "copies").claim_all(copies)


def test_a_copy_of_a_quarantined_file_is_claimed_in_its_own_right(tmp_path: Path) -> None:
    """``ingest.claim_pending``: the same bytes under a refused name (first in name order)
    and under a good one: the first quarantined, the copy claimed and checked in the same run;
    a copy of a good file waits for its fate (deferred)."""
    from pipelines.landing import ingest

    drop(tmp_path, "a-badly-named.csv", GOOD)
    drop(tmp_path, "b_good.csv", GOOD)
    drop(tmp_path, "c_good.csv", GOOD + b"S9,2024-01-01T00,9\n")
    drop(tmp_path, "d_copy.csv", GOOD + b"S9,2024-01-01T00,9\n")
    lz = LandingZone(tmp_path)

    def header_of(f):
        return "bad name" if "badly" in f.name else HEADER

    batch = ingest.claim_pending(lz, SRC, header_of, "weather_hourly")
    assert sorted(f.name for f in batch.good) == ["b_good.csv", "c_good.csv"]
    assert batch.quarantined == 1 and [f.name for f in batch.deferred] == ["d_copy.csv"]
    # the quarantined file, as its reject row will have it (transform/rejects.file_rows)
    assert batch.rejects == [ingest.FileReject("weather_hourly", "bad name",
                                               "weather/a-badly-named.csv")]  # fmt: skip
