"""What the soak (``bench/soak.py``) measures, each piece on its own:

- :func:`disk`: the bytes of each area the product writes, for the soak's own topics, lake,
  database and outputs only: the lake (and apart, its tables' ``_delta_log``: the part
  Delta's own log retention bounds, 10 days), Kafka's log folders of its topics, FerretDB's SQLite
  file of its database, ``outputs/runs`` and ``outputs/logs``, the landing zone (landing,
  archive, quarantine, replay positions) and the stream's checkpoints;
- :func:`memory`: the resident and the proportional memory (RSS, PSS) of each process group
  (the stream's worker and, apart, its lake child; the alerts service; Voila and its kernels;
  Kafka; FerretDB; Chromium; the batch jobs running at that moment), summed over the group's
  processes (``psutil``; PSS from ``smaps_rollup``: pages shared by forked PySpark workers
  counted once, where RSS counts them in each);
- :class:`Page`: the dashboard in headless Chromium (Playwright, ``/usr/bin/chromium``), left
  open with its own auto-refresh (``refresh_s``, 30 s) and follower (1 s), reloaded every
  ``reload_s`` (a new kernel each time; the old one is culled by Voila once its page is gone):
  the redraw stamp's ``data-read-ms`` (the whole snapshot read) and ``data-health-ms`` (its
  job-health read) of every refresh;
- :class:`Sampled`: ``bench/latency_track.Tracker`` keeping one event in ``every`` (by a hash of
  its id): event (its send to Kafka) -> its board document, as the latency bench measures it;
- :func:`oracle`: every KPI the stream and the weather job served against the independent
  pandas computation of ``tests/e2e/test_processing.py`` over the replayed window.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import zlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import psutil

from bench.latency_track import Tracker
from pipelines.core.config import Settings
from pipelines.orchestration import service
from pipelines.serving import readmodels as RM
from pipelines.stack.services import services

MB = 2**20


# ------------------------------------------------------------------------------------ disk
def _used(path: str | Path) -> int:
    """Bytes ``path`` takes on disk (its blocks: Kafka's preallocated sparse indexes, 10 MB
    each by their size, take only what is written)."""
    return os.lstat(path).st_blocks * 512


def du(path: Path, glob: str | None = None) -> int:
    """Bytes on disk of the files under ``path`` (or of the entries matching ``glob`` in it)."""
    roots = sorted(path.glob(glob)) if glob else [path]
    total = 0
    for root in roots:
        if root.is_file():
            with contextlib.suppress(OSError):
                total += _used(root)
            continue
        for dirpath, _, names in os.walk(root):
            for name in names:
                with contextlib.suppress(OSError):
                    total += _used(os.path.join(dirpath, name))
    return total


def disk(settings: Settings, outputs: Path) -> dict[str, int]:
    """Bytes of each area of the soak's own data (see the module doc)."""
    home = settings.resolve(settings.stack.home)
    kafka = home / "kafka" / "data"
    topics = sum(du(kafka, f"{t.name}-*") for t in settings.kafka.topics.values())
    lake = Path(settings.lake_root)
    return {
        "lake": du(lake),
        "lake_log": du(lake, "*/*/_delta_log"),
        "kafka": topics,
        "mongo": du(home / "ferretdb" / "data", f"{settings.mongo.database}.sqlite*"),
        "runs": du(outputs / "runs"),
        "logs": du(outputs / "logs"),
        "landing": du(settings.resolve(settings.paths.data)),
        "checkpoints": du(Path(settings.checkpoint_root)),
    }


def documents(db: Any) -> dict[str, int]:
    """Documents of each collection that grows (estimated counts: metadata, no scan)."""
    names = (RM.BOARD, RM.BOARD_HOT, RM.KPI_HOURLY, RM.KPI_DAILY, RM.WEATHER_HOURLY, RM.REJECTS,
             RM.RUNS, "alerts")  # fmt: skip
    return {n: db[n].estimated_document_count() for n in names}


# ------------------------------------------------------------------------------------ memory
def _tree(pid: int | None) -> list[psutil.Process]:
    if pid is None:
        return []
    for _ in range(3):  # a child that ends while the tree is listed: list it again
        try:
            root = psutil.Process(pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            if not psutil.pid_exists(pid):
                return []
        except psutil.Error:
            return []
    return []


def _rss(procs: list[psutil.Process]) -> int:
    total = 0
    for p in {p.pid: p for p in procs}.values():
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def _pss(procs: list[psutil.Process]) -> int:
    """Proportional set size: each shared page divided among the processes mapping it (the
    PySpark workers forked from one daemon share most of theirs: RSS counts them once each).
    From ``/proc/<pid>/smaps_rollup`` (Linux 4.14+), a read of a few microseconds."""
    total = 0
    for pid in {p.pid for p in procs}:
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
                    break
    return total


# the lake path's process once seen: a sample that could not read its cmdline or list its tree
# (a child ending meanwhile) counted its 2.7 GB JVM in the stream's group (a soak's "stream" max
# of 5.8 GB against 3.1 GB at the day's close)
_LAKE_ROOTS: set[int] = set()


def memory(settings: Settings, outputs: Path, voila_pid: int | None,
           batch_pids: list[int]) -> dict[str, dict[str, float]]:  # fmt: skip
    """Resident (``rss_mb``) and proportional (``pss_mb``) MB of each process group (see the
    module doc). Kafka and FerretDB are the env's shared servers: other users of the stack
    count in them."""
    stream = service.leftovers(service.paths(settings.env, "flights_stream", outputs).tag)
    lake: list[psutil.Process] = []
    for p in stream:
        with contextlib.suppress(psutil.Error):
            if p.pid in _LAKE_ROOTS or "pipelines.jobs.path_process" in " ".join(p.cmdline()):
                _LAKE_ROOTS.add(p.pid)
                lake += _tree(p.pid)
    lake_pids = {p.pid for p in lake}
    chromium = []
    for p in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "chrom" in p.name().lower() or "headless_shell" in p.name():
                chromium.append(p)
    groups = {
        "stream": [p for p in stream if p.pid not in lake_pids],
        "stream_lake": lake,
        "alerts": service.leftovers(service.paths(settings.env, "alerts", outputs).tag),
        "voila": _tree(voila_pid),
        "chromium": chromium,
        "batch_jobs": [p for pid in batch_pids for p in _tree(pid)],
    }
    for svc in services(settings):
        groups[svc.name] = _tree(svc.pid()) if svc.embedded else []
    return {
        "rss_mb": {k: round(_rss(v) / MB, 1) for k, v in groups.items()},
        "pss_mb": {k: round(_pss(v) / MB, 1) for k, v in groups.items()},
    }


# ------------------------------------------------------------------------------------ the page
STAMP = "[data-redraw]"


class Page:
    """Voila's page of the soak's database in headless Chromium, in a thread of its own
    (Playwright's sync API stays in the thread that started it); :attr:`refreshes` holds
    (wall time, redraw count, read ms, job-health ms) of each redraw stamp seen."""

    def __init__(self, port: int, reload_s: float, every_s: float = 5.0) -> None:
        self.url = f"http://127.0.0.1:{port}/"
        self.reload_s, self.every_s = reload_s, every_s
        self.refreshes: list[tuple[float, int, float, float]] = []
        self.loads: list[float] = []  # seconds from navigation to the first stamp, per load
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="soak-page", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _open(self, context: Any) -> Any:
        page = context.new_page()
        t0 = time.monotonic()
        page.goto(self.url, wait_until="domcontentloaded", timeout=300_000)
        page.wait_for_selector(STAMP, state="attached", timeout=600_000)
        self.loads.append(round(time.monotonic() - t0, 1))
        return page

    def _reload(self, context: Any, page: Any) -> Any:
        """A new page in place of ``page`` (closed: its kernel is culled once no page is
        connected to it), or None when it did not show its stamp (the error recorded; the next
        round tries again, so one stalled load does not end the page's figures for the soak)."""
        if page is not None:
            page.close()
        try:
            return self._open(context)
        except Exception as exc:  # noqa: BLE001 - Playwright's timeout, a crashed tab
            self.errors.append(f"reload failed: {type(exc).__name__}: {exc}"[:300])
            return None

    def _run(self) -> None:
        from playwright.sync_api import sync_playwright

        from pipelines.dashboard.browser import launch

        try:
            with sync_playwright() as p:
                browser = launch(p)
                context = browser.new_context(viewport={"width": 1500, "height": 1000})
                page = self._open(context)
                opened = time.monotonic()
                seen: tuple[int, float] | None = None
                while not self.stop.wait(self.every_s):
                    if page is None or time.monotonic() - opened > self.reload_s:
                        page, opened, seen = self._reload(context, page), time.monotonic(), None
                        if page is None:
                            continue
                    try:
                        el = page.locator(STAMP).first
                        stamp = (int(el.get_attribute("data-redraw") or 0),
                                 float(el.get_attribute("data-read-ms") or 0))  # fmt: skip
                        health = float(el.get_attribute("data-health-ms") or 0)
                    except Exception as exc:  # noqa: BLE001 - a redraw replaced it: next time
                        self.errors.append(f"{type(exc).__name__}: {exc}"[:200])
                        continue
                    if stamp != seen and stamp[1] > 0:
                        seen = stamp
                        self.refreshes.append((time.time(), stamp[0], stamp[1], health))
                browser.close()
        except Exception as exc:  # noqa: BLE001 - reported; the soak goes on without the page
            self.errors.append(f"page stopped: {type(exc).__name__}: {exc}"[:300])

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=60)


# ------------------------------------------------------------------------------------ latency
@dataclass
class Sampled(Tracker):
    """The latency bench's tracker keeping one event in :attr:`every` (a hash of its id, so
    the sample is spread over the whole replay)."""

    every: int = 20

    def _add(self, msg: dict[str, Any], sent_at: float, now: float) -> None:
        if zlib.crc32(msg["event_id"].encode()) % self.every == 0:
            super()._add(msg, sent_at, now)


# ------------------------------------------------------------------------------------ oracle
def board_flights(db: Any) -> list[dict]:
    """The flights of every board bucket as the page reads it: the lake path's document or
    the hot path's, whichever knows more (``readmodels.resolve``), each with its bucket's
    date. With a serving horizon (``serving.board_hours``: 48 h in env local) a lake refresh
    of dates spanning more than that leaves the older dates' buckets to the hot path's
    documents, which housekeeping keeps while the lake's knows less (the 30-day soak at 720x:
    20,597 of 26,076 flights in the lake's buckets, all 26,076 on the page)."""
    lake = {d["_id"]: d for d in db[RM.BOARD].find({})}
    hot = {d["_id"]: RM.hot_view(RM.BOARD, d) for d in db[RM.BOARD_HOT].find({})}
    shown = (RM.resolve(lake.get(i), hot.get(i)) for i in lake.keys() | hot.keys())
    return [{"date": b["date"], **f} for b in shown if b for f in b["flights"]]


def oracle(db: Any, start: datetime, end: datetime) -> dict[str, Any]:
    """Every KPI family served (hourly rows of ``kpi_daily``, carriers, weather, routes, the
    flights of the board buckets as the page shows them, counted per date, and the days)
    against the independent computation of ``tests/e2e/test_processing.py`` for the window
    ``[start, end)``: per family the rows expected, served and differing; ``equal`` when none
    differs."""
    from tests.e2e.test_processing import expected_flights, expected_measures, served
    from tests.e2e.test_processing import rows as served_rows

    flights = expected_flights(start, end)
    hourly = flights.rename(columns={"sched_hour": "hour_utc"})
    families = {
        "hours": (lambda: served_rows(db, "kpi_daily", "hours"), ["origin", "hour_utc"], hourly),
        "carriers": (lambda: served_rows(db, "kpi_daily", "carriers", ("date",)),
                     ["carrier", "origin", "date"], flights),
        "weather": (lambda: served_rows(db, "kpi_daily", "weather", ("date",)),
                    ["origin", "date", "visib_band", "precip", "wind_band"],
                    flights[flights["visib_band"].notna()]),
        "routes": (lambda: served_rows(db, "kpi_route_monthly", "routes", ("month",)),
                   ["origin", "dest", "month"], flights),
    }  # fmt: skip
    out: dict[str, Any] = {}
    for name, (read, keys, frame) in families.items():
        want = expected_measures(frame, keys)
        items = read()
        if not items:
            out[name] = {"expected": len(want), "served": 0, "differing": len(want)}
            continue
        got = served(items, keys)
        both = want.join(got, how="outer", lsuffix="_want", rsuffix="_got")
        differ = pd.Series(False, index=both.index)
        for col in want.columns:
            differ |= both[f"{col}_want"].ne(both[f"{col}_got"])
        out[name] = {"expected": len(want), "served": len(got), "differing": int(differ.sum())}
    days = {d["_id"] for d in db.kpi_daily.find({}, {"_id": 1})}
    shown = pd.Series([f["date"] for f in board_flights(db)], dtype="object").value_counts()
    per_date = flights["date"].value_counts().subtract(shown, fill_value=0).abs()
    out["flights"] = {"expected": len(flights), "served": int(shown.sum()),
                      "differing": int(per_date.sum())}  # fmt: skip
    out["days"] = {"expected": len(set(flights["date"])), "served": len(days),
                   "differing": len(days ^ set(flights["date"]))}  # fmt: skip
    out["equal"] = all(v["differing"] == 0 for v in out.values() if isinstance(v, dict))
    return out
