"""``dashboard.resync``: what changed since a start is sent again, once per send, as the kernel
has it; widgets created since are sent whole; nothing once stopped. Widgets without a frontend:
what they send is taken at ``Widget._send``."""

from __future__ import annotations

import asyncio
import time

import ipywidgets as W
import pytest

from pipelines.dashboard import resync
from pipelines.dashboard.resync import Resync, tree


@pytest.fixture
def sent(monkeypatch) -> list[tuple[W.Widget, dict]]:
    out: list[tuple[W.Widget, dict]] = []
    monkeypatch.setattr(W.Widget, "_send", lambda w, msg, buffers=None: out.append((w, msg)))
    return out


def test_the_tree_holds_every_widget_once_through_any_synced_trait() -> None:
    a, b = W.HTML("a"), W.HTML("b")
    inner = W.HBox([a, b])
    root = W.VBox([inner, a])
    found = list(tree(root))
    assert len(found) == len({id(w) for w in found})
    for widget in (root, inner, a, b, a.layout, b.layout, root.layout, a.style):
        assert any(w is widget for w in found)
    b.close()
    assert not any(w is b for w in tree(root))  # closed: no comm, nothing to send


def test_changes_since_start_are_sent_again_as_the_kernel_has_them(sent) -> None:
    a, b = W.HTML("a"), W.IntSlider(1)
    root = W.VBox([a, b])
    page = Resync(root)
    a.value = "before"  # before the start: the page's answer holds it
    page.start(None)
    a.value = "x"
    a.value = "y"
    b.max, b.value = 50, 40
    sent.clear()
    assert page.send() == 2
    assert sorted((w.model_id, sorted(m["state"])) for w, m in sent) == sorted(
        [(a.model_id, ["value"]), (b.model_id, ["max", "value"])]
    )
    assert {w.model_id: m["state"] for w, m in sent}[a.model_id] == {"value": "y"}
    sent.clear()
    assert page.send() == 2  # again: a send is not a promise the page got it
    assert len(sent) == 2


def test_a_widget_created_since_the_start_is_sent_whole(sent) -> None:
    root = W.VBox([W.HTML("a")])
    page = Resync(root)
    page.start(None)
    new = W.HTML("new")
    root.children = (*root.children, new)
    sent.clear()
    page.send()
    states = {w.model_id: m["state"] for w, m in sent}
    assert states[root.model_id] == {"children": [f"IPY_MODEL_{c.model_id}" for c in root.children]}
    assert states[new.model_id]["value"] == "new" and "layout" in states[new.model_id]


async def _started_and_changed(page: Resync, a: W.HTML, sent: list) -> None:
    """Recording on the running loop, ``a`` changed since, what that sent forgotten."""
    page.start(asyncio.get_running_loop())
    a.value = "changed"
    sent.clear()


def test_without_word_from_the_page_each_fallback_sends_and_the_last_stops(monkeypatch) -> None:
    """Timed by when each send happened, as the next test: a sleep overshoots on a loaded
    machine (a clean-clone run saw both fallbacks fire within one 0.03 s sleep)."""
    monkeypatch.setattr(resync, "AFTER_S", (0.02, 0.05))
    a = W.HTML("a")
    page = Resync(W.VBox([a]))
    sends: list[float] = []  # when each message about ``a`` went out
    monkeypatch.setattr(W.Widget, "_send", lambda w, msg, buffers=None: (
        sends.append(time.monotonic()) if w is a else None))  # fmt: skip

    async def run() -> float:
        started = time.monotonic()
        await _started_and_changed(page, a, sends)
        await asyncio.sleep(0.3)  # past both timers
        return started

    started = asyncio.run(run())
    assert len(sends) == 2  # the first fallback, the last
    assert sends[0] - started >= 0.02 and sends[1] - started >= 0.05
    assert not page.active
    a.value = "later"  # not recorded any more
    sends.clear()
    assert page.send() == 0 and sends == []


def test_the_page_built_sends_now_once_more_later_then_stops(monkeypatch) -> None:
    """Timed by when each send happened, never by how long a sleep took: on a loaded machine a
    sleep overshoots (the suite's three workers on 2 cores made a 0.03 s sleep outlast the
    0.05 s timer), and only a lower bound holds under any load."""
    monkeypatch.setattr(resync, "AFTER_S", (0.02, 0.3))
    monkeypatch.setattr(resync, "AGAIN_S", 0.1)
    a = W.HTML("a")
    page = Resync(W.VBox([a]))
    sends: list[float] = []  # when each message about ``a`` went out
    monkeypatch.setattr(W.Widget, "_send", lambda w, msg, buffers=None: (
        sends.append(time.monotonic()) if w is a else None))  # fmt: skip

    async def run() -> tuple[float, int]:
        await _started_and_changed(page, a, sends)
        clicked = time.monotonic()
        page.ready.click()  # the template, the page's DOM quiet
        at_once = len(sends)
        await asyncio.sleep(0.6)  # past every timer: the fallbacks' (cancelled) and the again
        return clicked, at_once

    clicked, at_once = asyncio.run(run())
    assert at_once == 1  # sent now
    assert len(sends) == 2  # once more, and none of the fallbacks
    assert sends[1] - clicked >= 0.1  # the again: not before AGAIN_S
    assert not page.active
    assert page.ready.tooltip == "sent again: 1 widget(s)"  # the page can tell it was heard


def test_start_again_forgets_what_was_recorded(sent) -> None:
    a = W.HTML("a")
    page = Resync(W.VBox([a]))
    page.start(None)
    a.value = "preheat"
    page.start(None)  # the claim
    sent.clear()
    assert page.send() == 0
    page.stop()
    assert not page.active


def test_what_the_page_changed_itself_is_never_sent_back(sent) -> None:
    """A filter the duty manager picked: the page has it; sent again it could cross a newer
    click on the wire. What the kernel changes on the same widget still is."""
    a = W.SelectMultiple(options=["EWR", "JFK", "LGA"], value=["EWR", "JFK", "LGA"])
    page = Resync(W.VBox([a]))
    page.start(None)
    a.index = (0,)  # the kernel (a claim applying a link's view)
    a.set_state({"index": [1]})  # then the page (a click)
    sent.clear()
    assert page.send() == 0 and sent == []
    a.rows = 3  # the kernel again, another trait
    sent.clear()
    assert page.send() == 1
    assert [m["state"] for _, m in sent] == [{"rows": 3}]


def test_the_second_send_carries_only_what_changed_before_the_page_was_built(
    sent, monkeypatch
) -> None:
    monkeypatch.setattr(resync, "AFTER_S", (0.5, 1.0))
    monkeypatch.setattr(resync, "AGAIN_S", 0.05)
    a, b = W.HTML("a"), W.HTML("b")
    root = W.VBox([a, b])
    page = Resync(root)

    async def run() -> list[tuple[str, dict]]:
        await _started_and_changed(page, a, sent)
        page.ready.click()
        b.value = "a redraw on the built page"
        root.children = (*root.children, W.HTML("new on the built page"))
        sent.clear()
        await asyncio.sleep(0.08)
        return [(w.model_id, m["state"]) for w, m in sent]

    assert asyncio.run(run()) == [(a.model_id, {"value": "changed"})]
    assert not page.active
