"""The latency bench's browser (``bench/latency.py``): when each event is visible on the page.

Voila (``pipelines.stack.voila``) serves the dashboard on the bench's database; Debian's headless
Chromium (Playwright, ``pipelines.dashboard.browser.launch``) opens it, waits for the live board
and installs a ``MutationObserver`` on the board panel. On every change of its DOM the observer
scans the board's rows (``panels/board.py``: cells ``origin``, ``flight_no``, ``sched_local``,
``status``) and records ``performance.timeOrigin + performance.now()`` (epoch ms, the machine's
clock, as the events' send times) when a flight's row first appears or its status text changes. The
watcher thread (Playwright's sync API stays in the thread that started it) drains the records
every second. A second observer notes when the airports panel's text changes: the day's
figures, drawn from the same read as the board (:func:`match_day`).

:func:`match` pairs them with the events: an event (status scheduled -> departed ->
arrived / cancelled) is visible when its flight's row first shows a status of the same rank or
higher, at or after it was sent. The page shows only flights scheduled within an hour
either side of the replay clock (``dashboard.live.BOARD_BEFORE`` / ``BOARD_AFTER``), so most
"scheduled" events (2 h ahead) and late arrivals never appear: :func:`candidates` names the
events the page can show (scheduled within that window of the clock the page reads after they
reached their board document).
"""

from __future__ import annotations

import bisect
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from pipelines.core.config import REPO_ROOT
from pipelines.core.domain import STATUS_RANK
from pipelines.dashboard.live import BOARD_AFTER, BOARD_BEFORE, LIVE_S
from pipelines.stack import ports, voila

BOARD_TABLE = '.tm-panel-board table[data-table="board"]'
OBSERVER = """() => {
  if (window.__tmWatch) return window.__tmWatch.rows();
  const panel = document.querySelector('.tm-panel-board');
  const seen = new Map();
  const out = [];
  const text = (tr, c) => { const td = tr.querySelector('td.' + c);
                            return td ? td.textContent.trim() : ''; };
  const scan = () => {
    const t = performance.timeOrigin + performance.now();
    for (const tr of panel.querySelectorAll('table[data-table="board"] tbody tr')) {
      const key = text(tr, 'origin') + '|' + text(tr, 'flight_no') + '|' + text(tr, 'sched_local');
      const status = text(tr, 'status');
      if (seen.get(key) !== status) { seen.set(key, status); out.push([key, status, t]); }
    }
  };
  new MutationObserver(scan).observe(panel,
    {childList: true, subtree: true, characterData: true});
  scan();
  // the day's figures: the airports panel (drawn with the airlines and the weather)
  const day = document.querySelector('.tm-panel-airports');
  const draws = [];
  let shown = day ? day.textContent : '';
  if (day) new MutationObserver(() => {
    const now = day.textContent;
    if (now !== shown) { shown = now; draws.push(performance.timeOrigin + performance.now()); }
  }).observe(day, {childList: true, subtree: true, characterData: true});
  window.__tmWatch = {take: () => out.splice(0, out.length), rows: () => seen.size,
                      days: () => draws.splice(0, draws.length)};
  return seen.size;
}"""


class PageWatch:
    """Voila + Chromium + the observer, in a thread of their own; :attr:`sightings` holds
    (label, status, epoch seconds) as the page showed them."""

    def __init__(self, env: str, database: str, log: Path, timeout_s: float = 300.0) -> None:
        self.env, self.database, self.log, self.timeout_s = env, database, log, timeout_s
        self.sightings: list[tuple[str, str, float]] = []
        self.day_draws: list[float] = []  # when the airports panel's figures changed (epoch s)
        self.ready = threading.Event()  # the observer is installed (or the watcher failed)
        self.stop = threading.Event()
        self.error: str | None = None
        self.load_s: float | None = None  # navigation -> board table drawn
        self.rows_at_start = 0
        self.voila: subprocess.Popen | None = None
        self.port = ports.free_port()
        self.thread = threading.Thread(target=self._run, name="bench-page", daemon=True)

    def start_server(self) -> None:
        """Start Voila now (no kernel yet: one starts when the page is opened)."""
        env = voila.environment(self.env, MONGO_DATABASE=self.database)
        with self.log.open("wb") as out:
            self.voila = subprocess.Popen(
                voila.command(self.port), cwd=REPO_ROOT, env=env, stdout=out, stderr=out
            )

    def open(self) -> None:
        """Open the page and install the observer, in the watcher thread."""
        self.thread.start()

    def _run(self) -> None:
        from playwright.sync_api import sync_playwright

        from pipelines.dashboard.browser import launch

        try:
            assert self.voila is not None, "start_server() first"
            url = voila.wait_ready(self.voila, self.port, self.log)
            with sync_playwright() as p:
                browser = launch(p)
                page = browser.new_context(viewport={"width": 1500, "height": 1000}).new_page()
                t0 = time.monotonic()
                page.goto(url, wait_until="domcontentloaded", timeout=int(self.timeout_s * 1000))
                page.wait_for_selector(BOARD_TABLE, timeout=int(self.timeout_s * 1000))
                self.load_s = time.monotonic() - t0
                self.rows_at_start = page.evaluate(OBSERVER)
                self.ready.set()
                while not self.stop.wait(1.0):
                    self._take(page)
                self._take(page)
                browser.close()
        except Exception as exc:  # reported in the result; the other stages go on
            self.error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        finally:
            self.ready.set()

    def _take(self, page: Any) -> None:
        for key, status, t in page.evaluate("() => window.__tmWatch.take()"):
            self.sightings.append((key, status, t / 1000.0))
        self.day_draws += [t / 1000.0 for t in page.evaluate("() => window.__tmWatch.days()")]

    def close(self) -> None:
        """Drain the last records, close the browser, stop Voila."""
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(timeout=30)
        if self.voila is not None and self.voila.poll() is None:
            self.voila.terminate()
            try:
                self.voila.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.voila.kill()
                self.voila.wait()


def candidates(events: Iterable[Any], clock_at: Callable[[float], Any]) -> list[Any]:
    """The events the page can show: their flight is scheduled within the board's window
    around the replay clock the page reads next after the event reached its board document
    (``clock_at(wall)``: the clock read at ``wall``; the batch that wrote the document moves
    the clock as it ends, the page reads it every :data:`LIVE_S` seconds)."""
    out = []
    for e in events:
        if "board" not in e.at:
            continue
        clock = clock_at(e.at["board"] + LIVE_S)
        if clock is not None and clock - BOARD_BEFORE <= e.sched_dep <= clock + BOARD_AFTER:
            out.append(e)
    return out


def match(events: Iterable[Any], sightings: list[tuple[str, str, float]]) -> dict[str, int]:
    """Set ``page_at`` of each event the page showed: the first sighting of its flight's row
    with a status of its rank or higher, at or after it was sent. Returns counts."""
    by_label: dict[str, list[tuple[float, int]]] = defaultdict(list)
    unknown = 0
    for label, status, t in sightings:
        rank = STATUS_RANK.get(status)
        if rank is None:
            unknown += 1
            continue
        by_label[label].append((t, rank))
    early = 0
    for e in events:
        shown = sorted(by_label.get(e.label, ()))
        for t, rank in shown:
            if rank >= e.rank:
                if t >= e.sent_at:
                    e.page_at = t
                else:
                    early += 1  # shown before it was sent: another flight with this label?
                break
    return {"sightings": len(sightings), "labels": len(by_label), "unknown_status": unknown,
            "shown_before_sent": early}  # fmt: skip


def match_day(events: Iterable[Any], draws: list[float]) -> int:
    """Set ``day_page_at`` of each event the page showed (``page_at``): the first change of
    the day's figures on the page (the airports panel, drawn with the airlines and the weather
    from the same read as the board, at most every ``follow.DAY_DRAW_S``) at or after its
    board row showed it. An upper bound: a redraw that holds the event but changes no figure
    of the panel is not seen. Returns how many were set."""
    draws = sorted(draws)
    n = 0
    for e in events:
        if getattr(e, "page_at", None) is None:
            continue
        at = bisect.bisect_left(draws, e.page_at)
        if at < len(draws):
            e.day_page_at, n = draws[at], n + 1
    return n
