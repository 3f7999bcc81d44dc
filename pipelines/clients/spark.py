"""The one place a SparkSession is built, for every job, notebook and spark-submit run, and the
one Kafka source of the streaming jobs."""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Mapping
from pathlib import Path

import structlog
from pyspark.sql import DataFrame, SparkSession

from pipelines.clients import cds
from pipelines.clients.jars import RESOURCES, delta_jars, spark_kafka_jars
from pipelines.core import logs
from pipelines.core.config import Settings

# pyspark 4.2 warns that pandas 3 is "not yet fully supported"; we use pandas only at the edges.
warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")


log = structlog.get_logger(__name__)

# a Delta SQL conf (modifiable: a reused session takes the new job's name)
COMMIT_LABEL = "spark.databricks.delta.commitInfo.userMetadata"
CODEGEN_CACHE = 1000  # generated classes a session keeps compiled (Spark's default: 100)


def session_conf(settings: Settings) -> dict[str, str]:
    """Spark configuration of ``settings`` (also rendered as ``--conf`` for spark-submit):
    Tarmac's, then the parameters' ``spark.conf`` map over it; the driver's class archive
    (:mod:`pipelines.clients.cds`) added to the driver's JVM options when there is one."""
    conf = {**_tarmac_conf(settings), **settings.spark.conf}
    if extra := cds.java_options(settings):
        key = "spark.driver.extraJavaOptions"
        conf[key] = f"{conf.get(key, '')} {extra}".strip()
    return conf


def _tarmac_conf(settings: Settings) -> dict[str, str]:
    return {**_driver_address(settings), **_common_conf(settings)}


def _driver_address(settings: Settings) -> dict[str, str]:
    """Where the executors reach the driver: by default this machine's loopback
    (``SPARK_LOCAL_IP``, see :func:`build_session`); with ``spark.driver_host`` (a container
    in compose), that name, the driver listening on every interface of its container."""
    host = settings.spark.driver_host
    if not host:
        return {}
    return {"spark.driver.host": host, "spark.driver.bindAddress": "0.0.0.0"}


def _common_conf(settings: Settings) -> dict[str, str]:
    return {
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(settings.spark.shuffle_partitions),
        "spark.driver.memory": settings.spark.driver_memory,
        "spark.ui.enabled": str(settings.spark.ui).lower(),
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.streaming.forceDeleteTempCheckpointLocation": "true",
        # generated classes kept: Spark's default of 100 is less than one lake refresh needs
        # (a refresh of one date compiled ~260 classes again every time, then the JIT compiled
        # them again): 1,000 keeps them all, 4 compiles a refresh. Measured on a lake path's
        # refresh of one date, 2 cores, rounds 2 to 4 of a session: 18.9 -> 14.8, 16.5 ->
        # 14.1, 14.0 -> 13.4 CPU-s (the JIT still warming up on both sides)
        "spark.sql.codegen.cache.maxEntries": str(CODEGEN_CACHE),
        # Python workers on every executor turn timestamps into naive local times: make that
        # local time UTC on the executors too, so what reaches MongoDB is UTC on any cluster
        "spark.executorEnv.TZ": "UTC",
        "spark.executorEnv.PYSPARK_PYTHON": os.environ.get("PYSPARK_PYTHON", sys.executable),
        # Delta Lake: the lakehouse of docs/data-model.md
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.databricks.delta.snapshotPartitions": "2",
        # the log's retention and checkpoint interval of every table this session creates
        **{
            f"spark.databricks.delta.properties.defaults.{k.removeprefix('delta.')}": v
            for k, v in settings.spark.delta_table_properties().items()
        },
        # when the stream's two paths share one application (a run that is not long-lived),
        # the live board's jobs take the next free task slot (pool "board"), the lake path's
        # recomputes the rest (pool "lake")
        "spark.scheduler.mode": "FAIR",
        "spark.scheduler.allocation.file": str(RESOURCES / "fairscheduler.xml"),
    }


def use_pool(spark: SparkSession, pool: str) -> None:
    """Run the Spark jobs this thread starts from now on in FAIR pool ``pool`` (``board``
    or ``lake``, see ``clients/resources/fairscheduler.xml``)."""
    spark.sparkContext.setLocalProperty("spark.scheduler.pool", pool)


def read_kafka(
    spark: SparkSession, settings: Settings, topic: str, max_offsets: int | None = None,
    options: Mapping[str, str] | None = None,
) -> DataFrame:  # fmt: skip
    """Kafka ``topic`` as a streaming frame (Spark's Kafka source: ``value`` bytes and the
    record's coordinates), the earliest offsets on a first start (then the query's
    checkpoint's), failing on data loss; at most ``max_offsets`` records a micro-batch, and the
    source's ``options`` besides (e.g. ``kafka.fetch.max.wait.ms``)."""
    reader = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", settings.kafka.bootstrap_servers)
        .option("subscribe", topic)
        .option("startingOffsets", "earliest")
        .option("failOnDataLoss", "true")
    )
    if max_offsets:
        reader = reader.option("maxOffsetsPerTrigger", max_offsets)
    for key, value in (options or {}).items():
        reader = reader.option(key, value)
    return reader.load()


def jars(settings: Settings) -> list[Path]:
    """Jars every session needs: Spark's Kafka connector and Delta Lake, both of the installed
    pyspark version."""
    return spark_kafka_jars(settings) + delta_jars(settings)


def build_session(settings: Settings, app: str) -> SparkSession:
    """Create (or reuse, under spark-submit) the session of ``app`` for ``settings``; the
    Delta commits it makes from now on are labelled ``app`` (:data:`COMMIT_LABEL`)."""
    if not settings.spark.driver_host:  # one machine: nothing listens beyond the loopback
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # Spark hands timestamps to Python as naive local times: make local time UTC, here and in
    # the Python workers (they inherit the environment), so what reaches MongoDB is UTC.
    os.environ["TZ"] = "UTC"
    time.tzset()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(f"tarmac-{app}")
    if "PYSPARK_GATEWAY_PORT" not in os.environ:  # under spark-submit, its --master decides
        builder = builder.master(settings.spark.master)
    for key, value in session_conf(settings).items():
        builder = builder.config(key, value)
    builder = builder.config("spark.jars", ",".join(str(j) for j in jars(settings)))
    # every Delta commit says which job made it (``DESCRIBE HISTORY``'s userMetadata column):
    # the lake notebook finds the version a late weather file wrote by it
    builder = builder.config(COMMIT_LABEL, app)
    with logs.quiet_stderr(logs.log_path().with_name(f"spark-{app}.log")):
        spark = builder.getOrCreate()  # the JVM's warnings: to that file
    spark.sparkContext.setLogLevel("WARN")
    if url := spark.sparkContext.uiWebUrl:  # asked for (spark.ui, $TARMAC_SPARK_UI): say where
        log.info("spark.ui", app=app, url=url)
    return spark


def spark_submit(settings: Settings) -> list[str]:
    """``spark-submit --master ... --jars ... --driver-memory ... --conf ...``: the options every
    submitted job gets (the same jars and conf as :func:`build_session`), before its script."""
    conf = session_conf(settings)
    cmd = [
        str(Path(sys.executable).parent / "spark-submit"),
        "--master",
        settings.spark.master,
        "--jars",
        ",".join(str(j) for j in jars(settings)),
        "--driver-memory",
        conf["spark.driver.memory"],
    ]
    for key, value in conf.items():
        cmd += ["--conf", f"{key}={value}"]
    return cmd


def submit_command(settings: Settings, jobs: str | list[str], params: list[str]) -> list[str]:
    """The spark-submit command line of ``jobs`` (one application running them in order;
    ``params``: ``name=value`` strings for each): the one entry point
    ``pipelines/jobs/submit.py``, with the same jars and conf as the notebooks."""
    script = Path(__file__).resolve().parents[1] / "jobs" / "submit.py"
    names = [jobs] if isinstance(jobs, str) else list(jobs)
    return spark_submit(settings) + [
        str(script), *names, "--env", settings.env, *(f"-p{p}" for p in params)
    ]  # fmt: skip
