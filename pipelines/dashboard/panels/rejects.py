"""Rejected records: how many input records the pipeline refused, by source (badges) and by
reason (the twelve most frequent, with when each was last seen, wall time). Tells the duty
manager whether missing flights are missing or were refused.

Reads ``snap.rejects`` (the newest ``rejects`` documents, capped) and ``snap.rejects_total``
through ``health.rejects_summary``; drawn with every new snapshot, not on filter changes.
"""

from __future__ import annotations

import ipywidgets as W
import pandas as pd

from .. import health, kpi_frames
from .. import widgets as H
from .base import Page, Panel


class RejectsPanel(Panel):
    name = "Rejects"
    key = "rejects"

    def __init__(self, page: Page) -> None:
        super().__init__(page)
        self.html = self.target = W.HTML()
        self.card(self.html, min_width="340px")

    def draw(self, scope: kpi_frames.Scope | None = None) -> None:
        snap = self.snap
        summary = health.rejects_summary(snap.rejects, snap.rejects_total)
        capped = summary.read < summary.total
        title = H.card_title(
            "Rejected records",
            f"{H.num(summary.total)} refused by the pipeline"
            + (f" (counts of the newest {H.num(summary.read)})" if capped else ""),
        )
        if summary.by_reason.empty:
            self.html.value = title + H.empty("Nothing rejected: all input passed validation.")
            return
        by_source = " ".join(
            f'<span class="tm-badge" style="background:{H.WATCH}">{H.esc(s)}: {H.num(c)}</span>'
            for s, c in zip(summary.by_source["source"], summary.by_source["count"], strict=True)
        )
        now = self.page.now()
        top = summary.by_reason.head(12)
        top = top.assign(
            count=[H.num(c) for c in top["count"]],
            last=[H.ago(now - t) + " ago" if pd.notna(t) else "—" for t in top["last_at"]],
            reason=[str(r)[:90] for r in top["reason"]],
        )
        self.html.value = (
            title
            + f"<div>{by_source}</div>"
            + '<div class="tm-scroll" style="max-height:300px;margin-top:6px">'
            + H.table(
                top,
                [
                    ("source", "Source", ""),
                    ("reason", "Reason", "wrap"),
                    ("count", "Count", "num"),
                    ("last", "Last (wall)", ""),
                ],
                attrs='data-table="rejects"',
            )
            + "</div>"
        )
