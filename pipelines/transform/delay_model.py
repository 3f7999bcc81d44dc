"""The delay-risk model (issue 19, part 4): a Spark MLlib pipeline over the features of
:mod:`~pipelines.transform.delay_features`, its time-split evaluation and its two baselines.
Pure: frames in, frames / models / numbers out; saving is :mod:`pipelines.lake.models`.

- **The model** (:func:`pipeline`): the categorical features (carrier, origin, destination,
  local hour, weekday) indexed and one-hot encoded (a value never seen in training: the zero
  vector), assembled with the numeric ones, and a logistic regression (L2 ``REG_PARAM``, fixed
  up front: nothing is tuned on the test days). Its probability of class 1 is ``delay_risk``.
- **The split** (:func:`split`): train on the flights scheduled before local date ``test_from``,
  test on those from it on. Later days only: the model never sees a day it is judged on.
- **The baselines** (:func:`baselines`), learnt on the training days only: the overall rate of
  late departures; the rate of the flight's carrier at its scheduled local hour, smoothed
  towards the overall rate (``SMOOTHING`` pseudo-flights) so that a thin cell is not 0 or 1.
- **The judgement** (:func:`evaluate`, :func:`calibration`): ROC AUC (ranking), Brier score
  (mean squared error of the probability: ranking *and* calibration), and a calibration table
  (predicted against observed per band of predicted probability).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.ml.feature import Bucketizer, OneHotEncoder, StringIndexer, VectorAssembler
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pipelines.core.domain import LOCAL_TZ
from pipelines.transform.delay_features import CATEGORICAL, NUMERIC

REG_PARAM = 0.001  # L2, fixed before any evaluation (never tuned on the test days)
MAX_ITER = 100
SMOOTHING = 20.0  # carrier x hour baseline: pseudo-flights at the overall rate
CALIBRATION_BINS = 10  # bands of predicted probability: [0, 0.1), [0.1, 0.2) ...
SCORES = ("delay_risk", "p_overall", "p_carrier_hour")  # the model's, the baselines'
LABEL = "late"
# delays (min) whose effect is not linear: each also enters as bands of minutes, one-hot
BANDED = ("dep_delay_1h", "dep_delay_3h", "day_delay", "carrier_delay_3h", "tail_prev_delay")
BANDS = [-math.inf, 0.0, 5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, math.inf]


def pipeline(reg_param: float = REG_PARAM, numeric: tuple[str, ...] = NUMERIC) -> Pipeline:
    """The untrained MLlib pipeline: index, one-hot, assemble (``numeric``: the numeric
    features used, default all), logistic regression."""
    idx = [f"{c}_idx" for c in CATEGORICAL]
    banded = [c for c in BANDED if c in numeric]
    band = [f"{c}_band" for c in banded]
    hot = [f"{c}_vec" for c in (*CATEGORICAL, *banded)]
    return Pipeline(stages=[
        StringIndexer(inputCols=list(CATEGORICAL), outputCols=idx, handleInvalid="keep",
                      stringOrderType="frequencyDesc"),
        Bucketizer(inputCols=banded, outputCols=band, splitsArray=[BANDS] * len(banded)),
        OneHotEncoder(inputCols=[*idx, *band], outputCols=hot, handleInvalid="keep"),
        VectorAssembler(inputCols=[*hot, *numeric], outputCol="features"),
        LogisticRegression(labelCol=LABEL, featuresCol="features", regParam=reg_param,
                           elasticNetParam=0.0, maxIter=MAX_ITER, probabilityCol="probability"),
    ])  # fmt: skip


def _typed(frame: DataFrame) -> DataFrame:
    """Categorical features as strings (the indexer's input), numeric ones as doubles."""
    return frame.select(
        *[c for c in frame.columns if c not in CATEGORICAL and c not in NUMERIC],
        *[F.col(c).cast("string").alias(c) for c in CATEGORICAL],
        *[F.col(c).cast("double").alias(c) for c in NUMERIC],
    )


def train(
    labelled: DataFrame, reg_param: float = REG_PARAM, numeric: tuple[str, ...] = NUMERIC
) -> PipelineModel:
    """Fit :func:`pipeline` on labelled feature rows (``late`` 0/1)."""
    return pipeline(reg_param, numeric).fit(_typed(labelled))


def score(model: PipelineModel, features: DataFrame) -> DataFrame:
    """``features`` with ``delay_risk``: the model's probability that the departure is more
    than 15 min late (a double in [0, 1]); the model's own columns dropped."""
    out = model.transform(_typed(features))
    risk = vector_to_array("probability")[1]
    keep = [c for c in features.columns]
    return out.select(*keep, risk.alias("delay_risk"))


def local_date(column: str = "sched_dep_utc") -> F.Column:
    """The New York date of a UTC time column."""
    return F.to_date(F.from_utc_timestamp(column, LOCAL_TZ))


def split(labelled: DataFrame, test_from: str) -> tuple[DataFrame, DataFrame]:
    """(train, test): flights scheduled before ``test_from``, a New York local date
    (``YYYY-MM-DD``: from its midnight) or time (``YYYY-MM-DDTHH:MM``: a window of a single
    day split by hour), and from it on."""
    local = F.from_utc_timestamp("sched_dep_utc", LOCAL_TZ)
    before = local < F.to_timestamp(F.lit(test_from.replace("T", " ")))
    return labelled.where(before), labelled.where(~before)


@dataclass(frozen=True)
class Baselines:
    """What the baselines learnt from the training days: the overall rate, and the smoothed
    rate of each (carrier, local hour) as a frame (``carrier``, ``local_hour``, ``p_cell``)."""

    overall: float
    cells: DataFrame

    def apply(self, frame: DataFrame) -> DataFrame:
        """``frame`` with ``p_overall`` and ``p_carrier_hour`` (a cell never seen: overall)."""
        cells = self.cells.select(
            F.col("carrier").cast("string").alias("_c"),
            F.col("local_hour").cast("string").alias("_h"),
            "p_cell",
        )
        joined = frame.join(
            F.broadcast(cells),
            (F.col("carrier").cast("string") == F.col("_c"))
            & (F.col("local_hour").cast("string") == F.col("_h")),
            "left",
        )
        return joined.select(
            *frame.columns,
            F.lit(self.overall).alias("p_overall"),
            F.coalesce(F.col("p_cell"), F.lit(self.overall)).alias("p_carrier_hour"),
        )


def baselines(train_: DataFrame) -> Baselines:
    """The two baselines, learnt on ``train_`` (labelled rows) only."""
    overall = float(train_.agg(F.avg(LABEL)).first()[0] or 0.0)
    cells = (
        train_.groupBy("carrier", "local_hour")
        .agg(F.sum(LABEL).alias("k"), F.count(F.lit(1)).alias("n"))
        .select("carrier", "local_hour",
                ((F.col("k") + F.lit(SMOOTHING * overall)) / (F.col("n") + F.lit(SMOOTHING)))
                .alias("p_cell"))
    )  # fmt: skip
    return Baselines(overall, cells.localCheckpoint())


def evaluate(scored: DataFrame, column: str) -> dict[str, float]:
    """ROC AUC and Brier score of the probability ``column`` against ``late``, with the
    rows and the observed rate. AUC is NaN when the rows hold one class only."""
    row = scored.agg(
        F.count(F.lit(1)).alias("n"),
        F.avg(LABEL).alias("rate"),
        F.avg((F.col(column) - F.col(LABEL)) ** 2).alias("brier"),
        F.countDistinct(LABEL).alias("classes"),
    ).first()
    n = int(row["n"])
    auc = math.nan
    if n and row["classes"] == 2:
        evaluator = BinaryClassificationEvaluator(
            rawPredictionCol=column, labelCol=LABEL, metricName="areaUnderROC"
        )
        auc = float(evaluator.evaluate(scored.select(F.col(column).cast("double"), LABEL)))
    return {
        "n": n,
        "rate": float(row["rate"]) if n else math.nan,
        "auc": auc,
        "brier": float(row["brier"]) if n else math.nan,
    }


def calibration(scored: DataFrame, column: str, bins: int = CALIBRATION_BINS) -> list[dict]:
    """Per band of predicted probability (``bins`` equal bands of [0, 1]): the flights, the
    mean predicted probability and the observed rate of late departures, lowest band first;
    empty bands left out. A calibrated model has predicted ~ observed in every band."""
    band = F.least(F.floor(F.col(column) * bins), F.lit(bins - 1)).cast("int")
    rows = (
        scored.groupBy(band.alias("band"))
        .agg(F.count(F.lit(1)).alias("n"), F.avg(column).alias("predicted"),
             F.avg(LABEL).alias("observed"))
        .orderBy("band").collect()
    )  # fmt: skip
    return [
        {"band": f"{r['band'] / bins:.1f}-{(r['band'] + 1) / bins:.1f}", "n": int(r["n"]),
         "predicted": float(r["predicted"]), "observed": float(r["observed"])}
        for r in rows
    ]  # fmt: skip
