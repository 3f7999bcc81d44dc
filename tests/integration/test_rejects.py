"""Every kind of reject row as Spark builds it (``transform/rejects``): the one shape of
``raw/rejects``, and each document's ``_id`` the hash of source, where and reason
(``serving/documents.reject_docs``), the ids the jobs wrote before the builders were one. No
lake, no MongoDB."""

from __future__ import annotations

import hashlib
from datetime import datetime
from functools import reduce

from pyspark.sql import DataFrame

from pipelines.landing.ingest import FileReject
from pipelines.serving import documents
from pipelines.transform import rejects

AT = datetime(2013, 1, 1, 5, 30)
KAFKA_AT = datetime(2013, 1, 1, 5, 29, 59)


def test_every_kind_of_reject_has_the_one_shape_and_its_id(spark) -> None:
    events = spark.createDataFrame(
        [("tarmac.flights", 0, 7, KAFKA_AT, "x" * 900, "flight_key is missing"),
         ("tarmac.flights", 0, 8, KAFKA_AT, "{}", None)],
        "kafka_topic string, kafka_partition int, kafka_offset long, kafka_timestamp timestamp, "
        "raw string, reject_reason string",
    )  # fmt: skip
    lines = spark.createDataFrame(
        [("w.csv", "EWR,1", "malformed CSV row (wrong number of fields)"), ("w.csv", "JFK", None)],
        "source_file string, raw_line string, reject_reason string",
    )
    values = spark.createDataFrame(
        [("w.csv", "EWR|2013-01-01T05", "wind_speed 999 nulled"), ("w.csv", "JFK|x", None)],
        "source_file string, _id string, value_issues string",
    )
    built = {
        "event": rejects.event_rejects(events, "flights_stream"),
        "line": rejects.line_rejects(lines, "weather_hourly", ["source_file", "raw_line"], AT),
        "value": rejects.value_rejects(values, "weather_hourly", AT),
        "file": rejects.file_rows(spark, [FileReject("weather_hourly", "empty", "weather/e.csv")],
                                  AT),
    }  # fmt: skip
    shape = list(zip(rejects.REJECT_COLUMNS, rejects.REJECT_TYPES, strict=True))
    for kind, frame in built.items():
        assert [(f.name, f.dataType.simpleString()) for f in frame.schema] == shape, kind
    rows = {kind: [tuple(r) for r in frame.collect()] for kind, frame in built.items()}
    assert rows == {
        "event": [("flights_stream", "flight_key is missing", "tarmac.flights:0:7", "row",
                   "x" * 500, KAFKA_AT)],
        "line": [("weather_hourly", "malformed CSV row (wrong number of fields)",
                  "w.csv:EWR,1", "row", "EWR,1", AT)],
        "value": [("weather_hourly", "wind_speed 999 nulled", "w.csv:EWR|2013-01-01T05",
                   "value", "EWR|2013-01-01T05", AT)],
        "file": [("weather_hourly", "empty", "weather/e.csv", "file", "", AT)],
    }  # fmt: skip
    docs = documents.reject_docs(reduce(DataFrame.unionByName, built.values())).collect()
    for doc in docs:
        key = "|".join((doc["source"], doc["where"], doc["reason"]))
        assert doc["_id"] == hashlib.sha1(key.encode()).hexdigest()[:24]
    assert len({d["_id"] for d in docs}) == 4
