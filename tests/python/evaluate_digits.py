"""Evaluates a digits SavedModel on the held-out digits rows in one process, with Keras's own metrics, for the JVM
suites to compare Spindle's validation figures against.

Usage: evaluate_digits.py <saved model dir>
Prints one line per figure, "name value": loss (sparse categorical cross-entropy), accuracy, top3. The held-out rows
are those of io.spindle.examples.Digits: scikit-learn's digits, features / 16, row i when i % 4 == 0.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402


def main(model_dir):
    d = load_digits()
    held = np.arange(len(d.target)) % 4 == 0
    x = (d.data[held] / 16.0).astype("float32")
    y = d.target[held].astype("int64")
    model = tf.saved_model.load(model_dir)
    (probabilities,) = model.signatures["predict"](features=tf.constant(x)).values()
    figures = {"loss": keras.losses.SparseCategoricalCrossentropy()(y, probabilities)}
    for name, metric in [
        ("accuracy", keras.metrics.SparseCategoricalAccuracy()),
        ("top3", keras.metrics.SparseTopKCategoricalAccuracy(k=3)),
    ]:
        metric.update_state(y, probabilities)
        figures[name] = metric.result()
    for name, value in figures.items():
        print(name, repr(float(value)))


if __name__ == "__main__":
    main(*sys.argv[1:])
