"""From notebook to deck: execute ``notebooks/90_presentation.ipynb``, export it with
nbconvert's reveal.js exporter and the offline template ``templates/tarmac``, print it to PDF
with Debian's Chromium, and check the result opens with the network blocked.

- :func:`execute` runs every cell in a fresh ``python3`` kernel (nbclient's
  ``ExecutePreprocessor``), with the build's environment (env, parameters, output folder);
- :func:`export` renders the slides, code inputs hidden (only outputs show), every CDN URL of
  nbconvert's reveal exporter overridden; :func:`offsite_urls` lists any URL left pointing
  off localhost (the build refuses such a deck);
- :func:`print_pdf` opens ``tarmac.slides.html?print-pdf`` from disk and prints one slide per
  page (``pdfMaxPagesPerSlide: 1``); :func:`pdf_pages` counts the pages;
- :func:`check_offline` opens the deck with every non-file, non-localhost request aborted and
  reports failed requests, console errors, broken images, slides taller than a slide and the
  slide count.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
from nbconvert import SlidesExporter
from nbconvert.preprocessors import ExecutePreprocessor

from pipelines.core import config
from pipelines.dashboard import browser

TEMPLATES = Path(__file__).resolve().parent / "templates"
NOTEBOOK = config.REPO_ROOT / "notebooks" / "90_presentation.ipynb"
HTML_NAME = "tarmac.slides.html"
PDF_NAME = "tarmac.pdf"
_URL = re.compile(r"""(?:https?:)?//[^\s"'<>()]+""")
_LOCAL = re.compile(r"^(?:https?:)?//(?:localhost|127\.0\.0\.1)(?:[:/]|$)")


@contextlib.contextmanager
def _environ(extra: dict[str, str]) -> Iterator[None]:
    """``os.environ`` with ``extra`` for the duration (the kernel inherits it)."""
    saved = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def execute(notebook: Path, env: dict[str, str], timeout_s: int = 600) -> Any:
    """The executed notebook (a ``NotebookNode``); a failing cell raises nbclient's
    ``CellExecutionError`` with the cell and its traceback."""
    nb = nbformat.read(notebook, as_version=4)
    pre = ExecutePreprocessor(timeout=timeout_s, kernel_name="python3", startup_timeout=120)
    with _environ(env):
        pre.preprocess(nb, {"metadata": {"path": str(config.REPO_ROOT)}})
    return nb


def export(nb: Any, out_dir: Path) -> Path:
    """Write ``<out_dir>/tarmac.slides.html`` from the executed notebook; return its path."""
    exporter = SlidesExporter(
        template_name="tarmac",
        extra_template_basedirs=[str(TEMPLATES)],
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        # every URL the stock reveal exporter would load from a CDN, made local or empty
        reveal_url_prefix="reveal.js",
        require_js_url="",
        jquery_url="",
        font_awesome_url="",
        mathjax_url="",
        mermaid_js_url="",
        jupyter_widgets_base_url="",
        widget_renderer_url="",
    )
    css = (TEMPLATES / "tarmac" / "static" / "tarmac.css").read_text()
    body, _ = exporter.from_notebook_node(nb, resources={"tarmac_css": css})
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / HTML_NAME
    path.write_text(body, encoding="utf-8")
    return path


def offsite_urls(html: str) -> list[str]:
    """Every ``http(s)://`` or protocol-relative URL in ``html`` not on localhost."""
    return sorted({u for u in _URL.findall(html) if not _LOCAL.match(u)})


def _is_local(url: str) -> bool:
    return url.startswith(("file:", "data:", "blob:", "about:")) or bool(
        re.match(r"^(?:https?|wss?)://(?:localhost|127\.0\.0\.1)(?:[:/]|$)", url)
    )


def check_offline(html: Path, playwright: Any) -> dict[str, Any]:
    """Open ``html`` from disk, network blocked, visit every slide; what went wrong, if any.

    Returns ``slides`` (``Reveal.getTotalSlides()``), ``failed`` requests, ``blocked`` ones
    (attempts to leave the machine), ``console_errors``, ``page_errors``, ``broken_images`` and
    ``overflowing`` (1-based numbers of the slides whose content is taller than the slide).
    """
    report: dict[str, Any] = {"failed": [], "blocked": [], "console_errors": [], "page_errors": []}
    b = browser.launch(playwright)
    try:
        page = b.new_page(viewport={"width": 1280, "height": 720})

        def route(r: Any) -> None:
            if _is_local(r.request.url):
                r.continue_()
            else:
                report["blocked"].append(r.request.url)
                r.abort()

        page.route("**/*", route)
        page.on("requestfailed", lambda r: report["failed"].append(r.url))
        page.on(
            "console",
            lambda m: report["console_errors"].append(m.text) if m.type == "error" else None,
        )
        page.on("pageerror", lambda e: report["page_errors"].append(str(e)))
        page.goto(html.resolve().as_uri(), wait_until="load")
        page.wait_for_function("window.Reveal && Reveal.isReady()", timeout=30_000)
        report["slides"] = page.evaluate("Reveal.getTotalSlides()")
        # visit every slide; note those whose content is taller than the slide
        report["overflowing"] = page.evaluate("""() => {
            const tall = [], h = Reveal.getConfig().height;
            Reveal.getSlides().forEach((s, n) => {
                const i = Reveal.getIndices(s); Reveal.slide(i.h, i.v);
                if (Reveal.getCurrentSlide().scrollHeight > h + 2) tall.push(n + 1);
            });
            return tall; }""")
        report["broken_images"] = page.evaluate(
            "Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))"
            ".map(i => i.getAttribute('src'))"
        )
        report["images"] = page.evaluate("document.images.length")
    finally:
        b.close()
    return report


def print_pdf(html: Path, pdf: Path, playwright: Any) -> Path:
    """Print ``html`` (``?print-pdf``: reveal.js's print layout) to ``pdf`` with Chromium."""
    b = browser.launch(playwright)
    try:
        page = b.new_page(viewport={"width": 1280, "height": 720})
        page.route("**/*", lambda r: r.continue_() if _is_local(r.request.url) else r.abort())
        page.goto(html.resolve().as_uri() + "?print-pdf", wait_until="load")
        page.wait_for_function("window.Reveal && Reveal.isReady()", timeout=30_000)
        page.wait_for_selector(".pdf-page", state="attached", timeout=30_000)
        page.wait_for_timeout(500)
        page.pdf(path=str(pdf), prefer_css_page_size=True, print_background=True)
    finally:
        b.close()
    return pdf


def pdf_pages(pdf: Path) -> int:
    """Pages of ``pdf`` (pypdf)."""
    from pypdf import PdfReader

    return len(PdfReader(str(pdf)).pages)
