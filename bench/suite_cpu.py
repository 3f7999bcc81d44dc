"""Where a command's CPU goes, by kind of process: run it (``make test`` by default) and sample
every process of the machine every ``--every`` seconds, keeping each one's CPU time (user +
system) as last seen; at the end, the CPU seconds of each kind and, for Spark's JVMs, Python's
workers and notebook kernels, of the command that started them; for a pytest run, of each test
module (``by_module``: ``tests/conftest.py`` notes each worker's current test under
``$TARMAC_SUITE_CPU_DIR``, which this sets, and a process is charged to its worker's test through
the ``PYTEST_XDIST_WORKER`` it inherited; the session's Kafka and FerretDB apart).

What it answers: whether the suite's time goes to starting JVMs and kernels (one per job
subprocess, papermill run or spark-submit), to Spark's own work, or to the stack (Kafka,
FerretDB), Voila and Chromium; where to cut to bring ``make test`` under its 20 minutes.

    .venv/bin/python bench/suite_cpu.py [--every 2] [--out outputs/bench/suite_cpu.json] \\
        [-- make test]

The command runs in the current folder (``cd`` to a clean clone and run this file from there).

A process that lived less than ``--every`` seconds may be missed (its CPU with it): the result
says how many were seen, and the machine's own CPU seconds over the run (``/proc/stat``) beside
the sum, so the part not seen is known. Only processes started after it are counted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]  # where --out goes by default

KINDS = [  # (kind, a pattern of its command line), the first that matches
    ("kafka", r"kafka\.Kafka\b"),
    ("ferretdb", r"ferretdb"),
    ("spark_master_worker", r"deploy\.(master\.Master|worker\.Worker)\b"),
    ("spark_executor", r"CoarseGrainedExecutorBackend"),
    ("spark_jvm", r"org\.apache\.spark\.deploy\.SparkSubmit"),
    ("java_other", r"\bjava\b"),
    ("pyspark_worker", r"pyspark\.(daemon|worker)"),
    ("kernel", r"ipykernel_launcher|ipykernel"),
    ("voila", r"\bvoila\b"),
    ("chromium", r"chrom(e|ium)"),
    ("job", r"-m pipelines\b"),
    ("bench", r"\bbench/"),
    ("pytest", r"pytest|xdist|execnet"),
]
# kinds that are what their parent command asked for: counted again under that command
ON_BEHALF = {"spark_jvm", "pyspark_worker", "kernel", "spark_executor"}


def kind_of(cmdline: str) -> str:
    for kind, pattern in KINDS:
        if re.search(pattern, cmdline):
            return kind
    return "other"


def _owner(proc: psutil.Process) -> str:
    """The command a JVM, Python worker or kernel works for: its nearest ancestor that is a job,
    a bench script, a pytest worker or a notebook kernel, in a few words."""
    for parent in proc.parents():
        try:
            line = " ".join(parent.cmdline())
        except psutil.Error:
            continue
        kind = kind_of(line)
        if kind == "job":
            words = line.split("-m pipelines", 1)[1].split()
            return "pipelines " + " ".join(words[:2])
        if kind in {"kernel", "bench", "pytest"}:
            return kind
    return "unknown"


def machine_cpu_s() -> float:
    """The machine's busy CPU seconds since boot (``/proc/stat``: all but idle and iowait)."""
    fields = [float(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    busy = sum(fields) - fields[3] - fields[4]
    return busy / os.sysconf("SC_CLK_TCK")


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Tests:
    """Which test each pytest worker runs now (``tests/conftest.py`` writes ``<dir>/<worker>``
    as "pid nodeid" when a test starts, under ``$TARMAC_SUITE_CPU_DIR``), to charge each
    sample's CPU to a test module: a process's worker is the one in its environment
    (``PYTEST_XDIST_WORKER``, inherited by every descendant, daemons too) or the worker itself.
    The session's shared services (its stack's Kafka and FerretDB, the Spark cluster's master
    and workers) are charged to ``(session stack)``."""

    SHARED_KINDS = {"kafka", "ferretdb", "spark_master_worker"}

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.now: dict[str, str] = {}  # worker -> module
        self.pids: dict[int, str] = {}  # worker pid -> worker
        self.cpu_s: dict[str, float] = defaultdict(float)

    def read(self) -> None:
        for path in self.folder.glob("*"):
            try:
                pid, nodeid = path.read_text().split(" ", 1)
            except (OSError, ValueError):
                continue
            self.now[path.name] = nodeid.split("::")[0]
            self.pids[int(pid)] = path.name

    def worker(self, proc: psutil.Process, kind: str, line: str) -> str | None:
        if kind in self.SHARED_KINDS and "/pytest-" not in line:  # not a test's own stack
            return "(session stack)"
        if proc.pid in self.pids:
            return self.pids[proc.pid]
        try:
            return proc.environ().get("PYTEST_XDIST_WORKER")
        except psutil.Error:
            return None

    def charge(self, worker: str | None, cpu_s: float) -> None:
        if worker == "(session stack)":
            self.cpu_s[worker] += cpu_s
        else:
            self.cpu_s[self.now.get(worker or "", "(no test)")] += cpu_s


def sample(seen: dict[int, dict], started: float, tests: Tests | None = None) -> None:
    if tests is not None:
        tests.read()
    for proc in psutil.process_iter(["create_time", "cmdline"]):
        try:
            if proc.info["create_time"] < started:
                continue
            times = proc.cpu_times()
            cpu = times.user + times.system
            entry = seen.get(proc.pid)
            if entry is None or entry["create_time"] != proc.info["create_time"]:
                line = " ".join(proc.info["cmdline"] or [])
                kind = kind_of(line)
                entry = seen[proc.pid] = {
                    "create_time": proc.info["create_time"],
                    "kind": kind,
                    "owner": _owner(proc) if kind in ON_BEHALF else None,
                    "cpu_s": 0.0,
                    "line": line[:120] if kind == "other" else None,
                    "worker": tests.worker(proc, kind, line) if tests is not None else None,
                }
            if tests is not None and entry["worker"] is None:  # a worker before its first test
                entry["worker"] = tests.pids.get(proc.pid)
            if tests is not None and cpu > entry["cpu_s"]:
                tests.charge(entry["worker"], cpu - entry["cpu_s"])
            entry["cpu_s"] = max(entry["cpu_s"], cpu)
        except psutil.Error:
            continue


def summarize(seen: dict[int, dict], wall_s: float, machine_s: float) -> dict:
    by_kind: dict[str, dict] = defaultdict(lambda: {"cpu_s": 0.0, "processes": 0})
    by_owner: dict[str, dict] = defaultdict(lambda: {"cpu_s": 0.0, "processes": 0})
    for entry in seen.values():
        by_kind[entry["kind"]]["cpu_s"] += entry["cpu_s"]
        by_kind[entry["kind"]]["processes"] += 1
        if entry["owner"]:
            key = f"{entry['kind']} for {entry['owner']}"
            by_owner[key]["cpu_s"] += entry["cpu_s"]
            by_owner[key]["processes"] += 1

    def ordered(groups: dict[str, dict]) -> dict[str, dict]:
        return {k: {"cpu_s": round(v["cpu_s"], 1), "processes": v["processes"]}
                for k, v in sorted(groups.items(), key=lambda kv: -kv[1]["cpu_s"])}  # fmt: skip

    others: dict[str, float] = defaultdict(float)  # what "other" is: its command lines
    for entry in seen.values():
        if entry.get("line") is not None:
            others[entry["line"]] += entry["cpu_s"]
    counted = sum(e["cpu_s"] for e in seen.values())
    return {
        "wall_s": round(wall_s, 1),
        "machine_cpu_s": round(machine_s, 1),
        "counted_cpu_s": round(counted, 1),
        "processes_seen": len(seen),
        "by_kind": ordered(by_kind),
        "by_owner": ordered(by_owner),
        "other_top": dict(
            sorted(((k, round(v, 1)) for k, v in others.items()), key=lambda kv: -kv[1])[:10]
        ),  # fmt: skip
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)  # fmt: skip
    parser.add_argument("--every", type=float, default=2.0, help="seconds between samples")
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "bench" / "suite_cpu.json")
    parser.add_argument("command", nargs="*", default=["make", "test"],
                        help="the command to run (after --; default: make test)")  # fmt: skip
    args = parser.parse_args()
    started = time.time()
    cpu0 = machine_cpu_s()
    folder = Path(tempfile.mkdtemp(prefix="suite-cpu-"))  # the tests each worker runs
    env = {**os.environ, "TARMAC_SUITE_CPU_DIR": str(folder)}
    proc = subprocess.Popen(args.command, env=env)  # in the current folder (a clean clone's)
    seen: dict[int, dict] = {}
    tests = Tests(folder)
    try:
        while proc.poll() is None:
            sample(seen, started - 1, tests)
            time.sleep(args.every)
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait()
    result = {
        "bench": "suite_cpu",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": args.command,
        "returncode": proc.returncode,
        "machine": {"cores": os.cpu_count()},
        "every_s": args.every,
        **summarize(seen, time.time() - started, machine_cpu_s() - cpu0),
        # each test module's CPU: what its worker and the worker's descendants (daemons
        # too) used while the worker ran it; the session's stack apart
        "by_module": {
            m: round(c, 1) for m, c in sorted(tests.cpu_s.items(), key=lambda kv: -kv[1])
        },  # fmt: skip
        # every descendant the command's processes waited for (the kernel's own count; a
        # daemon reparented to init is not in it)
        "waited_descendants_cpu_s": round(_children_cpu_s(), 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(
        json.dumps(
            {k: v for k, v in result.items() if k not in ("by_owner", "by_module")}, indent=2
        )
    )
    print("by module:", json.dumps(dict(list(result["by_module"].items())[:25]), indent=1))
    sys.exit(proc.returncode or 0)


if __name__ == "__main__":
    main()
