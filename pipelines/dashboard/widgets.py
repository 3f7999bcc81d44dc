"""HTML pieces of the dashboard: the style sheet, KPI tiles, status pills and tables.

Plain functions returning HTML strings (rendered by ``ipywidgets.HTML``); every value coming
from the database is escaped. Colours carry one meaning everywhere: green good, amber watch,
red act, grey unknown.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from pipelines.core.domain import NEW_YORK as NY

GOOD, WATCH, ACT, NEUTRAL = "#1b7f3b", "#b26a00", "#c62828", "#5f6b76"
# Delay palette (ColorBrewer RdYlGn), evenly spread over 0 .. 45 min: every 7.5 min a stop,
# 15 min (the FAA on-time limit) is the yellow middle stop.
DELAY_PALETTE = ["#1a9850", "#91cf60", "#fee08b", "#fdae61", "#f46d43", "#d73027", "#a50026"]
DELAY_MAX = 45.0
LEVEL_COLORS = {"ok": GOOD, "amber": WATCH, "red": ACT, "missing": NEUTRAL}
LEVEL_WORDS = {"ok": "fresh", "amber": "late", "red": "stale", "missing": "no data"}

CSS = """
<style>
.tm-root, .tm-root * { box-sizing: border-box; }
.tm-root { font-family: "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  color: #1f2933; background: #eef1f4; padding: 0 0 24px 0; }
.tm-root .widget-html-content { font-family: inherit; }
.tm-gap { gap: 10px; }
.tm-header { background: #14213d; color: #fff; padding: 10px 18px; border-radius: 6px; }
.tm-header .tm-title { font-size: 20px; font-weight: 600; letter-spacing: .3px; }
.tm-header .tm-sub { font-size: 12px; color: #b8c4d6; }
.tm-clock { font-size: 26px; font-weight: 600; font-variant-numeric: tabular-nums; }
.tm-clock small { font-size: 13px; font-weight: 400; color: #b8c4d6; margin-left: 6px; }
.tm-pills { display: flex; flex-wrap: wrap; gap: 6px; margin-top: 6px; }
.tm-pill { display: inline-flex; align-items: center; gap: 6px; padding: 3px 9px;
  border-radius: 12px; font-size: 12px; background: rgba(255,255,255,.08);
  border: 1px solid rgba(255,255,255,.18); white-space: nowrap; }
.tm-dot { width: 9px; height: 9px; border-radius: 50%; display: inline-block; }
.tm-card { background: #fff; border-radius: 6px; padding: 10px 12px;
  box-shadow: 0 1px 2px rgba(16,24,40,.08); border: 1px solid #dde3e9; }
.tm-card-title { font-size: 14px; font-weight: 600; color: #14213d; margin: 0 0 2px 0; }
.tm-card-sub { font-size: 11.5px; color: #5f6b76; margin-bottom: 4px; }
.tm-tile { background: #fff; border-radius: 6px; padding: 10px 14px; border: 1px solid #dde3e9;
  border-left: 5px solid #5f6b76; box-shadow: 0 1px 2px rgba(16,24,40,.08); min-height: 86px; }
.tm-tile-label { font-size: 12px; color: #5f6b76; text-transform: uppercase; letter-spacing: .4px; }
.tm-tile-value { font-size: 30px; font-weight: 650; font-variant-numeric: tabular-nums;
  line-height: 1.15; color: #14213d; }
.tm-tile-value small { font-size: 14px; font-weight: 500; color: #5f6b76; }
.tm-tile-cmp { font-size: 12px; color: #5f6b76; }
.tm-banner { padding: 10px 14px; border-radius: 6px; font-size: 14px; }
.tm-banner-red { background: #fdecea; border: 1px solid #f5c2bd; color: #8a1c14; }
.tm-banner-amber { background: #fff4e0; border: 1px solid #f3d19b; color: #6b4100; }
.tm-banner-info { background: #e8f1fb; border: 1px solid #bcd3ee; color: #183b63; }
.tm-attn { margin: 0; padding-left: 0; list-style: none; font-size: 13px;
  display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); column-gap: 16px; }
.tm-attn li { padding: 3px 0 3px 10px; border-left: 4px solid #5f6b76; margin: 3px 0; }
table.tm-table { border-collapse: collapse; width: 100%; font-size: 12.5px;
  font-variant-numeric: tabular-nums; }
table.tm-table th { text-align: left; background: #f3f5f7; color: #3e4c59; font-weight: 600;
  padding: 5px 6px; border-bottom: 1px solid #d5dbe1; position: sticky; top: 0;
  white-space: nowrap; }
table.tm-table td { padding: 4px 6px; border-bottom: 1px solid #edf0f2; white-space: nowrap; }
table.tm-table td.wrap { white-space: normal; }
table.tm-table td.num, table.tm-table th.num { text-align: right; }
table.tm-table tr.tm-late td { background: #fff4e0; }
table.tm-table tr.tm-verylate td { background: #fdecea; }
table.tm-table tr.tm-cancelled td { background: #f1f1f1; color: #7b8794; }
table.tm-table tr.tm-cancelled td.st { color: #c62828; font-weight: 600; }
.tm-scroll { max-height: 380px; overflow-y: auto; }
.tm-badge { display: inline-block; padding: 1px 7px; border-radius: 9px; font-size: 11.5px;
  font-weight: 600; color: #fff; }
.tm-legend { font-size: 11.5px; color: #5f6b76; }
.tm-legend .sw { display: inline-block; width: 11px; height: 11px; border-radius: 2px;
  border: 1px solid rgba(0,0,0,.25);
  margin: 0 3px 0 8px; vertical-align: -1px; }
.tm-loading { color: #5f6b76; font-size: 13px; padding: 10px 0; }
.tm-empty { color: #5f6b76; font-style: italic; font-size: 13px; padding: 6px 0; }
.tm-export a { display: inline-block; padding: 4px 10px; border-radius: 4px; margin-right: 6px;
  background: #14213d; color: #fff !important; text-decoration: none; font-size: 12.5px; }
.tm-export a:hover { background: #273b6b; }
.tm-busy { font-size: 12px; color: #5f6b76; }
.tm-filters { background: #fff; border: 1px solid #dde3e9; border-radius: 6px; padding: 6px 10px; }
.tm-filters .widget-label { font-size: 12px; color: #3e4c59; }
.tm-map svg { pointer-events: none; }
.tm-wx { font-size: 12px; color: #3e4c59; }
.tm-hit { position: relative; }
.tm-hit > .tm-hit-btn { position: absolute; top: 0; left: 0; width: 100% !important;
  height: 100% !important; margin: 0; padding: 0; opacity: 0; cursor: pointer; z-index: 2; }
.tm-hit:hover .tm-tile, .tm-hit:hover .tm-route { background: #f3f7fc; }
.tm-route { display: grid; grid-template-columns: 1fr 60px 50px; gap: 6px; font-size: 12.5px;
  padding: 3px 6px; border-bottom: 1px solid #edf0f2; font-variant-numeric: tabular-nums; }
.tm-route.tm-route-head { background: #f3f5f7; font-weight: 600; color: #3e4c59; }
.tm-route .num { text-align: right; }
.tm-scope { font-size: 12px; color: #ffd88a; margin-top: 2px; }
</style>
"""

# ------------------------------------------------------------------------------ formatting


def num(value: Any, digits: int = 0, unit: str = "") -> str:
    """A number for people: thousands separators, fixed digits, '—' when unknown."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    try:
        if pd.isna(value):
            return "—"
    except (TypeError, ValueError):
        pass
    text = f"{float(value):,.{digits}f}"
    return f"{text}{unit}"


def ago(age: timedelta | None) -> str:
    """'42 s', '7 min', '3 h 05 min', '2 d 4 h' (negative ages read 'ahead')."""
    if age is None:
        return "—"
    secs = age.total_seconds()
    sign = "ahead " if secs < 0 else ""
    secs = abs(secs)
    if secs < 90:
        return f"{sign}{secs:.0f} s"
    if secs < 3600:
        return f"{sign}{secs / 60:.0f} min"
    if secs < 86400:
        h, m = divmod(int(secs // 60), 60)
        return f"{sign}{h} h {m:02d} min"
    d, h = divmod(int(secs // 3600), 24)
    return f"{sign}{d} d {h} h"


def local_time(ts: datetime | None, fmt: str = "%a %d %b %Y %H:%M") -> str:
    return ts.astimezone(NY).strftime(fmt) if ts else "—"


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def delay_color(minutes: float | None) -> str:
    if minutes is None or not math.isfinite(minutes):
        return NEUTRAL
    return ACT if minutes >= 45 else WATCH if minutes > 15 else GOOD


# --------------------------------------------------------------------------------- pieces


def pill(label: str, text: str, level: str, title: str = "") -> str:
    color = LEVEL_COLORS.get(level, NEUTRAL)
    return (
        f'<span class="tm-pill" data-level="{esc(level)}" title="{esc(title)}">'
        f'<span class="tm-dot" style="background:{color}"></span>'
        f"<b>{esc(label)}</b> {esc(text)}</span>"
    )


def banner(text: str, kind: str = "info") -> str:
    return f'<div class="tm-banner tm-banner-{kind}" data-banner="{kind}">{text}</div>'


def card_title(title: str, sub: str = "") -> str:
    sub_html = f'<div class="tm-card-sub">{sub}</div>' if sub else ""
    return f'<div class="tm-card-title">{esc(title)}</div>{sub_html}'


def empty(text: str) -> str:
    return f'<div class="tm-empty">{esc(text)}</div>'


# Tile definitions: key, label, how to format, which direction is good, neutral tolerance.
TILES: tuple[tuple[str, str], ...] = (
    ("flights", "Flights"),
    ("on_time_pct", "On-time departures"),
    ("avg_dep_delay", "Avg departure delay"),
    ("cancelled", "Cancellations"),
    ("delayed_60", "Departures > 60 min late"),
)
_BETTER = {"on_time_pct": +1, "avg_dep_delay": -1, "cancelled": -1, "delayed_60": -1}


def _fmt_tile(key: str, value: float) -> str:
    if key == "on_time_pct":
        return num(value, 1, "<small> %</small>")
    if key == "avg_dep_delay":
        return num(value, 1, "<small> min</small>")
    return num(value, 0)


def _delta(key: str, value: float, base: float) -> tuple[str, str]:
    """Text of the difference and its level (ok / amber / red / neutral)."""
    if not (math.isfinite(value) and math.isfinite(base)):
        return "", "neutral"
    diff = value - base
    if key == "on_time_pct":
        text, tol = f"{diff:+.1f} pts", 2.0
    elif key == "avg_dep_delay":
        text, tol = f"{diff:+.1f} min", 2.0
    else:
        pct = (diff / base * 100.0) if base else (0.0 if not diff else math.inf)
        text = f"{diff:+,.0f}" + (f" ({pct:+.0f} %)" if math.isfinite(pct) else "")
        tol = max(2.0, abs(base) * 0.10)
    arrow = "▲" if diff > 0 else "▼" if diff < 0 else "="
    direction = _BETTER.get(key, 0)
    if not direction or abs(diff) <= tol:
        return f"{arrow} {text}", "neutral"
    good = (diff > 0) == (direction > 0)
    severe = abs(diff) > 3 * tol
    return f"{arrow} {text}", "ok" if good else ("red" if severe else "amber")


def _tile_level(key: str, value: float) -> str:
    """Absolute reading, whatever the baseline: how the number looks to an ops room."""
    if not math.isfinite(value):
        return "neutral"
    if key == "on_time_pct":
        return "red" if value < 65 else "amber" if value < 80 else "ok"
    if key == "avg_dep_delay":
        return "red" if value >= 30 else "amber" if value > 15 else "ok"
    return "neutral"


def kpi_tile(key: str, label: str, summary: Any, baseline_label: str, extra: str = "") -> str:
    """One tile: the value of the scope and its comparison with the same-weekday average."""
    value = summary.value.get(key, math.nan)
    level = _tile_level(key, value)
    cmp_html = '<span class="tm-tile-cmp">no baseline: ' + esc(summary.note or "—") + "</span>"
    if summary.baseline is not None:
        base = summary.baseline.get(key, math.nan)
        text, dlevel = _delta(key, value, base)
        color = {"ok": GOOD, "amber": WATCH, "red": ACT}.get(dlevel, NEUTRAL)
        if level == "neutral" and dlevel in ("amber", "red"):
            level = dlevel
        cmp_html = (
            f'<span class="tm-tile-cmp"><b style="color:{color}">{esc(text)}</b> vs '
            f"{_fmt_tile(key, base).replace('<small>', '').replace('</small>', '')} "
            f"avg {esc(baseline_label)}</span>"
        )
    border = {"ok": GOOD, "amber": WATCH, "red": ACT}.get(level, NEUTRAL)
    shown = _fmt_tile(key, value)
    raw = "" if not math.isfinite(value) else f"{value:.4f}"
    return (
        f'<div class="tm-tile" data-kpi="{esc(key)}" data-value="{raw}" data-level="{level}" '
        f'style="border-left-color:{border}">'
        f'<div class="tm-tile-label">{esc(label)}</div>'
        f'<div class="tm-tile-value">{shown}{extra}</div>{cmp_html}</div>'
    )


# --------------------------------------------------------------------------------- tables


def table(
    frame: pd.DataFrame,
    columns: Sequence[tuple[str, str, str]],
    row_class: Iterable[str] | None = None,
    attrs: str = "",
) -> str:
    """``columns``: (field, header, kind) with kind '' (text), 'num', 'wrap' (text that may
    wrap) or 'html' (trusted)."""
    head = "".join(
        f'<th class="{"num" if kind == "num" else ""}">{esc(title)}</th>'
        for _, title, kind in columns
    )
    n = len(frame)
    classes = list(row_class) if row_class is not None else [""] * n
    cells = []  # per column, the cells of every row (column lists: no row objects)
    for field, _, kind in columns:
        values = frame[field].tolist() if field in frame.columns else [None] * n
        if kind == "html":
            cells.append([f"<td>{v}</td>" for v in values])
        else:
            cls = kind if kind in ("num", "wrap") else field
            cells.append([f'<td class="{cls}">{esc(v)}</td>' for v in values])
    body = "".join(
        f'<tr class="{cls}">{"".join(row)}</tr>'
        for cls, row in zip(classes, zip(*cells, strict=True) if cells else [()] * n, strict=True)
    )
    return (
        f'<table class="tm-table" {attrs}><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table>"
    )


def csv_link(frame: pd.DataFrame, filename: str, label: str) -> str:
    """An anchor downloading ``frame`` as CSV from a data: URI (no server round trip)."""
    payload = base64.b64encode(frame.to_csv(index=False).encode("utf-8")).decode("ascii")
    return (
        f'<a download="{esc(filename)}" href="data:text/csv;charset=utf-8;base64,{payload}" '
        f'data-export="{esc(filename)}">⬇ {esc(label)}</a>'
    )


def legend(items: Sequence[tuple[str, str]]) -> str:
    return (
        '<span class="tm-legend">'
        + "".join(f'<span class="sw" style="background:{c}"></span>{esc(t)}' for c, t in items)
        + "</span>"
    )
