"""SpindleEstimator and SpindleModel from PySpark on local-cluster[2,1,1024]: a master and two workers in the driver
JVM, each forking an executor JVM of one core, which get Spindle only from spark.jars (as spark-submit --jars ships
it). local[N] cannot test this: its executors are driver threads."""

import pytest
from conftest import INIT
from digits import accuracy, estimator, held_out, training, with_prediction

from spindle.ml import SpindleModel

MASTER = "local-cluster[2,1,1024]"
SPARK_CONF = {"spark.executor.memory": "1024m"}
# Both executor JVMs up before the first test submits a job.
pytestmark = pytest.mark.usefixtures("executors")
# The example's settings reach 97% and more on executor JVMs too (TrainingClusterSuite asks 97%).
ACCURACY = 0.97


def test_two_workers_on_two_executor_jvms_learn_and_the_model_scores(
    spark, digits, tmp_path
):
    train = training(digits)
    export = str(tmp_path / "model")
    fitted = estimator(INIT, export).fit(train)
    summary = fitted.summary
    assert summary.numWorkers == 2 and sum(summary.rowsPerWorker) == train.count()
    epochs = summary.epochLosses
    assert epochs[-1] < epochs[0] / 2, f"loss per epoch {epochs}"
    correct, total = accuracy(with_prediction(fitted.transform(held_out(digits))))
    assert correct / total >= ACCURACY, f"held-out accuracy {correct} of {total}"
    # The export, loaded afresh, scores on the executors as the fitted model does.
    reloaded = SpindleModel.load(export).setInputCols({"features": "features"})
    assert accuracy(with_prediction(reloaded.transform(held_out(digits)))) == (
        correct,
        total,
    )
