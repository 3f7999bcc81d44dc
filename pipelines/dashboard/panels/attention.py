"""Needs attention: the few things the duty manager should act on now, red first, at most
eight: a data source late or stale, a path of the stream with no recent batch while Kafka
records wait (or too many waiting), a job whose last run failed (or failures in 24 h),
flights past their time and not departed, departures of the last hour more than an hour
late, an average delay 10 min above the usual for this weekday, an airline badly slipping.
"Nothing needs action right now." otherwise.

Reads nothing itself: it is drawn after the other panels, from what they kept in the page's
state (``fresh``, ``stream``, ``health``, ``board``, ``kpis``, ``carriers``).
"""

from __future__ import annotations

import math

import ipywidgets as W
import pandas as pd

from .. import queries as Q
from .. import widgets as H
from ..state import State
from .base import Page, Panel

SHOWN = 8


class AttentionPanel(Panel):
    name = "Attention"

    def __init__(self, page: Page) -> None:
        super().__init__(page)
        self.html = self.target = W.HTML()

    def draw(self, scope: Q.Scope | None = None) -> None:
        items = attention_items(self.page.state)
        if not items:
            self.html.value = H.banner("Nothing needs action right now.", "info")
            return
        items.sort(key=lambda it: 0 if it[0] == "red" else 1)
        lis = "".join(
            f'<li style="border-left-color:{H.LEVEL_COLORS.get(lv, H.NEUTRAL)}">{text}</li>'
            for lv, text in items[:SHOWN]
        )
        self.html.value = (
            '<div class="tm-card" data-panel="attention"><div class="tm-card-title">'
            f'Needs attention</div><ul class="tm-attn">{lis}</ul></div>'
        )

    def clear(self) -> None:
        self.html.value = ""


def attention_items(state: State) -> list[tuple[str, str]]:
    """(level, HTML) of each item, in the order found (sources, stream, jobs, board, KPIs,
    airlines)."""
    items: list[tuple[str, str]] = []
    for rec in state.fresh or []:
        if rec["level"] in ("amber", "red"):
            behind = (
                f"{H.ago(rec['replay_age'])} behind the replay clock, "
                if rec["replay_age"] is not None
                else ""
            )
            items.append(
                (
                    rec["level"],
                    f"<b>{H.esc(rec['source'])}</b> is "
                    f"{H.LEVEL_WORDS[rec['level']]}: {behind}"
                    f"last updated {H.ago(rec['wall_age'])} ago",
                )
            )
    for rec in state.stream or []:
        if rec["level"] in ("amber", "red"):
            behind = "" if rec["lag"] is None else f", {H.num(rec['lag'])} records behind Kafka"
            items.append(
                (
                    rec["level"],
                    f"<b>flights_stream</b> {H.esc(rec['name'])} is "
                    f"{H.LEVEL_WORDS[rec['level']]}: last batch {H.ago(rec['age'])} ago{behind}",
                )
            )
    for rec in state.health or []:
        if rec["level"] == "red":
            items.append(
                (
                    "red",
                    f"<b>{H.esc(rec['job'])}</b>: last run "
                    f"{H.esc(rec['status'])} — {H.esc(rec.get('error') or '')}",
                )
            )
        elif rec["failures_24h"]:
            items.append(
                (
                    "amber",
                    f"<b>{H.esc(rec['job'])}</b>: "
                    f"{rec['failures_24h']} failed run(s) in the last 24 h",
                )
            )
    board, snap = state.board, state.snap
    if board is not None and len(board) and snap is not None and snap.clock is not None:
        clock = pd.Timestamp(snap.clock)
        waiting = board[(board["delay_kind"] == "late, not departed") & (board["delay"] > 15)]
        if len(waiting):
            items.append(
                (
                    "red" if (waiting["delay"] > 60).any() else "amber",
                    f"<b>{len(waiting)}</b> flight(s) past departure time and not "
                    f"departed yet (up to {waiting['delay'].max():.0f} min)",
                )
            )
        recent = board[(board["sched_dep_utc"] <= clock) & (board["delay"] > 60)]
        if len(recent):
            items.append(
                ("red", f"<b>{len(recent)}</b> departure(s) of the last hour more than 60 min late")
            )
    kpis = state.kpis
    if kpis is not None and kpis.baseline is not None:
        v, b = kpis.value["avg_dep_delay"], kpis.baseline["avg_dep_delay"]
        if math.isfinite(v) and math.isfinite(b) and v - b > 10:
            items.append(
                (
                    "amber",
                    f"average departure delay {v:.0f} min, "
                    f"{v - b:.0f} min above the average {kpis.baseline_label}",
                )
            )
    carriers = state.carriers
    if carriers is not None and len(carriers):
        bad = carriers[(carriers["departed"] >= 10) & (carriers["avg_dep_delay"] >= 30)]
        for rec in bad.sort_values("avg_dep_delay", ascending=False).head(2).to_dict("records"):
            items.append(
                (
                    "amber",
                    f"<b>{H.esc(rec['carrier'])}</b> "
                    f"{H.esc(rec['carrier_name'])}: {rec['avg_dep_delay']:.0f} min "
                    f"average delay, {rec['on_time_pct']:.0f} % on time",
                )
            )
    return items
