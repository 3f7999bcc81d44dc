"""The Spark driver's class archive: Java's class data sharing (CDS) for a faster JVM start.

Every job, notebook run and spark-submit starts a JVM that loads and verifies thousands of
classes before doing any work (8,167 of Spark's own for a session that counts a hundred rows):
with the suite's JVM options, 4.3 CPU-seconds for a session that counts ten rows and 10.6 for
one that writes, merges and reads a Delta table (2 cores). A dynamic CDS archive (JDK 13+,
``-XX:ArchiveClassesAtExit``) holds those classes parsed and verified, mapped into each new
JVM: 2.3 and 7.8 CPU-seconds (wall 4.1 -> 2.3 s and 9.0 -> 6.3 s). Measured with probes of
this module's workload, JDK 17, 2 cores.

:func:`ensure` builds the archive once per Python environment (``stack up`` calls it, after the
jars): a child process runs :func:`_workload` (a Delta write, merge and read, a micro-batch
stream into Delta, a Python UDF) with ``-XX:ArchiveClassesAtExit``, ~25 s and ~200 MB in
``<sys.prefix>/share/tarmac/cds/`` (``.venv/share/...``). :func:`java_options` then adds
``-XX:SharedArchiveFile`` to the driver's JVM options. The archive's name carries a digest of
what it depends on (the JDK, pyspark's jars and their folder, Tarmac's jars): anything else gets
a new archive, never a wrong one. The JVM checks it again and, on a mismatch, starts as if there
were none (its CDS messages are turned off: nothing to act on; the integration test checks that
the classes do come from the archive). A JDK that cannot dump leaves a ``.failed`` note, and
sessions start without the archive. ``spark.class_data_sharing: false`` in the parameters
turns it off.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import structlog

from pipelines.clients.jars import java_home
from pipelines.core import files
from pipelines.core.config import Settings

log = structlog.get_logger(__name__)

DUMP_ENV = "TARMAC_CDS_DUMP"  # set in the child that writes the archive: where to write it
QUIET = "-Xlog:cds=off -Xlog:cds+dynamic=off"


def archive(settings: Settings) -> Path:
    """Where the archive for this JDK and these jars is (whether it exists or not): in the
    Python environment whose pyspark jars it holds (a JVM refuses an archive made on another
    class path, so two checkouts with their own ``.venv`` each need their own)."""
    return Path(sys.prefix) / "share" / "tarmac" / "cds" / f"spark-driver-{_digest(settings)}.jsa"


def java_options(settings: Settings) -> str:
    """The driver's JVM options for class data sharing: writing the archive (in the child
    :func:`ensure` starts), reading it (when it exists), or none."""
    if target := os.environ.get(DUMP_ENV):
        return f"-XX:ArchiveClassesAtExit={target} {QUIET}"
    if not settings.spark.class_data_sharing:
        return ""
    path = archive(settings)
    return f"-XX:SharedArchiveFile={path} {QUIET}" if path.exists() else ""


def ensure(settings: Settings) -> Path | None:
    """Build the archive unless it exists (or failed before on this JDK and jars); its path,
    or None without one."""
    if not settings.spark.class_data_sharing:
        return None
    path = archive(settings)
    if path.exists():
        return path
    try:
        with files.exclusive(path.parent / ".lock"):  # one builder; the others wait, find it
            return path if path.exists() else _build(settings, path)
    except OSError as exc:  # a Python environment this user cannot write to: no archive
        log.warning("cds.unwritable", folder=str(path.parent), error=str(exc),
                    hint="jobs start without the class archive")  # fmt: skip
        return None


def _build(settings: Settings, path: Path, timeout_s: float = 600) -> Path | None:
    failed = path.with_suffix(".failed")
    if failed.exists():
        return None
    partial = path.with_name(f"{path.stem}.{os.getpid()}.partial")
    t0 = time.monotonic()
    env = {**os.environ, DUMP_ENV: str(partial), "TARMAC_ENV": settings.env}
    cmd = [sys.executable, "-m", "pipelines.clients.cds", "--workload", "--env", settings.env]
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)
        said = f"exit {done.returncode}\n{done.stderr[-3000:]}" if done.returncode else ""
    except subprocess.TimeoutExpired:
        said = f"no archive after {timeout_s:g} s"
    if said or not partial.exists():
        partial.unlink(missing_ok=True)
        failed.write_text(said or "the JVM wrote no archive (a JDK without a base CDS archive?)")
        log.warning(
            "cds.failed",
            note=str(failed),
            hint="jobs start without the class archive; remove the note to try again",
        )
        return None
    partial.replace(path)  # atomic: a session sees the whole archive or none
    for old in path.parent.glob("spark-driver-*.jsa"):
        if old != path:
            old.unlink(missing_ok=True)  # another JDK's or jars': never read again
    log.info("cds.written", archive=str(path), seconds=round(time.monotonic() - t0, 1))
    return path


def _digest(settings: Settings) -> str:
    import pyspark

    from pipelines.clients.spark import jars  # spark imports this module

    h = hashlib.sha256()
    home = java_home()  # the JDK the stack runs, as the crontab's JAVA_HOME line names it
    h.update(str(home).encode())
    if home is not None and (release := home / "release").exists():
        h.update(release.read_bytes())
    spark_jars = (Path(pyspark.__file__).parent / "jars").resolve()
    h.update(pyspark.__version__.encode())
    h.update(str(spark_jars).encode())  # the JVM's class path: where, not only which
    h.update("\n".join(sorted(p.name for p in spark_jars.glob("*.jar"))).encode())
    h.update("\n".join(str(j) for j in jars(settings)).encode())
    return h.hexdigest()[:16]


def _workload(settings: Settings) -> None:
    """What a job's driver loads: a Delta table written, merged, read and grouped; a stream's
    micro-batch written into Delta by ``foreachBatch``; a Python UDF. No service needed."""
    import tempfile

    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    from pipelines.clients.spark import build_session

    spark = build_session(settings, "class-archive")
    with tempfile.TemporaryDirectory() as tmp:
        rows = spark.range(1000).select("id", (F.col("id") % 7).alias("k"),
                                        F.col("id").cast("string").alias("s"))  # fmt: skip
        rows.write.format("delta").partitionBy("k").save(f"{tmp}/t")
        table = DeltaTable.forPath(spark, f"{tmp}/t")
        table.alias("a").merge(rows.alias("b"), "a.id = b.id").whenMatchedUpdateAll().execute()
        spark.read.format("delta").load(f"{tmp}/t").groupBy("k").count().collect()
        label = F.udf(lambda v: f"#{v}")
        spark.read.format("delta").load(f"{tmp}/t").select(label("id")).limit(5).collect()

        def batch(frame, _id: int) -> None:
            frame.write.format("delta").mode("append").save(f"{tmp}/s")

        query = (
            spark.readStream.format("rate").option("rowsPerSecond", 50).load()
            .writeStream.foreachBatch(batch)
            .option("checkpointLocation", f"{tmp}/cp")
            .trigger(processingTime="1 second").start()
        )  # fmt: skip
        query.awaitTermination(4)  # a few micro-batches
        query.stop()
    spark.stop()


def main(argv: list[str] | None = None) -> int:
    import argparse

    from pipelines.core import config
    from pipelines.core.exceptions import TarmacError

    parser = argparse.ArgumentParser(
        prog="python -m pipelines.clients.cds",
        description="Build the Spark driver's class archive (class data sharing) for ENV "
        "unless it exists; `stack up` does it. --workload: the run whose classes it holds.",
    )
    parser.add_argument("--env", default=None, help="the parameters' environment (ci, local…)")
    parser.add_argument("--workload", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        settings = config.load(args.env)
        if args.workload:
            _workload(settings)
            return 0
        path = ensure(settings)
    except TarmacError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return exc.exit_code
    print(path if path is not None else "no class archive (see the log)")
    return 0 if path is not None else 1


if __name__ == "__main__":
    sys.exit(main())
