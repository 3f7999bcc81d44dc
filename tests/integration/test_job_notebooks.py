"""Each job notebook through the runner (papermill) against the real stack: its ledger document,
its output notebook, and what it wrote."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from pipelines.core.config import Settings
from pipelines.orchestration import runner
from pipelines.sources import replay
from pipelines.stack import mongo
from tests.conftest import write_parameters

pytestmark = pytest.mark.integration


@pytest.fixture
def landed(iso: Settings, tmp_path, monkeypatch, unique) -> Settings:
    """A morning of 2013 replayed into the landing zone and Kafka, for an isolated database."""
    iso = iso.model_copy(update={"mongo": iso.mongo.model_copy(
        update={"database": f"{iso.mongo.database}_nb_{unique}"})})  # fmt: skip
    replay.make(iso, "all", progress=False, start="2013-01-01T00:00:00Z",
                end="2013-01-01T12:00:00Z", catch_up=True).run()  # fmt: skip
    write_parameters(iso, tmp_path / "parameters")
    monkeypatch.setenv("TARMAC_PARAMETERS_DIR", str(tmp_path / "parameters"))  # for kernels
    yield iso
    mongo.database(iso).client.drop_database(iso.mongo.database)


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


def test_each_job_notebook_runs_through_the_runner(stack, landed, tmp_path) -> None:
    out = tmp_path / "outputs"
    db = mongo.database(landed)

    ref = _check_run(stack, runner.run("reference_daily", landed.env, {}, outputs=out),
                     "reference_daily")  # fmt: skip
    assert ref["rows_in"] == 16 + 1458 + 3322 and ref["rows_rejected"] == 0
    assert db.airlines.count_documents({}) == 16

    weather = _check_run(stack, runner.run("weather_hourly", landed.env, {"date": "2013-01-01"},
                                           outputs=out), "weather_hourly")  # fmt: skip
    assert weather["rows_in"] == db.weather_hourly.count_documents({}) > 0

    stream = _check_run(stack, runner.run("flights_stream", landed.env, {}, outputs=out),
                        "flights_stream")  # fmt: skip
    assert stream["rows_in"] > 0 and stream["rows_rejected"] == 0
    flights = [f for b in db.flights_by_hour.find({}) for f in b["flights"]]
    assert len(flights) > 0 and db.kpi_daily.count_documents({}) > 0
    assert any("weather" in f for f in flights)
