"""A Spark Connect client that scores and trains with Spindle's stages on a Connect server (DistributionSuite).

    connect_client.py sc://127.0.0.1:PORT DIGITS_CSV_GZ TRAINED_MODEL INIT_MODEL

Spark 4's ML-on-Connect sends a stage as its JVM class name, uid and params; the server makes it through
ServiceLoader (Spindle's jar registers both stages) and the uid constructor. The Python classes below are that
name and the params this client sets: Connect carries scalar, string and array params, not Map ones, so the columns
are named as the signature's inputs (Spindle's default mapping) instead of set with inputCols.
Prints 'CONNECT scored C of N' for the trained model and 'CONNECT fitted scored C of N' after fitting.
"""

import sys

from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.wrapper import JavaEstimator, JavaModel, JavaTransformer
from pyspark.sql import SparkSession
from pyspark.sql import functions as F


class _SpindleParams(Params):
    modelPath = Param(Params._dummy(), "modelPath", "SavedModel directory", TypeConverters.toString)
    batchSize = Param(Params._dummy(), "batchSize", "rows per TensorFlow run", TypeConverters.toInt)


class SpindleModel(JavaTransformer, _SpindleParams):
    """io.spindle.SpindleModel made by the client: the server builds it from its name, uid and params per transform."""

    def __init__(self):
        super().__init__()
        self._java_obj = self._new_java_obj("io.spindle.SpindleModel", self.uid)


class FittedSpindleModel(JavaModel):
    """The io.spindle.SpindleModel a fit returned: it stays on the server, the client holds a reference to it. No
    params of its own here: fit copies the estimator's params onto its model, and the estimator's modelPath (the
    untrained SavedModel) would replace the fitted model's (the export)."""


class SpindleEstimator(JavaEstimator, _SpindleParams):
    epochs = Param(Params._dummy(), "epochs", "passes over the data", TypeConverters.toInt)
    numWorkers = Param(Params._dummy(), "numWorkers", "training tasks", TypeConverters.toInt)

    def __init__(self):
        super().__init__()
        self._java_obj = self._new_java_obj("io.spindle.SpindleEstimator", self.uid)

    def _create_model(self, java_model):
        return FittedSpindleModel(java_model)


def accuracy(scored):
    p = F.col("probabilities")
    predicted = scored.withColumn("prediction", F.array_position(p, F.array_max(p)) - 1)
    return predicted.filter(F.col("prediction") == F.col("labels")).count(), predicted.count()


def main(url, csv, trained, init):
    spark = SparkSession.builder.remote(url).getOrCreate()
    raw = spark.read.csv(csv).coalesce(1).withColumn("index", F.monotonically_increasing_id())
    pixels = [F.col(f"_c{i}").cast("float") / F.lit(16.0) for i in range(64)]
    digits = raw.select(
        "index", F.array(*pixels).cast("array<float>").alias("features"), F.col("_c64").cast("long").alias("labels")
    )
    held_out, training = digits.filter(F.col("index") % 4 == 0), digits.filter(F.col("index") % 4 != 0)

    model = SpindleModel()
    model._set(modelPath=trained)
    correct, total = accuracy(model.transform(held_out))
    print(f"CONNECT scored {correct} of {total}", flush=True)

    estimator = SpindleEstimator()
    estimator._set(modelPath=init, epochs=5, batchSize=32, numWorkers=2)
    fitted = estimator.fit(training)
    correct, total = accuracy(fitted.transform(held_out))
    print(f"CONNECT fitted scored {correct} of {total}", flush=True)
    spark.stop()


if __name__ == "__main__":
    main(*sys.argv[1:])
