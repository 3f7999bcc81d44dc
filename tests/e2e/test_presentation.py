"""The presentation deck (``make slides``) built for real on the ``ci`` env's small window.

``deck`` builds it once with :func:`pipelines.presentation.build.build` against an isolated
database of the running ``ci`` stack (own topics, folders and database, dropped afterwards):
the database is empty, so the build loads :data:`WINDOW` (one day) through the real pipeline
(replay -> Kafka -> Spark -> Delta -> MongoDB), screenshots the dashboard served by Voila,
executes the notebook, exports the slides and prints the PDF. The checks below then open the
HTML themselves in Debian's Chromium with the network blocked.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from pipelines.clients import kafka_io, mongo
from pipelines.core.config import Settings
from pipelines.dashboard.browser import CHROMIUM, launch
from pipelines.presentation import blocks, build, excerpts, facts, render
from pipelines.presentation.sections import SECTIONS

# one day keeps the load (replay + three Spark jobs) short; `make slides` loads two
WINDOW = ("2013-01-01T00:00:00+00:00", "2013-01-02T00:00:00+00:00")


@pytest.fixture(scope="module")
def deck(stack: Settings, tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing for the deck's test: run `sudo make system-deps`")
    tag = uuid.uuid4().hex[:8]
    folder = tmp_path_factory.mktemp("slides")
    settings = stack.isolated(tag, folder, database=f"tarmac_slides_{tag}")
    try:
        result = build.build(settings, folder / "deck", WINDOW)
        yield settings, result
    finally:
        mongo.database(settings).client.drop_database(settings.mongo.database)
        kafka_io.delete_topics(settings, [t.name for t in settings.kafka.topics.values()])


def _local(url: str) -> bool:
    return url.startswith(("file:", "data:", "blob:", "about:")) or bool(
        re.match(r"^(https?|wss?)://(localhost|127\.0\.0\.1)([:/]|$)", url)
    )


@pytest.mark.integration
def test_deck_opens_offline_every_slide_and_image_loads_one_page_a_slide(deck) -> None:
    settings, result = deck
    assert result.html.exists() and result.pdf.exists()
    assert result.loaded_window, "the isolated database was empty: the window must be loaded"
    from playwright.sync_api import sync_playwright

    failed, blocked, console, errors = [], [], [], []
    with sync_playwright() as p:
        b = launch(p)
        page = b.new_page(viewport={"width": 1280, "height": 720})

        def route(r) -> None:
            if _local(r.request.url):
                r.continue_()
            else:
                blocked.append(r.request.url)
                r.abort()

        page.route("**/*", route)
        page.on("requestfailed", lambda r: failed.append(r.url))
        page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(result.html.as_uri(), wait_until="load")
        page.wait_for_function("window.Reveal && Reveal.isReady()", timeout=30_000)
        slides = page.evaluate("Reveal.getTotalSlides()")
        shown = page.evaluate("""() => Reveal.getSlides().map(s => {
            const i = Reveal.getIndices(s); Reveal.slide(i.h, i.v);
            const c = Reveal.getCurrentSlide();
            return [c.querySelector('h2') ? c.querySelector('h2').innerText.trim() : '',
                    c.innerText.trim().length, !!c.querySelector('aside.notes')]; })""")
        # reveal.js loads a slide's images when the slide comes near: wait until every one has
        # finished (loaded or broken) before judging them
        page.wait_for_function("Array.from(document.images).every(i => i.complete)", timeout=60_000)
        images = page.evaluate(
            "Array.from(document.images).map(i => [i.getAttribute('src'), i.complete && "
            "i.naturalWidth > 0])"
        )
        b.close()
    assert (failed, blocked, console, errors) == ([], [], [], [])
    assert images and all(ok for _, ok in images), images
    # the diagram, the delay chart and the two dashboard screenshots always; a benchmark's chart
    # only when it has been run (on a fresh clone its slide names the command instead)
    expected = {"img/pipeline.png", "img/delay_by_hour.png", "img/dashboard.png",
                "img/dashboard_board.png"}  # fmt: skip
    ran = {name for name, b in facts.benchmarks().items() if b["ran"]}
    expected |= {f"img/{name}.png" for name in ("backfill", "latency") if name in ran}
    assert expected <= {src for src, _ in images}, images
    assert all(length > 0 for _, length, _ in shown), "an empty slide"
    assert all(notes for *_, notes in shown), "a slide without speaker notes"
    assert slides == len(shown) == render.pdf_pages(result.pdf) == result.pages


@pytest.mark.integration
def test_deck_has_every_section_a_live_figure_and_no_url_off_localhost(deck) -> None:
    settings, result = deck
    html = result.html.read_text(encoding="utf-8")
    titles = [re.sub(r"<[^>]+>|¶", "", t).strip() for t in re.findall(r"<h2[^>]*>(.*?)</h2>", html)]
    positions = []
    for section in SECTIONS:
        found = [i for i, t in enumerate(titles) if t.startswith(section)]
        assert found, f"section {section!r} missing from {titles}"
        positions.append(found[0])
    assert positions == sorted(positions), "sections out of order"
    # the flights figure equals the sum over kpi_daily, read here straight from MongoDB
    served = sum(d["flights"] for d in mongo.database(settings).kpi_daily.find({}, {"flights": 1}))
    value = re.search(r'data-figure="flights" data-value="(\d+)"', html)
    assert value and int(value.group(1)) == served > 0
    assert blocks.num(served) in html
    offsite = [
        u
        for u in re.findall(r"https?://[^\s\"'<>()]+", html)
        if not re.match(r"https?://(localhost|127\.0\.0\.1)([:/]|$)", u)
    ]
    assert offsite == []
    assert "cdn" not in html.lower() and "unpkg" not in html.lower()
    for name in (
        "reveal.js/dist/reveal.js",
        "reveal.js/dist/theme/white.css",
        "reveal.js/plugin/notes/notes.js",
    ):
        assert (result.html.parent / name).exists(), name


def test_a_benchmark_not_run_is_named_with_its_command(tmp_path: Path) -> None:
    bench = facts.benchmarks(tmp_path)
    assert bench and not any(b["ran"] for b in bench.values())
    notice = blocks.missing(bench["latency"]["what"], bench["latency"]["command"])
    assert "Pas encore mesuré" in notice and "python bench/latency.py" in notice


def test_an_excerpt_is_found_after_its_module_moved() -> None:
    moved = excerpts.excerpt("pipelines.somewhere_else.lake.Lake.append")
    assert moved.found_by == "ast" and moved.file.endswith("lake/tables.py")
    assert moved.code.startswith("def append(")
    assert excerpts.excerpt("pipelines.lake.tables.Lake.append").found_by == "import"
    nested = excerpts.excerpt("pipelines.moved.LandingZone.claim", 8)
    assert nested.code.startswith("def claim(") and len(nested.code.splitlines()) == 8
    with pytest.raises(excerpts.SymbolNotFound):
        excerpts.excerpt("pipelines.lake.tables.no_such_function_anywhere")
