"""What papermill costs: the smoke job once through the runner (``python -m pipelines run
smoke``: papermill, kernel, ledger, HTML report) and once through spark-submit (``python -m
pipelines submit smoke``), same message count, in one run, both as the command cron would start.

    python bench/runner_overhead.py [--env ci] [--messages 1000] [--repeat 1]

Both runs use their own fresh topic and checkpoint (an isolated copy of the env's parameters),
so each reads exactly its own messages. Writes ``outputs/bench/runner_overhead.json``. Needs the
stack of ``--env`` up (``make stack-up ENV=ci``). Target: the runner adds <= 10 % or <= 5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from pipelines.clients import kafka_io, mongo
from pipelines.core import config
from pipelines.core.config import REPO_ROOT, Settings

TARGET_PCT = 10.0
TARGET_S = 5.0


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT, env=env)
    seconds = time.perf_counter() - t0
    if res.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stderr[-3000:]}")
    return seconds, res


def _cell_seconds(notebook: Path) -> list[dict]:
    """papermill's per-cell durations of the executed notebook (where the time went)."""
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    meta = nb.metadata.get("papermill", {})
    out = [{"cell": "notebook (papermill total)", "s": round(meta.get("duration") or 0, 2)}]
    for cell in nb.cells:
        if cell.cell_type == "code":
            first = cell.source.strip().splitlines()[0][:60] if cell.source.strip() else ""
            out.append({"cell": first, "s": round(cell.metadata.papermill.get("duration") or 0, 2)})
    return out


def _one(name: str, settings: Settings, messages: int, tmp: Path) -> tuple[float, dict]:
    """One timed run of ``name`` (submit | runner) on its own topic and checkpoint."""
    folder = tmp / f"{name}-{uuid.uuid4().hex[:6]}"
    settings.isolated(folder.name.replace("-", ""), folder).write(folder)
    env = {
        **os.environ,
        "TARMAC_PARAMETERS_DIR": str(folder),
        "TARMAC_LOG_FORMAT": "kv",
        # spark-submit finds SPARK_HOME with this interpreter (plain `python3` otherwise, which
        # has no pyspark outside an activated venv); build_session sets the same for notebooks.
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
    }
    py = [sys.executable, "-m", "pipelines"]
    detail: dict = {}
    if name == "submit":
        cmd = [*py, "submit", "--env", settings.env, "smoke", "-p", f"messages={messages}"]
        seconds, res = _timed(cmd, env)
        rows = json.loads(res.stdout.strip().splitlines()[-1])["rows_read"]
    else:
        env["TARMAC_OUTPUTS_DIR"] = str(folder / "outputs")
        cmd = [*py, "run", "smoke", "--env", settings.env, "-p", f"messages={messages}", "--json"]
        seconds, res = _timed(cmd, env)
        doc = json.loads(res.stdout.strip().splitlines()[-1])
        rows = doc["rows_in"]
        detail = {
            "notebook_execution_s": doc["duration_s"],
            "cells": _cell_seconds(Path(doc["notebook"])),
        }
    if rows != messages:
        sys.exit(f"{name}: read {rows} messages, expected {messages}")
    print(f"{name:<7} {seconds:6.1f} s  ({' '.join(cmd[2:])})", flush=True)
    return seconds, detail


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env", default="ci")
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument(
        "--repeat", type=int, default=1, help="pairs to run, order alternating; best of each kept"
    )
    args = parser.parse_args()

    settings = config.load(args.env)
    if not (kafka_io.ping(settings) and mongo.ping(settings)):
        sys.exit(f"the {args.env} stack is not up: make stack-up ENV={args.env}")

    samples: dict[str, list[float]] = {"submit": [], "runner": []}
    details: list[dict] = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="tarmac-bench-") as tmp:
        for i in range(args.repeat):
            order = ("submit", "runner") if i % 2 == 0 else ("runner", "submit")
            for name in order:
                seconds, detail = _one(name, settings, args.messages, Path(tmp))
                samples[name].append(seconds)
                if detail:
                    details.append(detail)

    submit, runner = min(samples["submit"]), min(samples["runner"])
    overhead = runner - submit
    pct = 100.0 * overhead / submit
    best = details[samples["runner"].index(runner)]
    out = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "env": args.env,
        "messages": args.messages,
        "repeat": args.repeat,
        "cores": os.cpu_count(),
        "load_avg_1m_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "python": platform.python_version(),
        "spark_submit_s": round(submit, 2),
        "runner_papermill_s": round(runner, 2),
        "samples_s": {k: [round(v, 2) for v in vs] for k, vs in samples.items()},
        "runner_notebook_execution_s": best["notebook_execution_s"],
        "runner_cells_s": best["cells"],
        # what the runner adds around the notebook's own code, whatever Spark's variance:
        # interpreter start, imports, kernel start, ledger writes, HTML report
        "runner_fixed_cost_s": round(runner - sum(c["s"] for c in best["cells"][1:]), 2),
        "overhead_s": round(overhead, 2),
        "overhead_pct": round(pct, 1),
        "target": f"papermill adds <= {TARGET_PCT:g} % or <= {TARGET_S:g} s",
        "target_met": overhead <= TARGET_S or pct <= TARGET_PCT,
    }
    path = REPO_ROOT / "outputs" / "bench" / "runner_overhead.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
