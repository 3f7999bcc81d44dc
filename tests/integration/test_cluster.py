"""A job submitted with spark-submit to a real standalone cluster runs on both workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.cluster_fixture import spark_cluster  # noqa: F401

pytestmark = pytest.mark.integration

JOB = textwrap.dedent(
    """
    import json
    import os

    from pyspark.sql import SparkSession

    spark = SparkSession.builder.appName("tarmac-cluster-test").getOrCreate()


    def partition(rows):
        # the Python worker's pid, and its cwd: the executor's folder under its worker's work dir
        yield {"sum": sum(rows), "pid": os.getpid(), "cwd": os.getcwd()}


    parts = spark.sparkContext.parallelize(range(1000), 4).mapPartitions(partition).collect()
    print("RESULT " + json.dumps({"master": spark.sparkContext.master, "parts": parts}))
    spark.stop()
    """
)


def test_spark_submit_runs_tasks_on_both_workers(
    spark_cluster: str,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
) -> None:
    script = tmp_path / "sum_job.py"
    script.write_text(JOB)
    spark_submit = Path(sys.executable).parent / "spark-submit"
    cmd = [str(spark_submit), "--master", spark_cluster]
    # wait for both executors (1 core each) before the first task is scheduled
    for conf in (
        "spark.cores.max=2",
        "spark.scheduler.minRegisteredResourcesRatio=1.0",
        "spark.scheduler.maxRegisteredResourcesWaitingTime=60s",
        "spark.ui.enabled=false",
    ):
        cmd += ["--conf", conf]
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable}
    env["PYSPARK_DRIVER_PYTHON"] = sys.executable
    res = subprocess.run([*cmd, str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    line = next(x for x in res.stdout.splitlines() if x.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))

    assert result["master"] == spark_cluster
    assert sum(p["sum"] for p in result["parts"]) == sum(range(1000)) == 499500
    # two executor processes (a cwd is <work-dir>/<app>/<executor>), one on each worker
    executors = {Path(p["cwd"]) for p in result["parts"]}
    assert len(executors) == 2, executors
    assert {e.parent.parent.name for e in executors} == {"worker-1", "worker-2"}
    assert len({p["pid"] for p in result["parts"]}) >= 2
