"""Validation and early stopping from PySpark on local[2]: the Params and the summary's epochs cross py4j, and the best
epoch's figures are Keras's own over the held-out rows (tests/python/evaluate_digits.py, as in ValidationSuite)."""

import os
import subprocess
import sys

import pytest
from conftest import FIXTURES, ROOT
from digits import BATCH_SIZE, held_out, training
from py4j.protocol import Py4JJavaError

from spindle.ml import EpochSummary, SpindleEstimator

MASTER = "local[2]"
METRICS_INIT = os.path.join(FIXTURES, "digits_mlp_metrics_init")  # the digits MLP, exported with accuracy and top3


def estimator(export) -> SpindleEstimator:
    return SpindleEstimator(
        modelPath=METRICS_INIT,
        inputCols={"features": "features", "labels": "label"},
        exportPath=str(export),
        numWorkers=2,
        batchSize=BATCH_SIZE,
        seed=1,
    )


def keras_figures(export: str) -> dict[str, float]:
    script = os.path.join(ROOT, "tests", "python", "evaluate_digits.py")
    lines = subprocess.run([sys.executable, script, export], check=True, capture_output=True, text=True).stdout
    return {f"val_{name}": float(value) for name, value in (line.split() for line in lines.splitlines())}


def test_early_stopping_exports_the_best_epoch_whose_figures_are_keras_own(spark, digits, tmp_path):
    export = tmp_path / "model"
    stopper = (
        estimator(export)
        .setEpochs(40)
        .setValidationData(held_out(digits))
        .setEarlyStopping("val_loss", 2, 0.02)
    )
    assert stopper.getEarlyStoppingMetric() == "val_loss" and stopper.getEarlyStoppingPatience() == 2
    assert stopper.getValidationData() is not None
    summary = stopper.fit(training(digits)).summary
    epochs = summary.epochs
    assert all(isinstance(e, EpochSummary) for e in epochs)
    assert [e.epoch for e in epochs] == list(range(1, len(epochs) + 1))
    assert summary.stoppedEarly and len(epochs) == summary.bestEpoch + 3, f"best {summary.bestEpoch} of {len(epochs)}"
    assert summary.validationHistory("val_loss") == [e.validation["val_loss"] for e in epochs]
    best = epochs[summary.bestEpoch - 1].validation
    keras = keras_figures(str(export))
    assert best.keys() == keras.keys() == {"val_loss", "val_accuracy", "val_top3"}
    for name, want in keras.items():
        assert abs(best[name] - want) <= 1e-5 * max(1.0, abs(want)), f"{name}: {best} vs Keras {keras}"


def test_validation_fraction_and_its_defaults_cross_py4j(spark, digits, tmp_path):
    plain = estimator(tmp_path / "unused")
    assert plain.getValidationFraction() == 0.0 and plain.getEarlyStoppingMode() == "auto"
    assert not plain.isDefined(plain.earlyStoppingMetric)
    summary = plain.setEpochs(2).setValidationFraction(0.25).fit(training(digits)).summary
    assert [set(e.validation) for e in summary.epochs] == [{"val_loss", "val_accuracy", "val_top3"}] * 2
    assert summary.bestEpoch == 0 and not summary.stoppedEarly
    assert summary.workerChanges == []  # no worker lost
    (attempt,) = summary.attempts
    assert (attempt.number, attempt.ended, attempt.resumedFrom) == (1, "completed", "")
    assert attempt.stepsDone == len(summary.steps) and attempt.endMillis >= attempt.startMillis
    total = training(digits).count()
    assert 0.65 * total < sum(summary.rowsPerWorker) < 0.85 * total


def test_an_unknown_early_stopping_metric_fails_naming_the_known_ones(spark, digits, tmp_path):
    bad = estimator(tmp_path / "unused").setValidationFraction(0.2).setEarlyStopping("val_auc", 1, 0.0)
    with pytest.raises(Py4JJavaError) as failure:
        bad.fit(training(digits))
    text = str(failure.value.java_exception)
    assert "SpindleInputException" in text and "'val_auc'" in text and "val_accuracy" in text
