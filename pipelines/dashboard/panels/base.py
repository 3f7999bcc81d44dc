"""What every panel has: the page it belongs to (:class:`Page`: the state, the filters' scope,
the clock, the settings), a name (in its error message and in ``Dashboard.panel_timings``),
the widget a failure is shown in, and a way to draw the current scope; plus the pieces the
panels share (the card, the delay colour legend).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar, Protocol

import ipywidgets as W

from pipelines.core.config import Settings

from .. import health, kpi_frames, queries
from .. import widgets as H
from ..reading import Reader
from ..search import Ask
from ..state import State


class Page(Protocol):
    """What a panel uses of the page (``Dashboard``)."""

    settings: Settings
    freshness_rules: dict[str, health.FreshnessRule]
    state: State
    reader: Reader  # the page's reads (a panel that reads asks it, in a thread)

    def scope(self) -> kpi_frames.Scope: ...

    def drill(self, ask: Ask) -> None: ...

    def now(self) -> datetime: ...

    def guarded(self, draw: Callable[[], None]) -> None: ...


class Panel:
    """One part of the page, drawn from ``page.state.snap`` for a scope.

    ``name``: its name in messages and timings; ``target``: where "not available" is shown
    when it fails; ``box``: its card (DOM class ``tm-panel-<key>``), None for the parts that
    are not a card."""

    name: ClassVar[str]
    key: ClassVar[str] = ""
    target: W.HTML
    box: W.Box | None = None

    def __init__(self, page: Page) -> None:
        self.page = page

    @property
    def snap(self) -> queries.Snapshot:
        """The snapshot drawn (set whenever a panel is drawn)."""
        snap = self.page.state.snap
        assert snap is not None
        return snap

    def draw(self, scope: kpi_frames.Scope) -> None:
        raise NotImplementedError

    def drawn_for(self, scope: kpi_frames.Scope) -> Any:
        """What of ``scope`` the panel depends on when it does not depend on all of it: it is
        not drawn again for the same snapshot while that stays the same. None: always drawn."""
        return None

    def clear(self) -> None:
        """Shown while the database holds no KPIs yet."""

    def on_change(self, widget: W.Widget, redraw: Callable[[], None]) -> None:
        """Redraw (guarded: errors become a banner) when the panel's own ``widget`` changes."""
        widget.observe(lambda _: self.page.guarded(redraw), names="value")

    def card(self, *children: W.Widget, **layout: Any) -> W.VBox:
        """The white card of this panel, CSS classes ``tm-card`` and ``tm-panel-<key>``."""
        box = W.VBox(
            list(children), layout=W.Layout(**{"flex": "1 1 0", "min_width": "0", **layout})
        )
        box.add_class("tm-card")
        box.add_class(f"tm-panel-{self.key}")
        self.box = box
        return box


def waiting(title: W.HTML) -> None:
    """A chart panel's title while there is no data."""
    title.value = H.empty("waiting for data")


def delay_legend() -> str:
    """The colour scale of every delay chart: a swatch per 7.5 min, 15 = FAA on-time limit."""
    stops = [(c, f"{i * 7.5:g}") for i, c in enumerate(H.DELAY_PALETTE[:-1])]
    return "avg delay " + H.legend([*stops, (H.DELAY_PALETTE[-1], "45+ min")])


def gap(box: W.Box) -> W.Box:
    """ipywidgets' Layout has no ``gap``: a CSS class gives it."""
    box.add_class("tm-gap")
    return box


def hit_box(widget: W.Widget, tooltip: str, on_click: Callable[[], None]) -> W.Box:
    """``widget`` with a transparent button over the whole of it (CSS ``tm-hit``): a click
    anywhere on it calls ``on_click`` in the kernel (an HTML widget sends no clicks)."""
    button = W.Button(tooltip=tooltip, layout=W.Layout(width="auto", height="auto"))
    button.add_class("tm-hit-btn")
    button.on_click(lambda _: on_click())
    box = W.Box(
        [widget, button],
        layout=W.Layout(
            flex=widget.layout.flex or "1 1 0", min_width=widget.layout.min_width or "0"
        ),
    )
    box.add_class("tm-hit")
    return box
