"""Changes a loading page can miss, sent to it again.

How a page loads its widgets (ipywidgets 8 in Voila 0.5): the browser asks the kernel for every
widget's state over the control comm, then for each widget registers its comm and builds its
model, loading the model's JavaScript module first (bqplot's takes seconds on a loaded machine).
An update the kernel sends for a widget between its answer and that widget's model being built
reaches no handler, and the browser drops it: the page keeps the state of the answer. ipywidgets
sends a trait only when its value changes, so a later draw of the same value does not heal it.

The kernel of a page changes widgets while the page loads: a preheated kernel applies the view of
its request when it is claimed (Voila claims it as it serves the page) and reads the database
again; a kernel started for the page draws its live board from a thread. Seen in Chromium with
the suite's three workers on 2 cores: a shared link (JFK, one airline, the last 7 days) showing
the default view's tiles, 797 flights for 70, for over 30 s, and controls reset to the default.

:class:`Resync` records which synced traits of which widgets of a page the *kernel* changes from
a moment on (a claim; for a kernel started for its page, the end of its first draw, which the
page's state request comes after) and sends those traits again: when the page says its widgets
are built (the template clicks a hidden button, :attr:`Resync.ready`, once the page's DOM has
been quiet for a moment) and once more :data:`AGAIN_S` later, for a model still loading its
module then; without that word, at each of :data:`AFTER_S`. Widgets created since are sent
whole. To a page that has that state already this changes nothing.

Two things are never sent again, so a resend cannot undo what the duty manager just did:

- a trait the page itself changed (a filter picked, a button clicked: ipywidgets holds it in
  the widget's ``_property_lock`` while it applies it): the page has it, and a resend crossing
  a newer click on the wire would show the older value until the kernel's echo;
- what changed after the page said it was built: its models were there to take it. Only what
  was recorded before is sent the second time.

Measured on the tests' data: 398 widgets watched; what a claim for JFK and 7 days changed, sent
again, is 50 widgets and 47 KB. The second send used to carry every redraw the duty manager had
caused meanwhile as well: 61 widgets 3 s after a page was built, seen in a test that had picked
an airport, a period and another period by then; now it carries what the first one did.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator
from typing import Any

import ipywidgets as W

log = logging.getLogger(__name__)

AFTER_S = (2.0, 5.0, 15.0, 45.0)  # the fallback sends, seconds after start; the last one stops
AGAIN_S = 3.0  # after the page said it is built: one more send this much later, then stop


def tree(root: W.Widget) -> Iterator[W.Widget]:
    """Every open widget reachable from ``root`` through synced traits (children, a figure's
    marks, axes and scales, layouts and styles), each once."""
    seen: set[int] = set()
    stack: list[Any] = [root]
    while stack:
        widget = stack.pop()
        if not isinstance(widget, W.Widget) or id(widget) in seen or widget.comm is None:
            continue
        seen.add(id(widget))
        yield widget
        for key in widget.keys:
            stack.extend(_widgets_in(getattr(widget, key, None)))


def _widgets_in(value: Any) -> Iterable[Any]:
    if isinstance(value, W.Widget):
        return (value,)
    if isinstance(value, list | tuple):
        return (v for v in value if isinstance(v, W.Widget))
    if isinstance(value, dict):
        return (v for v in value.values() if isinstance(v, W.Widget))
    return ()


class Resync:
    """The traits of ``root``'s widgets changed since :meth:`start`, sent again on
    :meth:`send` (see the module's docstring)."""

    def __init__(self, root: W.Widget) -> None:
        self.root = root
        self.ready = W.Button(layout=W.Layout(display="none"))  # the template clicks it
        self.ready.add_class("tm-ready")
        self.ready.on_click(lambda _: self._built())
        self._watched: dict[int, tuple[W.Widget, list[str]]] = {}
        self._changed: dict[int, set[str]] = {}
        self._built_with: set[int] | None = None  # once the page is built: its widgets then
        self._timers: list[asyncio.TimerHandle] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def active(self) -> bool:
        return bool(self._watched)

    def start(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """Record changes from now on (again, if it was recording); on ``loop``, send them at
        each of :data:`AFTER_S` and stop at the last."""
        self.stop()
        for widget in tree(self.root):
            names = list(widget.keys)
            widget.observe(self._record, names=names)
            self._watched[id(widget)] = (widget, names)
        self._loop = loop
        if loop is not None:
            *early, last = AFTER_S
            self._timers = [loop.call_later(s, self.send, f"{s:g} s after") for s in early]
            self._timers.append(loop.call_later(last, self._last))

    def send(self, why: str = "") -> int:
        """Send every recorded trait again, and every widget of the page created since
        :meth:`start` whole; the number of widgets sent."""
        if not self.active:
            return 0
        sent = 0
        for widget in tree(self.root):
            if id(widget) not in self._watched:
                if self._built_with is not None and id(widget) not in self._built_with:
                    continue  # created on a built page: its model took its state
                widget.send_state()
            elif keys := self._changed.get(id(widget)):
                widget.send_state(key=sorted(keys))
            else:
                continue
            sent += 1
        log.info("resync (%s): %d widget(s) sent again", why, sent)
        return sent

    def stop(self) -> None:
        """Stop recording (and the fallback sends)."""
        for timer in self._timers:
            timer.cancel()
        for widget, names in self._watched.values():
            widget.unobserve(self._record, names=names)
        self._timers, self._watched, self._changed = [], {}, {}
        self._built_with = None

    def _record(self, change: dict[str, Any]) -> None:
        owner, name = change["owner"], change["name"]
        if name in owner._property_lock:  # noqa: SLF001 - the page sent it: the page has it
            self._changed.get(id(owner), set()).discard(name)
        elif self._built_with is None:  # after the page is built its models take changes
            self._changed.setdefault(id(owner), set()).add(name)

    def _built(self) -> None:
        """The page says its widgets are built: send now, once more :data:`AGAIN_S` later (a
        model still loading its module when the page drew the button) what was recorded
        until now, then stop."""
        sent = self.send("the page is built")
        self._built_with = {id(widget) for widget in tree(self.root)}
        self.ready.tooltip = f"sent again: {sent} widget(s)"  # its title: the page can tell
        if self.active and self._loop is not None:
            for timer in self._timers:
                timer.cancel()
            self._timers = [self._loop.call_later(AGAIN_S, self._last)]

    def _last(self) -> None:
        self.send("the last")
        self.stop()
