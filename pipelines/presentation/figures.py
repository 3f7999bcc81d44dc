"""Charts of the deck, drawn with matplotlib from the data and saved as PNG next to the HTML.

Each function takes the plain data of :mod:`pipelines.presentation.facts` and a target path,
draws with the ``Agg`` backend (no display, no network) and returns the path. Colours follow the
dashboard's (EWR, JFK, LGA); text is French, sized for a 1280×720 slide.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

INK = "#1f2937"
ACCENT = "#2563eb"
MUTED = "#94a3b8"
STAGE_COLOURS = {
    "replay": "#64748b",
    "reference_daily": "#0ea5e9",
    "weather_hourly": "#22c55e",
    "flights_stream": "#2563eb",
}
plt.rcParams.update(
    {
        "font.size": 13,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.edgecolor": MUTED,
        "axes.labelcolor": INK,
        "xtick.color": INK,
        "ytick.color": INK,
    }
)

# the pipeline as drawn: (label, x, y) in a 12 × 5 grid, then the arrows between labels
BOXES: dict[str, tuple[str, float, float, str]] = {
    "flights": ("vols\névénements temps réel", 0.2, 3.6, "#e2e8f0"),
    "weather": ("météo\nfichiers horaires", 0.2, 2.0, "#e2e8f0"),
    "reference": ("compagnies, aéroports,\navions : quotidien", 0.2, 0.4, "#e2e8f0"),
    "kafka": ("Kafka 4 (KRaft)\nproducteur kafka-python", 3.2, 3.6, "#fde68a"),
    "landing": ("zone d'atterrissage\nmanifeste · archive ·\nquarantaine", 3.2, 1.2, "#fde68a"),
    "spark": ("PySpark\nStructured Streaming\n+ jobs batch", 6.0, 2.4, "#bfdbfe"),
    "lake": ("Delta Lake\nraw · clean · serving", 6.0, 0.3, "#bfdbfe"),
    "mongo": ("MongoDB / FerretDB\ndocuments de service", 8.9, 2.4, "#bbf7d0"),
    "voila": ("tableau de bord\nVoila (ipywidgets, bqplot)", 8.9, 4.1, "#bbf7d0"),
    "cron": ("cron → papermill\nnotebooks paramétrés", 6.0, 4.4, "#fbcfe8"),
}
ARROWS = [
    ("flights", "kafka"),
    ("weather", "landing"),
    ("reference", "landing"),
    ("kafka", "spark"),
    ("landing", "spark"),
    ("spark", "lake"),
    ("lake", "spark"),
    ("spark", "mongo"),
    ("mongo", "voila"),
    ("cron", "spark"),
]
W, H = 2.6, 1.1


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight", facecolor="white")
    plt.close(fig)
    return path


def _anchors(a: tuple[str, float, float, str], b: tuple[str, float, float, str]) -> tuple:
    """Edge points joining box ``a`` to box ``b``: side by side, or above one another."""
    _, xa, ya, _ = a
    _, xb, yb, _ = b
    if abs(xa - xb) < W:  # same column: bottom/top edges, offset for the two-way lake arrows
        dx = 0.35 if ya > yb else -0.35
        if ya > yb:
            return (xa + W / 2 + dx, ya), (xb + W / 2 + dx, yb + H)
        return (xa + W / 2 + dx, ya + H), (xb + W / 2 + dx, yb)
    if xb > xa:
        return (xa + W, ya + H / 2), (xb, yb + H / 2)
    return (xa, ya + H / 2), (xb + W, yb + H / 2)


def pipeline_diagram(path: Path) -> Path:
    """Sources → Kafka / landing → Spark ⇄ Delta Lake → MongoDB → Voila, cron driving Spark."""
    fig, ax = plt.subplots(figsize=(12, 5.6))
    ax.set_xlim(0, 11.7)
    ax.set_ylim(0, 5.6)
    ax.axis("off")
    for label, x, y, colour in BOXES.values():
        ax.add_patch(
            FancyBboxPatch(
                (x, y),
                W,
                H,
                boxstyle="round,pad=0.05,rounding_size=0.12",
                fc=colour,
                ec=INK,
                lw=1.2,
            )
        )
        ax.text(x + W / 2, y + H / 2, label, ha="center", va="center", fontsize=12, color=INK)
    for a, b in ARROWS:
        start, end = _anchors(BOXES[a], BOXES[b])
        bend = {("spark", "lake"): 0.3, ("lake", "spark"): 0.3}.get((a, b), 0.0)
        ax.add_patch(
            FancyArrowPatch(
                start,
                end,
                arrowstyle="-|>",
                mutation_scale=18,
                lw=1.6,
                color=ACCENT,
                shrinkA=3,
                shrinkB=3,
                connectionstyle=f"arc3,rad={bend}",
            )
        )
    return _save(fig, path)


def backfill(runs: list[dict[str, Any]], path: Path) -> Path:
    """Wall time of each stage, stacked, per window size; the target as a dashed line."""
    fig, ax = plt.subplots(figsize=(9, 3.8))
    labels = [f"{r['months']} mois\n{r['events']:,} évén.".replace(",", " ") for r in runs]
    left = [0.0] * len(runs)
    for stage, colour in STAGE_COLOURS.items():
        values = [float(r["stages_seconds"].get(stage, 0.0)) for r in runs]
        ax.barh(labels, values, left=left, color=colour, label=stage)
        left = [a + b for a, b in zip(left, values, strict=True)]
    for i, r in enumerate(runs):
        ax.text(left[i] + 5, i, f"{r['total_seconds']:.0f} s".replace(".", ","), va="center")
        if r.get("target_seconds"):
            ax.plot([r["target_seconds"]] * 2, [i - 0.4, i + 0.4], "--", color="#dc2626", lw=2)
    ax.set_xlabel("secondes (temps réel, 2 cœurs)")
    ax.invert_yaxis()
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=4, frameon=False, fontsize=11)
    ax.set_xlim(0, max(left) * 1.15)
    return _save(fig, path)


def delay_by_hour(by_hour: dict[int, dict[str, float]], path: Path) -> Path:
    """Flights per scheduled local hour (bars) and their mean departure delay (line)."""
    hours = sorted(by_hour)
    fig, ax = plt.subplots(figsize=(8, 3.6))
    ax.bar(hours, [by_hour[h]["flights"] for h in hours], color="#cbd5e1", label="vols")
    ax.set_xlabel("heure locale de départ prévue")
    ax.set_ylabel("vols")
    ax2 = ax.twinx()
    delays = [by_hour[h]["sum"] / by_hour[h]["n"] if by_hour[h]["n"] else None for h in hours]
    ax2.plot(hours, delays, "-o", color="#dc2626", lw=2, ms=4, label="retard moyen (min)")
    ax2.set_ylabel("retard moyen au départ (min)", color="#dc2626")
    ax2.spines["right"].set_visible(True)
    ax.set_xticks(range(0, 24, 3))
    return _save(fig, path)


def latency(lat: dict[str, float], target: float | None, path: Path) -> Path:
    """p50 / p95 / max of the event → MongoDB latency, against the p95 target."""
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    keys = [k for k in ("p50", "p95", "max") if k in lat]
    ax.bar(keys, [lat[k] for k in keys], color=[ACCENT, "#1d4ed8", MUTED])
    for i, k in enumerate(keys):
        ax.text(i, lat[k] + 0.4, f"{lat[k]:.1f} s".replace(".", ","), ha="center")
    if target:
        ax.axhline(target, ls="--", color="#dc2626", lw=2, label=f"cible p95 : {target:g} s")
        ax.legend(loc="upper left", frameon=False, fontsize=11)
    ax.set_ylabel("secondes")
    return _save(fig, path)
