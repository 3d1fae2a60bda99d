"""Scores rows with TensorFlow's own Python loader, for the JVM suites to compare against Spindle.

Usage: predict_savedmodel.py <saved model dir> <input csv: one row of float features per line>
Prints one line per row: the serving signature's single output, comma-separated, each value as repr(float32).
"""

import sys

import numpy as np
import tensorflow as tf


def main(model_dir, rows_csv):
    model = tf.saved_model.load(model_dir)
    serve = model.signatures["serving_default"]
    rows = np.loadtxt(rows_csv, delimiter=",", dtype=np.float32, ndmin=2)
    (name, spec), = serve.structured_input_signature[1].items()
    (output,) = serve(**{name: tf.constant(rows, dtype=spec.dtype)}).values()
    for values in output.numpy():
        print(",".join(repr(float(v)) for v in values))


if __name__ == "__main__":
    main(*sys.argv[1:])
