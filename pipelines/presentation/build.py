"""``make slides`` (``tarmac slides --env ENV``): the deck, rebuilt from a real run.

In order, each step printed as it starts (``[slides  12.3 s] …``):

1. **preflight** — the notebook, Debian's Chromium, matplotlib, pypdf and Playwright are
   there, else :class:`SlidesError` says what to install (exit code 11);
2. **reveal.js** — fetched once into the cache with npm (:mod:`assets`), copied next to the HTML;
3. **stack** — the env's embedded Kafka + FerretDB started if they are not running (what this
   build started is stopped at the end, whatever happens);
4. **data** — when the env serves nothing yet, a small window of 2013 is loaded through the
   real pipeline (``loader.load_window``: replay → Kafka → Spark → Delta → MongoDB);
5. **screenshots** — Voila started on a free port, headless Chromium captures the dashboard,
   Voila stopped (:mod:`screens`);
6. **slides** — the notebook executed and exported (:mod:`render`); a deck with a URL off
   localhost is refused;
7. **PDF** — printed by Chromium, one slide a page; the deck is then opened with the network
   blocked, every slide visited, and the slide count compared with the PDF's page count.
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pipelines.core import config
from pipelines.core.exceptions import SlidesError
from pipelines.dashboard import browser
from pipelines.orchestration import loader
from pipelines.presentation import assets, facts, render, screens
from pipelines.stack import control
from pipelines.stack import services as services_mod

DEFAULT_WINDOW = ("2013-01-01T00:00:00+00:00", "2013-01-03T00:00:00+00:00")


@dataclass
class BuildResult:
    """What a build produced and how long it took."""

    html: Path
    pdf: Path
    slides: int
    pages: int
    seconds: float
    loaded_window: bool
    check: dict[str, Any] = field(default_factory=dict)


class _Progress:
    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def __call__(self, message: str) -> None:
        print(f"[slides {time.monotonic() - self.t0:6.1f} s] {message}", flush=True)


def preflight() -> None:
    """Everything the build needs that no step can install itself."""
    problems = []
    if not render.NOTEBOOK.exists():
        problems.append(f"{render.NOTEBOOK} is missing")
    if not Path(browser.CHROMIUM).exists():
        problems.append(f"{browser.CHROMIUM} is not installed: `make system-deps` (as root)")
    for module, pkg in (
        ("matplotlib", "matplotlib"),
        ("pypdf", "pypdf"),
        ("playwright", "playwright"),
        ("voila", "voila"),
    ):
        if importlib.util.find_spec(module) is None:
            problems.append(f"Python package {pkg} is missing: `make install`")
    if problems:
        raise SlidesError("cannot build the slides:\n  " + "\n  ".join(problems))


def _ensure_data(settings: config.Settings, window: tuple[str, str], say: _Progress) -> bool:
    if not facts.serving(settings)["empty"]:
        say(f"data: {settings.mongo.database} already serves data; nothing loaded")
        return False
    start, end = (datetime.fromisoformat(t) for t in window)
    say(
        f"data: {settings.mongo.database} is empty; loading {start:%Y-%m-%d} .. {end:%Y-%m-%d} "
        "through the pipeline (replay -> Kafka -> Spark -> Delta -> MongoDB)"
    )
    loader.load_window(settings, start, end, progress=True)
    if facts.serving(settings)["empty"]:
        raise SlidesError(f"the window was loaded but {settings.mongo.database} serves nothing")
    return True


def build(
    settings: config.Settings,
    out_dir: Path | None = None,
    window: tuple[str, str] = DEFAULT_WINDOW,
) -> BuildResult:
    """Build ``tarmac.slides.html`` and ``tarmac.pdf`` into ``out_dir`` against ``settings``."""
    from playwright.sync_api import sync_playwright

    say = _Progress()
    out = (out_dir or config.REPO_ROOT / "outputs" / "presentation").resolve()
    say(f"preflight (env {settings.env}, output {out})")
    preflight()
    say(f"reveal.js {assets.REVEAL_VERSION}: cache {assets.reveal_home()}")
    assets.install(out, assets.provision())
    started = []
    params = Path(tempfile.mkdtemp(prefix="tarmac-slides-"))
    try:
        before = {s.name for s in services_mod.services(settings) if s.pid() is not None}
        say("stack: starting what is not running")
        control.up(settings)
        started = [
            s
            for s in services_mod.services(settings)
            if s.embedded and s.name not in before and s.pid() is not None
        ]
        say(f"stack: up (started by this build: {[s.name for s in started] or 'nothing'})")
        loaded = _ensure_data(settings, window, say)
        settings.write(params)
        env = {
            "TARMAC_ENV": settings.env,
            "TARMAC_PARAMETERS_DIR": str(params),
            "MONGO_DATABASE": settings.mongo.database,
            "TARMAC_SLIDES_DIR": str(out),
        }
        for name in screens.SHOTS:
            (out / "img" / name).unlink(missing_ok=True)
        with sync_playwright() as pw:
            say("screenshots: starting Voila")
            with screens.serve(env, out / "voila.log") as url:
                say(f"screenshots: Chromium on {url}")
                shots = screens.capture(url, out / "img", pw)
            if shots["outside"]:
                raise SlidesError(f"the dashboard tried to leave localhost: {shots['outside'][:3]}")
            say("slides: executing notebooks/90_presentation.ipynb")
            try:
                nb = render.execute(render.NOTEBOOK, env)
            except Exception as exc:  # nbclient's CellExecutionError carries the traceback
                raise SlidesError(f"the presentation notebook failed:\n{exc}") from exc
            html = render.export(nb, out)
            offsite = render.offsite_urls(html.read_text(encoding="utf-8"))
            if offsite:
                raise SlidesError(f"{html} refers to URLs off localhost: {offsite[:5]}")
            say(f"PDF: printing {html.name} with Chromium")
            pdf = render.print_pdf(html, out / render.PDF_NAME, pw)
            say("check: opening the deck with the network blocked")
            check = render.check_offline(html, pw)
        pages = render.pdf_pages(pdf)
        bad = {
            k: check[k]
            for k in (
                "failed",
                "blocked",
                "console_errors",
                "page_errors",
                "broken_images",
                "overflowing",
            )
            if check[k]
        }
        if bad or pages != check["slides"]:
            raise SlidesError(
                f"deck check failed: {bad or ''} slides {check['slides']} vs PDF pages {pages}"
            )
        result = BuildResult(
            html, pdf, check["slides"], pages, time.monotonic() - say.t0, loaded, check
        )
        say(f"done: {result.slides} slides, {pages} PDF pages -> {html}, {pdf}")
        return result
    finally:
        shutil.rmtree(params, ignore_errors=True)
        for svc in reversed(started):
            say(f"stack: stopping {svc.name} (started by this build)")
            svc.stop()
