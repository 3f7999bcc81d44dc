"""Needs attention: the few things the duty manager should act on now, red first, at most
eight, each saying what to do (hover: the action). The items are the alert rules'
(``pipelines/serving/alerts/rules.py``), applied to the documents the page holds, with the
thresholds of ``alerts.rules`` in the parameters: the same rules and documents the ``alerts``
job evaluates every minute, so an item here is an alert there (same key: ``data-alert``).
The airport and airline filters apply (an item of an airport or airline outside them is not
shown). "Nothing needs action right now." otherwise.

Reads nothing itself: it is drawn after the other panels, from the page's snapshot (the
``pipeline_state`` and ``pipeline_health`` documents, the live board, the profile, the clock
day's airlines).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import ipywidgets as W
import pandas as pd

from pipelines.core.config import AlertRuleSettings
from pipelines.serving.alerts import rules as R

from .. import health, kpi_frames
from .. import widgets as H
from ..state import State
from .base import Page, Panel

SHOWN = 8


class AttentionPanel(Panel):
    name = "Attention"

    def __init__(self, page: Page) -> None:
        super().__init__(page)
        self.html = self.target = W.HTML()

    def draw(self, scope: kpi_frames.Scope | None = None) -> None:
        settings = getattr(self.page, "settings", None)
        thresholds = settings.alerts.rules if settings is not None else None
        items = attention_items(self.page.state, self.page.now(), scope, thresholds)
        if not items:
            self.html.value = H.banner("Nothing needs action right now.", "info")
            return
        self.html.value = (
            '<div class="tm-card" data-panel="attention"><div class="tm-card-title">'
            f'Needs attention</div><ul class="tm-attn">{"".join(items[:SHOWN])}</ul></div>'
        )

    def clear(self) -> None:
        self.html.value = ""


Rows = Callable[[pd.DataFrame], pd.DataFrame]  # the rows of a frame the rules read


class _Records:
    """``frame.to_dict("records")`` of the last frame seen under each name (and ``extra``):
    the page replaces its frames (a read, a snapshot), it does not change one in place, so a
    filter change converts none again (11 ms of the 18 ms this panel took per change, over a
    synthetic year)."""

    def __init__(self) -> None:
        self._held: dict[str, tuple[pd.DataFrame, Any, list[dict]]] = {}

    def __call__(self, name: str, frame: pd.DataFrame, extra: Any = None,
                 rows: Rows | None = None) -> list[dict]:  # fmt: skip
        held = self._held.get(name)
        if held is None or held[0] is not frame or held[1] != extra:
            shown = rows(frame) if rows is not None and len(frame) else frame
            held = (frame, extra, shown.to_dict("records") if len(shown) else [])
            self._held[name] = held
        return held[2]


_records = _Records()


def inputs_of(state: State, now: datetime) -> R.Inputs:
    """The rules' documents as the page holds them (its snapshot; the board as read, whatever
    the filters)."""
    snap = state.snap
    if snap is None:
        return R.Inputs(now=now)
    profile, day = snap.kpis.profile, snap.clock_day
    board = snap.board
    return R.Inputs(
        now=now,
        states=snap.states,
        health=snap.jobs,
        flights=_records("board", board) if board is not None else (),
        weekday_hour=_records("weekday_hour", profile.weekday_hour),
        days=_records("days", profile.days),
        carriers=_records(
            "carriers",
            snap.kpis.carrier_live,
            day,
            None if day is None else lambda f: f[f["date"] == day],
        ),  # fmt: skip
    )


def candidates(
    state: State,
    now: datetime,
    scope: kpi_frames.Scope | None = None,
    thresholds: AlertRuleSettings | None = None,
) -> list[R.Candidate]:
    """What the alert rules find in the page's documents, in the filters' airports and
    airlines, red first."""
    limits = thresholds or AlertRuleSettings()
    found = R.evaluate(inputs_of(state, now), limits, health.DEFAULT_FRESHNESS)
    if scope is None:
        return found
    return [
        c
        for c in found
        if not (scope.airports and c.facts.get("origin") not in (None, *scope.airports))
        and not (scope.carriers and c.facts.get("carrier") not in (None, *scope.carriers))
    ]


def item(c: R.Candidate) -> str:
    """One ``<li>``: the message, the action on hover, the alert's key."""
    return (
        f'<li style="border-left-color:{H.LEVEL_COLORS.get(c.severity, H.NEUTRAL)}" '
        f'data-alert="{H.esc(c.key)}" title="What to do: {H.esc(c.action)}">'
        f"{H.esc(c.message)}</li>"
    )


def attention_items(
    state: State,
    now: datetime,
    scope: kpi_frames.Scope | None = None,
    thresholds: AlertRuleSettings | None = None,
) -> list[str]:
    """The ``<li>`` of each item, red first (sources, stream, jobs, board, hour, airlines)."""
    return [item(c) for c in candidates(state, now, scope, thresholds)]
