"""Route shapes for the bqplot ``Map`` mark (GeoJSON features drawn with the map projection).

bqplot's Map draws polygons only (no points or lines in geographic coordinates), so a route is
a tapered ribbon along the great circle from New York to the destination plus a dot at the
destination whose size grows with the number of flights. d3-geo reads polygon rings on the
sphere, where the exterior ring must be clockwise (seen with north up): rings are oriented so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

NEW_YORK = (-73.93, 40.70)  # (lon, lat) between EWR, JFK and LGA: one point at map scale
Ring = list[list[float]]
# Every route is sent again at each filter change (its dot's size moves), so its points are few
# and short: 0.01 degree is ~0.15 px on the page's AlbersUSA map (about 900 px for 60 degrees of
# longitude), 10 segments draw a great circle across the country without visible corners, and a
# dot of at most 12 px is a decagon. Measured on a synthetic full year: an airport change sends
# the map 49 KB instead of 74 KB (4 decimals, 14 segments and 14-gons before).
DIGITS = 2


def _to_xyz(lon: float, lat: float) -> np.ndarray:
    lo, la = math.radians(lon), math.radians(lat)
    return np.array([math.cos(la) * math.cos(lo), math.cos(la) * math.sin(lo), math.sin(la)])


def _to_lonlat(v: np.ndarray) -> tuple[float, float]:
    v = v / np.linalg.norm(v)
    return math.degrees(math.atan2(v[1], v[0])), math.degrees(math.asin(max(-1.0, min(1.0, v[2]))))


def great_circle(a: tuple[float, float], b: tuple[float, float], n: int = 24) -> np.ndarray:
    """``n`` + 1 (lon, lat) points from ``a`` to ``b`` along the great circle."""
    va, vb = _to_xyz(*a), _to_xyz(*b)
    omega = math.acos(max(-1.0, min(1.0, float(va @ vb))))
    if omega < 1e-9:
        return np.array([a, b], dtype=float)
    ts = np.linspace(0.0, 1.0, n + 1)
    pts = [
        _to_lonlat((math.sin((1 - t) * omega) * va + math.sin(t * omega) * vb) / math.sin(omega))
        for t in ts
    ]
    return np.array(pts, dtype=float)


def _signed_area(ring: Sequence[Sequence[float]]) -> float:
    """Shoelace area in the (lon, lat) plane: > 0 counter-clockwise."""
    xs = np.array([p[0] for p in ring])
    ys = np.array([p[1] for p in ring])
    return 0.5 * float(np.sum(xs[:-1] * ys[1:] - xs[1:] * ys[:-1]))


def clockwise(ring: Ring) -> Ring:
    """The ring closed and oriented clockwise (d3-geo's exterior ring orientation)."""
    if ring[0] != ring[-1]:
        ring = [*ring, ring[0]]
    return ring[::-1] if _signed_area(ring) > 0 else ring


def dot(lon: float, lat: float, radius_deg: float, n: int = 10) -> Ring:
    """A small circle (in degrees of latitude) around a point."""
    k = 1.0 / max(0.2, math.cos(math.radians(lat)))
    ring = [
        [lon + radius_deg * k * math.cos(t), lat + radius_deg * math.sin(t)]
        for t in np.linspace(0.0, 2 * math.pi, n, endpoint=False)
    ]
    return clockwise([[round(x, DIGITS), round(y, DIGITS)] for x, y in ring])


def ribbon(
    a: tuple[float, float], b: tuple[float, float], half_width_deg: float, n: int = 10
) -> Ring:
    """A ribbon from ``a`` to ``b`` that widens from a thin start to ``half_width_deg``."""
    path = great_circle(a, b, n)
    if len(path) < 2:
        return []
    left, right = [], []
    for i, (x, y) in enumerate(path):
        j0, j1 = max(0, i - 1), min(len(path) - 1, i + 1)
        dx = (path[j1][0] - path[j0][0]) * math.cos(math.radians(y))
        dy = path[j1][1] - path[j0][1]
        norm = math.hypot(dx, dy) or 1.0
        w = half_width_deg * (0.2 + 0.8 * i / (len(path) - 1))
        nx, ny = -dy / norm * w / max(0.2, math.cos(math.radians(y))), dx / norm * w
        left.append([round(x + nx, DIGITS), round(y + ny, DIGITS)])
        right.append([round(x - nx, DIGITS), round(y - ny, DIGITS)])
    return clockwise(left + right[::-1])


def in_lower48(lon: float, lat: float) -> bool:
    return -125.0 <= lon <= -66.0 and 24.0 <= lat <= 50.0


@lru_cache(maxsize=4096)
def _route_polygons(lon: float, lat: float, size: float, origin: tuple[float, float]):
    """Ribbon + dot of one destination (cached: the same routes are drawn at every refresh)."""
    polygons = [[dot(lon, lat, 0.25 + 0.55 * size)]]
    if in_lower48(lon, lat) and math.dist((lon, lat), origin) > 1.0:
        polygons.insert(0, [ribbon(origin, (lon, lat), 0.06 + 0.16 * size)])
    return polygons


def route_features(
    dests: Sequence[str],
    lons: Sequence[float],
    lats: Sequence[float],
    flights: Sequence[float],
    origin: tuple[float, float] = NEW_YORK,
) -> dict:
    """A GeoJSON FeatureCollection: per destination a ribbon from ``origin`` (lower 48 only:
    Alaska and Hawaii are insets of the AlbersUSA projection) and a dot sized by flights."""
    top = max([float(f) for f in flights] or [1.0]) or 1.0
    features = []
    for dest, lon, lat, n in zip(dests, lons, lats, flights, strict=True):
        if lon is None or lat is None or not (math.isfinite(lon) and math.isfinite(lat)):
            continue
        size = round(math.sqrt(max(float(n), 0.0) / top), 2)  # 100 sizes: cache friendly
        polygons = _route_polygons(round(lon, 3), round(lat, 3), size, origin)
        features.append(
            {
                "type": "Feature",
                "id": dest,
                "properties": {"name": dest},
                "geometry": {"type": "MultiPolygon", "coordinates": polygons},
            }
        )
    return {"type": "FeatureCollection", "features": features}
