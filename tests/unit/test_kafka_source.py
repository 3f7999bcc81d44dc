"""The one Kafka source of the streaming jobs (``clients/spark.read_kafka``), on a recording
stand-in for ``spark.readStream`` (the real source runs in ``tests/integration``)."""

from __future__ import annotations

from typing import Any

from pipelines.clients.spark import read_kafka
from pipelines.core import config


class _Reader:
    def __init__(self) -> None:
        self.options: dict[str, Any] = {}
        self.source = ""

    def format(self, source: str) -> _Reader:
        self.source = source
        return self

    def option(self, key: str, value: Any) -> _Reader:
        self.options[key] = value
        return self

    def load(self) -> dict[str, Any]:
        return {"format": self.source, **self.options}


class _Spark:
    @property
    def readStream(self) -> _Reader:  # noqa: N802 - SparkSession's name
        return _Reader()


SPARK: Any = _Spark()  # a SparkSession as far as read_kafka is concerned


def test_the_source_reads_the_topic_from_the_earliest_offsets_and_fails_on_data_loss() -> None:
    settings = config.load("ci")
    read = read_kafka(SPARK, settings, "tarmac.smoke")
    assert read == {
        "format": "kafka", "kafka.bootstrap.servers": settings.kafka.bootstrap_servers,
        "subscribe": "tarmac.smoke", "startingOffsets": "earliest", "failOnDataLoss": "true",
    }  # fmt: skip


def test_a_batch_size_and_the_source_s_options_are_passed_on() -> None:
    settings = config.load("ci")
    read = read_kafka(SPARK, settings, "t", 200_000, {"kafka.fetch.max.wait.ms": "50"})
    assert read["maxOffsetsPerTrigger"] == 200_000
    assert read["kafka.fetch.max.wait.ms"] == "50" and read["subscribe"] == "t"
