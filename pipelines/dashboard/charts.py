"""bqplot charts of the dashboard. Each is built once; ``update`` swaps the marks' data in
place (inside ``hold_sync``, one message per mark), so a filter change never rebuilds the page.
"""

from __future__ import annotations

import math
from typing import Any

import bqplot as bq
import ipywidgets as W
import numpy as np
import pandas as pd
from bqplot.traits import array_from_json
from traittypes import Array

from pipelines.core.domain import ORIGINS, VISIB_BANDS, WIND_BANDS

from . import geo
from .kpi_frames import WEEKDAYS
from .widgets import DELAY_MAX, DELAY_PALETTE

_MARGIN = {"top": 12, "bottom": 38, "left": 52, "right": 18}
_AXIS_STYLE = {"font-size": "11px"}


def delay_scale() -> bq.ColorScale:
    """Green at 0 min (and early), yellow at 15 min (FAA on-time limit), dark red from 45."""
    return bq.ColorScale(colors=DELAY_PALETTE, min=0.0, max=DELAY_MAX)


def _figure(marks, axes, height: int, **kw) -> bq.Figure:
    fig = bq.Figure(
        marks=marks,
        axes=axes,
        fig_margin=kw.pop("fig_margin", _MARGIN),
        padding_y=0.0,
        animation_duration=0,
        background_style={"fill": "white"},
        layout=W.Layout(width="100%", height=f"{height}px"),
        **kw,
    )
    return fig


def _nice(value: float, step: float = 5.0) -> float:
    """``value`` rounded up to a multiple of ``step`` (axis ends that read well)."""
    return float(math.ceil(value / step) * step) if math.isfinite(value) else step


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values (steps of 1, 2 or 5 x 10^k) covering [lo, hi]."""
    span = hi - lo
    if not (math.isfinite(span) and span > 0):
        return [lo]
    mag = 10 ** math.floor(math.log10(span / n))
    steps = [m * mag for m in (1, 2, 5, 10, 20)]
    step = min(steps, key=lambda st: abs(span / st + 1 - (n + 1)))  # closest to n + 1 ticks
    first = math.ceil(lo / step - 1e-9) * step
    return [round(first + i * step, 6) for i in range(int((hi - first) / step + 1e-9) + 1)]


def _finite(values: Any) -> np.ndarray:
    arr = np.asarray(pd.to_numeric(pd.Series(values), errors="coerce"), dtype="float64")
    return np.where(np.isfinite(arr), arr, np.nan)


def _nan_to(values: np.ndarray, fill: float = 0.0) -> np.ndarray:
    return np.where(np.isfinite(values), values, fill)


class HourlyChart:
    """Flights per scheduled hour (bars, right axis) and average departure delay (line)."""

    def __init__(self) -> None:
        self.x = bq.OrdinalScale()
        self.y_delay = bq.LinearScale(min=0.0)
        self.y_flights = bq.LinearScale(min=0.0)
        self.bars = bq.Bars(
            x=[],
            y=[],
            scales={"x": self.x, "y": self.y_flights},
            colors=["#c9d3de"],
            padding=0.15,
            tooltip=bq.Tooltip(fields=["x", "y"], labels=["hour", "flights"]),
        )
        self.line = bq.Lines(
            x=[],
            y=[],
            scales={"x": self.x, "y": self.y_delay},
            colors=["#14213d"],
            stroke_width=2.5,
            marker="circle",
            marker_size=18,
        )
        self.limit = bq.Lines(
            x=[],
            y=[],
            scales={"x": self.x, "y": self.y_delay},
            colors=["#b26a00"],
            line_style="dashed",
            stroke_width=1,
        )
        self.x_axis = bq.Axis(scale=self.x, tick_style=_AXIS_STYLE, tick_values=[])
        self.delay_axis = bq.Axis(
            scale=self.y_delay,
            side="left",
            label="avg dep delay (min)",
            grid_lines="dashed",
            tick_style=_AXIS_STYLE,
            label_offset="38px",
        )
        self.flights_axis = bq.Axis(
            scale=self.y_flights,
            side="right",
            label="flights",
            grid_lines="none",
            tick_style=_AXIS_STYLE,
            label_offset="30px",
        )
        axes = [self.x_axis, self.delay_axis, self.flights_axis]
        margin = {**_MARGIN, "right": 48}
        self.figure = _figure([self.bars, self.limit, self.line], axes, 260, fig_margin=margin)

    def update(self, frame: pd.DataFrame, current_label: str | None = None) -> None:
        labels = [str(v) for v in frame.get("label", [])]
        delay = _finite(frame.get("avg_dep_delay", []))
        flights = _finite(frame.get("flights", []))
        step = max(1, math.ceil(len(labels) / 12))
        colors = ["#14213d" if lab == current_label else "#c9d3de" for lab in labels]
        with self.bars.hold_sync():
            self.bars.x, self.bars.y = labels, _nan_to(flights)
            self.bars.colors = colors or ["#c9d3de"]
        top = float(np.nanmax(delay)) if np.isfinite(delay).any() else 15.0
        low = float(np.nanmin(delay)) if np.isfinite(delay).any() else 0.0
        self.y_delay.max = _nice(max(20.0, top * 1.1))
        self.y_delay.min = -_nice(-low) if low < 0 else 0.0
        self.y_flights.max = _nice(float(np.nanmax(flights)) * 1.05, 10.0) if len(flights) else 10.0
        self.delay_axis.tick_values = _ticks(self.y_delay.min, self.y_delay.max)
        self.flights_axis.tick_values = _ticks(0.0, self.y_flights.max, 4)
        # only the hours with a delay: bqplot places the line's end label (and its markers) at
        # the last point, and a NaN there (the hours of a partly loaded day that have no
        # departure yet) logs "<g> attribute transform: ... translate(787.5,NaN)" in the console
        known = np.isfinite(delay)
        with self.line.hold_sync():
            self.line.x = [lab for lab, k in zip(labels, known, strict=True) if k]
            self.line.y = delay[known]
        with self.limit.hold_sync():
            self.limit.x = [labels[0], labels[-1]] if labels else []
            self.limit.y = [15.0, 15.0] if labels else []
        self.x_axis.tick_values = labels[::step]


class CarrierChart:
    """Carrier leaderboard: horizontal bars of average delay or on-time %, worst on top."""

    METRICS = {
        "avg_dep_delay": ("avg departure delay (min)", ".0f"),
        "on_time_pct": ("on-time departures (%)", ".0f"),
    }

    def __init__(self) -> None:
        self.x = bq.OrdinalScale(reverse=True)
        self.y = bq.LinearScale(min=0.0)
        self.color = delay_scale()
        self.bars = bq.Bars(
            x=[],
            y=[],
            color=[],
            scales={"x": self.x, "y": self.y, "color": self.color},
            orientation="horizontal",
            padding=0.2,
            label_display=True,
            label_display_format=".0f",
            label_font_style={"font-size": "11px", "font-weight": "600", "fill": "#1f2933"},
            label_display_vertical_offset=24,
            tooltip=bq.Tooltip(fields=["x", "y"], labels=["carrier", "value"]),
        )
        self.value_axis = bq.Axis(
            scale=self.y,
            side="bottom",
            grid_lines="dashed",
            tick_style=_AXIS_STYLE,
            label="avg departure delay (min)",
        )
        axes = [
            bq.Axis(scale=self.x, side="left", tick_style=_AXIS_STYLE),
            self.value_axis,
        ]
        margin = {"top": 8, "bottom": 40, "left": 42, "right": 30}
        self.figure = _figure([self.bars], axes, 330, fig_margin=margin)

    def update(self, frame: pd.DataFrame, metric: str = "avg_dep_delay") -> None:
        label, fmt = self.METRICS[metric]
        frame = frame[frame["departed"] > 0] if len(frame) else frame
        ascending = metric == "on_time_pct"  # worst first
        frame = frame.sort_values(metric, ascending=ascending, na_position="last")
        values = _finite(frame[metric]) if len(frame) else np.array([])
        delays = _finite(frame["avg_dep_delay"]) if len(frame) else np.array([])
        lo = float(np.nanmin(values)) if np.isfinite(values).any() else 0.0
        hi = float(np.nanmax(values)) if np.isfinite(values).any() else 1.0
        self.y.min = min(0.0, lo * 1.1)
        self.y.max = 100.0 if metric == "on_time_pct" else max(10.0, hi * 1.15)
        with self.bars.hold_sync():
            self.bars.x = [str(c) for c in frame.get("carrier", [])]
            self.bars.y = _nan_to(values)
            self.bars.color = _nan_to(delays)
            self.bars.label_display_format = fmt
        self.value_axis.label = label


class AirportChart:
    """The three origins: average departure delay (bars) coloured by delay."""

    def __init__(self) -> None:
        self.x = bq.OrdinalScale(domain=list(ORIGINS))
        self.y = bq.LinearScale(min=0.0)
        self.color = delay_scale()
        self.bars = bq.Bars(
            x=list(ORIGINS),
            y=[0.0, 0.0, 0.0],
            color=[0.0, 0.0, 0.0],
            scales={"x": self.x, "y": self.y, "color": self.color},
            padding=0.35,
            label_display=True,
            label_display_format=".1f",
            label_font_style={"font-size": "12px", "font-weight": "600", "fill": "#1f2933"},
            label_display_vertical_offset=-4,
        )
        self.y_axis = bq.Axis(
            scale=self.y,
            side="left",
            label="avg dep delay (min)",
            grid_lines="dashed",
            tick_style=_AXIS_STYLE,
            label_offset="38px",
        )
        axes = [
            bq.Axis(scale=self.x, tick_style={"font-size": "12px", "font-weight": "600"}),
            self.y_axis,
        ]
        self.figure = _figure([self.bars], axes, 190)

    def update(self, frame: pd.DataFrame, selected: tuple[str, ...] = ()) -> None:
        delay = _finite(frame["avg_dep_delay"]) if len(frame) else np.zeros(3)
        hi = float(np.nanmax(delay)) if np.isfinite(delay).any() else 10.0
        self.y.max = _nice(max(10.0, hi * 1.2))
        self.y_axis.tick_values = _ticks(0.0, self.y.max, 4)
        opacities = [1.0 if (not selected or o in selected) else 0.35 for o in ORIGINS]
        with self.bars.hold_sync():
            self.bars.x = list(ORIGINS)
            self.bars.y = _nan_to(delay)
            self.bars.color = _nan_to(delay)
            self.bars.opacities = opacities


def _nan_to_null(values: Any, obj: Any = None) -> Any:
    """A 2-d float array as nested lists with None where NaN: bqplot's GridHeatMap paints a
    null cell with ``null_color`` (NaN would be painted black)."""
    if values is None:
        return None
    arr = np.asarray(values, dtype="float64")
    return [[float(v) if np.isfinite(v) else None for v in row] for row in arr]


class _NullableGridHeatMap(bq.GridHeatMap):
    color = Array(None, allow_none=True).tag(
        sync=True,
        scaled=True,
        rtype="Color",
        atype="bqplot.ColorAxis",
        to_json=_nan_to_null,
        from_json=array_from_json,
    )


class HeatmapChart:
    """Average departure delay by weekday x local hour (bqplot GridHeatMap); cells without
    departures stay grey, the others show their value."""

    HOURS = [str(h) for h in range(24)]

    def __init__(self) -> None:
        self.rows = bq.OrdinalScale(domain=list(WEEKDAYS))
        self.cols = bq.OrdinalScale(domain=self.HOURS)
        self.color = delay_scale()
        self.grid = _NullableGridHeatMap(
            row=list(WEEKDAYS),
            column=self.HOURS,
            color=np.full((7, 24), np.nan),
            scales={"row": self.rows, "column": self.cols, "color": self.color},
            null_color="#e9edf1",
            stroke="white",
            tooltip=bq.Tooltip(
                fields=["row", "column", "color"],
                labels=["weekday", "hour", "avg delay (min)"],
                formats=["", "", ".1f"],
            ),
        )
        self.labels = bq.Label(
            x=[],
            y=[],
            text=[],
            scales={"x": self.cols, "y": self.rows},
            align="middle",
            colors=["#1f2933"],
            default_size=10,
        )
        axes = [
            bq.Axis(scale=self.cols, label="scheduled local hour", tick_style=_AXIS_STYLE),
            bq.Axis(scale=self.rows, side="left", tick_style=_AXIS_STYLE),
        ]
        margin = {"top": 6, "bottom": 40, "left": 40, "right": 8}
        self.figure = _figure([self.grid, self.labels], axes, 250, fig_margin=margin)

    def update(self, grid: pd.DataFrame) -> None:
        values = grid.reindex(index=range(1, 8), columns=range(24)).to_numpy(dtype="float64")
        self.grid.color = np.round(values, 1)
        rows, cols = np.nonzero(np.isfinite(values))
        with self.labels.hold_sync():
            self.labels.x = [self.HOURS[c] for c in cols]
            self.labels.y = [WEEKDAYS[r] for r in rows]
            self.labels.text = [f"{values[r, c]:.0f}" for r, c in zip(rows, cols, strict=True)]


class WeatherCharts:
    """Average departure delay per visibility band, wind band and precipitation: three small
    horizontal bar charts, one above the other (bands without flights stay empty)."""

    def __init__(self) -> None:
        self.parts = {}
        self.figures = []
        for key, order, title in (
            ("visib_band", VISIB_BANDS, "visibility"),
            ("wind_band", WIND_BANDS, "wind"),
            ("precip", ("dry", "precipitation"), "precipitation"),
        ):
            x = bq.OrdinalScale(domain=list(order), reverse=True)
            y = bq.LinearScale(min=0.0)
            bars = bq.Bars(
                x=[],
                y=[],
                color=[],
                scales={"x": x, "y": y, "color": delay_scale()},
                orientation="horizontal",
                padding=0.25,
                label_display=True,
                label_display_format=".0f",
                label_font_style={"font-size": "11px", "font-weight": "600", "fill": "#1f2933"},
                label_display_vertical_offset=24,
                tooltip=bq.Tooltip(fields=["x", "y"], labels=[title, "avg delay (min)"]),
            )
            axes = [
                bq.Axis(scale=x, side="left", label=title, tick_style={"font-size": "11px"},
                        label_offset="78px"),
                bq.Axis(scale=y, side="bottom", tick_style=_AXIS_STYLE, grid_lines="dashed"),
            ]  # fmt: skip
            height = 44 + 24 * len(order)
            margin = {"top": 4, "bottom": 22, "left": 96, "right": 34}
            fig = _figure([bars], axes, height, fig_margin=margin)
            self.parts[key] = (bars, y, axes[1], list(order))
            self.figures.append(fig)

    def update(self, tables: dict[str, pd.DataFrame]) -> None:
        for key, (bars, y, axis, order) in self.parts.items():
            table = tables.get(key)
            if table is None or table.empty:
                values = np.full(len(order), np.nan)
            else:
                values = _finite(table.set_index(key).reindex(order)["avg_dep_delay"])
            known = np.isfinite(values)
            hi = float(np.nanmax(values)) if known.any() else 10.0
            lo = float(np.nanmin(values)) if known.any() else 0.0
            y.max = _nice(max(10.0, hi * 1.15))
            y.min = -_nice(-lo) if lo < 0 else 0.0
            axis.tick_values = _ticks(y.min, y.max, 4)
            with bars.hold_sync():
                bars.x = [b for b, k in zip(order, known, strict=True) if k]
                bars.y = values[known]
                bars.color = values[known]


class RouteMap:
    """US states (bqplot's bundled topojson, AlbersUSA) and routes from New York coloured by
    average departure delay; the dot grows with the number of flights."""

    def __init__(self, width: int = 560, height: int = 400) -> None:
        # bqplot's Map draws into a fixed 1200 x 980 viewBox scaled to the figure: the
        # projection is set for that box, the figure keeps a close aspect ratio.
        self.projection = bq.AlbersUSA(scale_factor=1430, translate=(610, 455))
        self.states = bq.Map(
            map_data=bq.topo_load("map_data/USStatesMap.json"),
            scales={"projection": self.projection},
            colors={"default_color": "#dfe5ea"},
            stroke_color="#ffffff",
            hover_highlight=False,
        )
        self.routes = bq.Map(
            map_data={"type": "FeatureCollection", "features": []},
            scales={"projection": self.projection, "color": delay_scale()},
            color={},
            colors={"default_color": "#90a4ae"},
            stroke_color="#ffffff",
            hover_highlight=False,
        )
        self.figure = bq.Figure(
            marks=[self.states, self.routes],
            fig_margin={"top": 0, "bottom": 0, "left": 0, "right": 0},
            animation_duration=0,
            layout=W.Layout(width=f"{width}px", height=f"{height}px", flex="0 0 auto"),
        )
        self.figure.add_class("tm-map")

    def update(self, frame: pd.DataFrame) -> None:
        if frame.empty:
            data, color = {"type": "FeatureCollection", "features": []}, {}
        else:
            data = geo.route_features(
                list(frame["dest"]),
                list(frame["dest_lon"]),
                list(frame["dest_lat"]),
                list(frame["flights"]),
            )
            delay = dict(zip(frame["dest"], _finite(frame["avg_dep_delay"]), strict=True))
            color = {
                f["id"]: float(delay[f["id"]])
                for f in data["features"]
                if math.isfinite(delay.get(f["id"], math.nan))
            }
        with self.routes.hold_sync():
            self.routes.map_data = data
            self.routes.color = color
