"""Screenshots of the real dashboard for the deck: Voila serves ``notebooks/dashboard.ipynb``
against the env's database on a free localhost port, headless Chromium (Debian's, through
Playwright) waits until the page is drawn and captures it, then Voila is stopped.

Started exactly as ``make dashboard`` starts it (the local ``tarmac`` template from
``pipelines/dashboard/jupyter``, 127.0.0.1 only) with the build's parameters
(``TARMAC_PARAMETERS_DIR``), so the screenshots show what the duty manager would see over the
data the pipeline loaded. Requests leaving localhost are aborted and reported.

Each shot (:data:`SHOTS`) is a page opened at a URL of its own: the overview and the board
from the plain URL, a view restored from a link's query string (docs/dashboard.md, "Sharing a
view") and the wall mode at a TV's 1920 x 1080 (``?wall=1``, its first row of panels).
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from pipelines.core import config
from pipelines.dashboard import browser
from pipelines.stack import ports, voila
from pipelines.stack.services import stop_group

REPO = config.REPO_ROOT


class Shot(NamedTuple):
    query: str  # the page's query string ('' : the plain URL)
    selector: str | None  # the element captured (None: the viewport)
    viewport: tuple[int, int] = (1500, 900)


SHARED_VIEW = "?airports=JFK&period=7d&ahead=6&sort=delay&late=1"
SHOTS = {
    "dashboard.png": Shot("", None),
    "dashboard_board.png": Shot("", ".tm-panel-board"),
    "dashboard_shared.png": Shot(SHARED_VIEW, None),
    "dashboard_wall.png": Shot("?wall=1&rotate=600", None, (1920, 1080)),
}


class ScreenshotError(RuntimeError):
    """Voila did not start, or the dashboard did not render in time."""


@contextlib.contextmanager
def serve(env: dict[str, str], log: Path, timeout_s: float = 90.0) -> Iterator[str]:
    """Voila on a free 127.0.0.1 port with ``env`` added; yields its URL, stops it after."""
    port = ports.free_port()
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            voila.command(port),
            cwd=REPO,
            env=voila.environment(env.get("TARMAC_ENV", "local"), TARMAC_REFRESH_S="3600", **env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        try:
            url = voila.wait_ready(proc, port, log, timeout_s)
        except RuntimeError as exc:
            raise ScreenshotError(str(exc)) from None
        yield url
    finally:
        stop_group(proc, grace_s=15)


def _local(url: str) -> bool:
    return url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:", "about:"))


def capture(url: str, img_dir: Path, playwright: Any, timeout_ms: int = 90_000) -> dict[str, Any]:
    """Screenshots of :data:`SHOTS` from the dashboard at ``url`` into ``img_dir``.

    Returns the files written and the requests that tried to leave localhost (aborted)."""
    img_dir.mkdir(parents=True, exist_ok=True)
    outside: list[str] = []
    b = browser.launch(playwright)
    written = []
    try:
        for name, shot in SHOTS.items():
            page = b.new_page(viewport=dict(zip(("width", "height"), shot.viewport, strict=True)))
            page.route(
                "**/*",
                lambda r: (
                    r.continue_()
                    if _local(r.request.url)
                    else (outside.append(r.request.url), r.abort())
                ),
            )
            _open(page, url + shot.query, timeout_ms)
            path = img_dir / name
            if shot.selector is None:
                page.evaluate("window.scrollTo(0, 0)")
                page.screenshot(path=str(path))
            else:
                page.locator(shot.selector).first.screenshot(path=str(path))
            written.append(path)
            page.close()
    finally:
        b.close()
    return {"files": written, "outside": outside}


def _open(page: Any, url: str, timeout_ms: int) -> None:
    """Open ``url`` and wait until the page is drawn (tiles, clock, board, charts)."""
    page.goto(url, wait_until="domcontentloaded", timeout=timeout_ms)
    try:
        page.wait_for_selector('[data-kpi="flights"][data-value]', timeout=timeout_ms)
        page.wait_for_selector("[data-clock]", timeout=timeout_ms)
        page.wait_for_selector(
            ".tm-panel-board table, .tm-panel-board .tm-empty",
            state="attached",
            timeout=timeout_ms,
        )
    except Exception as exc:  # Playwright's TimeoutError: say what is missing
        raise ScreenshotError(f"the dashboard at {url} did not render: {exc}") from exc
    page.wait_for_timeout(2500)  # bqplot draws asynchronously
