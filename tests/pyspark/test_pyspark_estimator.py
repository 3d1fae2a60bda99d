"""SpindleEstimator from PySpark on local[2]: two synchronous workers learn the digits, and the fitted model keeps the
export and the serving inputs, not the estimator's untrained model and labels."""

import time

import pytest
from conftest import INIT
from digits import EPOCHS, accuracy, estimator, held_out, training, with_prediction
from py4j.protocol import Py4JJavaError

from spindle.ml import SpindleModel, StepSummary

MASTER = "local[2]"
# The example's settings (30 epochs of 32 rows per worker, seed 1) reach 98.2% (442 of 450) here, as they reach 97%
# and more in DigitsTraining and TrainingClusterSuite, which asks 97%.
ACCURACY = 0.97


@pytest.fixture(scope="module")
def fitted(spark, digits, tmp_path_factory):
    export = tmp_path_factory.mktemp("export") / "model"
    called = time.time() * 1000
    model = estimator(INIT, str(export)).fit(training(digits))
    assert called <= model.summary.firstStepDoneMillis <= time.time() * 1000
    return model, str(export)


def test_two_workers_learn_the_digits(digits, fitted):
    model, _ = fitted
    summary = model.summary
    assert model.hasSummary and summary.numWorkers == 2
    rows = summary.rowsPerWorker
    assert sum(rows) == training(digits).count() and min(rows) > 600, (
        f"rows per worker {rows}"
    )
    epochs = summary.epochLosses
    assert len(epochs) == EPOCHS
    assert epochs[-1] < epochs[0] / 2, f"loss per epoch {epochs}"
    correct, total = accuracy(with_prediction(model.transform(held_out(digits))))
    assert correct / total >= ACCURACY, f"held-out accuracy {correct} of {total}"


def test_the_summary_mirrors_the_jvm_one(fitted):
    summary = fitted[0].summary
    steps, losses = summary.steps, summary.lossHistory
    assert len(steps) == len(losses) == summary._java_obj.steps().length()
    assert all(isinstance(s, StepSummary) for s in steps)
    assert [s.loss for s in steps] == losses
    assert [s.step for s in steps] == sorted(s.step for s in steps)
    assert {s.epoch for s in steps} == set(range(1, EPOCHS + 1))
    assert summary.examplesPerSecond > 0 and summary.rowsFedPerSecond > 0
    assert (
        len(summary.feedSecondsPerWorker) == len(summary.feedWaitSecondsPerWorker) == 2
    )
    # The MLP's trainable variables (64 x 32, 32, 32 x 10, 10), read through its variables signature.
    assert {k: v.size for k, v in summary.variables.items()} == {
        "var_000": 2048,
        "var_001": 32,
        "var_002": 320,
        "var_003": 10,
    }
    assert summary.variables["var_003"].dtype.name == "float32"


def test_the_fitted_model_scores_its_export_from_the_serving_inputs(fitted):
    model, export = fitted
    assert isinstance(model, SpindleModel)
    assert model.getModelPath() == export == model.summary.exportPath
    assert model.getInputCols() == {
        "features": "features"
    }  # no labels: the serving signature has none
    assert model.getOutputCols() == {"probabilities": "probabilities"}
    assert model.getBatchSize() == 32 and not model.hasParam("epochs")


def test_a_missing_labels_column_fails_before_training_naming_it(
    spark, digits, tmp_path
):
    bad = estimator(INIT, str(tmp_path / "model")).setInputCols(
        {"features": "features", "labels": "no_such_label"}
    )
    with pytest.raises(Py4JJavaError) as failure:
        bad.fit(training(digits))
    message = str(failure.value)
    assert "io.spindle.SpindleInputException" in message and "no_such_label" in message
