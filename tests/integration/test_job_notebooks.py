"""Each job notebook through the runner (papermill) against the real stack: its ledger document,
its output notebook, and what it wrote. Then the lake those runs wrote, opened the data
scientist's way: :func:`~pipelines.lake.views.lake_session` and
``notebooks/01_explore_lake.ipynb`` (executed by papermill), on the same window.

The window is a morning of 2013 and the weather job runs *after* the stream, so every weather
file lands late: the flights of its hours are recomputed (a new Delta version of their dates),
which is what the lake notebook's time travel shows and what its test checks.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import nbformat
import papermill
import pytest
from nbconvert import HTMLExporter

from pipelines.clients import kafka_io, mongo
from pipelines.clients.spark import COMMIT_LABEL
from pipelines.core.config import REPO_ROOT, Settings
from pipelines.lake import tables, views
from pipelines.lake.tables import Lake
from pipelines.orchestration import runner
from pipelines.sources import replay
from tests.conftest import isolate, write_parameters

pytestmark = pytest.mark.integration

DAY = "2013-01-01"
LATE_WEATHER = ("reference_daily", "flights_stream", "weather_hourly")  # the runs, in order
LAKE_NOTEBOOK = REPO_ROOT / "notebooks" / "01_explore_lake.ipynb"


@pytest.fixture(scope="module")
def landed(stack: Settings, tmp_path_factory) -> Iterator[Settings]:
    """A morning of 2013 replayed into the landing zone and Kafka, for an isolated database;
    its parameters where the kernels read them (``TARMAC_PARAMETERS_DIR``)."""
    unique = uuid.uuid4().hex[:10]
    tmp = tmp_path_factory.mktemp("job_notebooks")
    iso = isolate(stack, tmp, unique)
    iso = iso.model_copy(update={"mongo": iso.mongo.model_copy(
        update={"database": f"{iso.mongo.database}_nb_{unique}"})})  # fmt: skip
    replay.make(iso, "all", progress=False, start="2013-01-01T00:00:00Z",
                end="2013-01-01T12:00:00Z", catch_up=True).run()  # fmt: skip
    write_parameters(iso, tmp / "parameters")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TARMAC_PARAMETERS_DIR", str(tmp / "parameters"))  # for kernels
        yield iso
    mongo.database(iso).client.drop_database(iso.mongo.database)
    kafka_io.delete_topics(iso, [t.name for t in iso.kafka.topics.values()])


@pytest.fixture(scope="module")
def runs(landed: Settings, tmp_path_factory) -> dict[str, runner.RunResult]:
    """Each data job's notebook once through the runner, the weather after the stream."""
    out = tmp_path_factory.mktemp("runs")
    params = {"weather_hourly": {"date": DAY}}
    return {job: runner.run(job, landed.env, params.get(job, {}), outputs=out)
            for job in LATE_WEATHER}  # fmt: skip


def _check_run(stack: Settings, result, job: str) -> dict:
    assert result.status == "success", result.last.get("error")
    doc = mongo.database(stack)["pipeline_runs"].find_one({"_id": result.run_id})
    assert doc["job"] == job and doc["status"] == "success" and doc["error"] is None
    nb = nbformat.read(Path(doc["notebook"]), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in code)
    assert not [o for c in code for o in c.outputs if o.get("output_type") == "error"]
    assert Path(doc["html"]).exists()
    assert doc["rows_in"] == doc["rows_out"] + doc["rows_rejected"]
    return doc


def test_each_job_notebook_runs_through_the_runner(stack, landed, runs) -> None:
    db = mongo.database(landed)

    ref = _check_run(stack, runs["reference_daily"], "reference_daily")
    assert ref["rows_in"] == 16 + 1458 + 3322 and ref["rows_rejected"] == 0
    assert db.airlines.count_documents({}) == 16

    stream = _check_run(stack, runs["flights_stream"], "flights_stream")
    assert stream["rows_in"] > 0 and stream["rows_rejected"] == 0
    assert db.kpi_daily.count_documents({}) > 0

    weather = _check_run(stack, runs["weather_hourly"], "weather_hourly")
    assert weather["rows_in"] == db.weather_hourly.count_documents({}) > 0
    flights = [f for b in db.flights_by_hour.find({}) for f in b["flights"]]
    assert len(flights) > 0
    assert any("weather" in f for f in flights)  # the late weather reached the board


# ------------------------------------------------------------------ the lake, as explored
def _commits(spark, settings: Settings, table: tables.Table) -> list[tuple[int, str]]:
    """(version, the job that made it) of each commit of ``table``, oldest first."""
    uri = Lake.of(spark, settings).uri(table)
    rows = spark.sql(f"DESCRIBE HISTORY delta.`{uri}`").collect()
    return sorted((r.version, r.userMetadata) for r in rows)


def _with_weather(spark, settings: Settings, version: int) -> tuple[int, int]:
    """(flights of DAY, those that know their weather) in ``clean/flights`` at ``version``."""
    frame = spark.read.format("delta").option("versionAsOf", version)
    flights = frame.load(Lake.of(spark, settings).uri(tables.FLIGHTS))
    row = flights.where(f"date = '{DAY}'").selectExpr(
        "count(*) AS n", "count(weather) AS known").first()  # fmt: skip
    return row.n, row.known


def test_lake_session_names_every_written_table_by_layer(landed, runs, capsys) -> None:
    spark = views.lake_session(landed)
    lake = Lake.of(spark, landed)
    written = [t for t in tables.TABLES if lake.exists(t)]
    before = {t.name: lake.version(t) for t in written}
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == views.ui_line(spark)  # the URL, or why none (a session made earlier)
    assert printed[1].startswith(f"lake of env {landed.env}: {landed.lake_root} "
                                 f"({len(written)} tables registered in ")  # fmt: skip
    for layer in views.LAYERS:  # one line per layer, its tables in TABLES' order
        names = [t.name.split("/")[1] for t in written if t.name.startswith(layer + "/")]
        assert f"  {layer:<8} {', '.join(names)}" in printed
    skipped = [views.table_name(t) for t in tables.TABLES if t not in written]
    assert printed[5:] == [f"skipped {n}: not written yet in this lake" for n in skipped]
    assert {"raw.flight_events", "clean.flights", "serving.kpi_hourly"} <= {
        views.table_name(t) for t in written}  # fmt: skip

    for table in written:  # each name reads its table, whole
        name = views.table_name(table)
        assert spark.table(name).count() == lake.read(table).count(), name
    assert spark.table("raw.flight_events").count() == runs["flights_stream"].last["rows_in"]
    # registering committed nothing; again, or after a DROP, it names the same tables
    assert {t.name: lake.version(t) for t in written} == before
    spark.sql("DROP TABLE clean.flights")  # an external table: the lake keeps its files
    again = views.register(spark, landed)
    assert again.names == [views.table_name(t) for t in written] and again.skipped == skipped
    assert {t.name: lake.version(t) for t in written} == before
    # Delta's own SQL on the names: the late weather's commit, and time travel across it
    history = spark.sql("DESCRIBE HISTORY clean.flights").orderBy("version").collect()
    assert [(h.version, h.userMetadata) for h in history] == _commits(spark, landed, tables.FLIGHTS)
    assert [h.userMetadata for h in history] == ["flights_stream", "weather_hourly"]
    known = [spark.sql(f"SELECT count(weather) AS k FROM clean.flights VERSION AS OF {v} "
                       f"WHERE date = '{DAY}'").first().k for v in (0, 1)]  # fmt: skip
    assert known == [_with_weather(spark, landed, v)[1] for v in (0, 1)] and known[0] < known[1]


def test_lake_session_skips_tables_not_written(landed, tmp_path, capsys) -> None:
    empty = landed.model_copy(update={"paths": landed.paths.model_copy(
        update={"lake": str(tmp_path / "lake")})})  # fmt: skip
    spark = views.lake_session(empty)
    assert spark.conf.get(COMMIT_LABEL) == "lab"
    printed = capsys.readouterr().out.splitlines()
    assert printed[1].startswith(f"lake of env {landed.env}: {empty.lake_root} (0 tables ")
    assert printed[2:5] == ["  raw      -", "  clean    -", "  serving  -"]
    assert printed[5:] == [f"skipped {views.table_name(t)}: not written yet in this lake"
                           for t in tables.TABLES]  # fmt: skip
    assert not (tmp_path / "lake").exists()  # nothing written where the lake would be


def test_the_lake_notebook_answers_with_spark_sql_and_time_travel(landed, runs, tmp_path) -> None:
    """``01_explore_lake.ipynb`` under papermill on the window: every cell runs, its charts are
    images in the outputs (so in the static HTML too), and its time travel shows the late
    weather's commit with the counts the lake holds at those versions."""
    from pipelines.clients.spark import build_session

    out = tmp_path / "01_explore_lake.ipynb"
    papermill.execute_notebook(str(LAKE_NOTEBOOK), str(out), cwd=str(LAKE_NOTEBOOK.parent),
                               parameters={"env": landed.env, "day": DAY},
                               progress_bar=False)  # fmt: skip
    nb = nbformat.read(out, as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert re.search(r"^Spark UI: http://\S+:\d+ ", text, re.MULTILINE), text  # a new kernel
    assert f"lake of env {landed.env}: {landed.lake_root} (" in text
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 4  # carriers, hours, weather, the time travel's bands
    html, _ = HTMLExporter().from_notebook_node(nb)
    assert html.count('src="data:image/png;base64,') == 4

    spark = build_session(landed, "tests")
    commits = _commits(spark, landed, tables.FLIGHTS)
    late = max(v for v, job in commits if job == "weather_hourly")
    (n, before), (_, after) = (_with_weather(spark, landed, v) for v in (late - 1, late))
    assert 0 == before < after <= n
    assert (f"time travel on {DAY}: clean.flights version {late - 1} -> {late} (weather_hourly): "
            f"flights with their weather {before} -> {after} of {n}") in text  # fmt: skip


RISK_NOTEBOOK = REPO_ROOT / "notebooks" / "40_delay_risk.ipynb"


def test_the_delay_risk_notebook_trains_saves_and_the_board_carries_the_risk(
    landed, runs, tmp_path
) -> None:
    """``40_delay_risk.ipynb`` under papermill on the window (one morning: split at its median
    time): every cell runs, its charts are images; the model is saved as a new version with
    the metrics of the model and both baselines; the lake path's next refresh of the day puts
    a ``delay_risk`` in [0, 1] on every flight of its board buckets, and the bucket the page
    shows carries it whichever path's document wins."""
    from pyspark.ml import PipelineModel
    from pyspark.sql import functions as F

    from pipelines.clients.spark import build_session
    from pipelines.dashboard import queries
    from pipelines.lake import models
    from pipelines.serving import publish
    from pipelines.serving.readmodels import BOARD

    out = tmp_path / "40_delay_risk.ipynb"
    papermill.execute_notebook(str(RISK_NOTEBOOK), str(out), cwd=str(RISK_NOTEBOOK.parent),
                               parameters={"env": landed.env, "refit": False},
                               progress_bar=False)  # fmt: skip
    nb = nbformat.read(out, as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 4  # late by hour, the signal, ROC + calibration, the weights
    html, _ = HTMLExporter().from_notebook_node(nb)
    assert html.count('src="data:image/png;base64,') == 4
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "the guard refuses a table with the flight's own departure" in text

    spark = build_session(landed, "tests")
    from pipelines.clients.mongo import Mongo

    lake = Lake.of(spark, landed)
    version, path = models.latest_version(lake)
    assert f"model {version} saved at {path}" in text
    assert path == f"{landed.lake_root}/models/delay_risk/{version}"
    assert version.endswith(f"-{DAY}")
    PipelineModel.load(path)  # a model MLlib reads back
    rows = models.metrics(lake).where(F.col("version") == version).collect()
    assert sorted(r.scorer for r in rows) == ["carrier_hour", "model", "overall"]
    for r in rows:
        assert r.n_test > 0 and r.n_train > 0 and 0 <= r.brier <= 1 and r.calibration
        assert r.test_from.startswith(f"{DAY}T")  # one day: split at its median time

    # what the stream's lake path runs after a batch
    publish.refresh(lake, Mongo.of(landed), [DAY], horizon=landed.serving.board_hours)
    db = mongo.database(landed)
    docs = list(db[BOARD].find({"date": DAY}))
    flights = [f for d in docs for f in d["flights"]]
    assert flights and all(0.0 <= f["delay_risk"] <= 1.0 for f in flights)
    assert {f.get("status_rank") for f in flights} >= {1}  # not departed yet ones too
    shown = queries.resolved(db, BOARD, [d["_id"] for d in docs])
    assert all("delay_risk" in f for d in shown for f in d["flights"])
