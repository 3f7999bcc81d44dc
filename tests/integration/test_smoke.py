"""Smoke path through the real stack: kafka-python -> Kafka -> Spark -> MongoDB, exactly N."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pipelines.clients import mongo
from pipelines.core import config
from pipelines.jobs import smoke

pytestmark = pytest.mark.integration

N = 500


def test_n_messages_land_once_and_a_rerun_reads_nothing(stack, spark, unique, tmp_path) -> None:
    topic, coll = f"tarmac.smoke.{unique}", f"smoke_{unique}"
    smoke.produce(stack, N, tag=unique, topic=topic)

    first = smoke.run(stack, topic, coll, tmp_path / "ckpt")
    assert first.rows_read == N
    assert first.documents == N

    second = smoke.run(stack, topic, coll, tmp_path / "ckpt")
    assert second.rows_read == 0
    assert second.documents == N

    docs = mongo.database(stack)[coll]
    assert sorted(d["seq"] for d in docs.find({}, {"seq": 1})) == list(range(N))
    docs.drop()


def test_duplicates_in_the_topic_do_not_duplicate_documents(stack, spark, unique, tmp_path):
    topic, coll = f"tarmac.smoke.{unique}", f"smoke_{unique}"
    smoke.produce(stack, 100, tag=unique, topic=topic)
    smoke.produce(stack, 100, tag=unique, topic=topic)  # same ids sent again
    result = smoke.run(stack, topic, coll, tmp_path / "ckpt")
    assert result.rows_read == 200
    assert result.documents == 100
    mongo.database(stack)[coll].drop()


def test_spark_submit_runs_the_same_job_with_the_same_jars(stack, unique, tmp_path) -> None:
    topic, coll = f"tarmac.smoke.{unique}", f"smoke_{unique}"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines",
            "submit",
            "smoke",
            "--env",
            stack.env,
            "-p",
            "messages=50",
            "-p",
            f"topic={topic}",
            "-p",
            f"collection={coll}",
            "-p",
            f"checkpoint={tmp_path / 'ckpt'}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    result = json.loads(res.stdout.strip().splitlines()[-1])
    keys = ("batches", "rows_in", "accepted", "rejected", "documents_in_collection")
    assert {k: result[k] for k in keys} == dict(zip(keys, (1, 50, 50, 0, 50), strict=True))
    mongo.database(config.load(stack.env))[coll].drop()
