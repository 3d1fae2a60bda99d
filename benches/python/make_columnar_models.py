"""The models of benches/columnar.sh: a single Dense(10) softmax layer over float32 [None, k] for each k given,
weights seeded (k is the seed), as plain ``tf.Module`` SavedModels with one signature, ``serving_default(x) ->
{"y"}``. Written under ``target/`` by the bench on its first run, not checked in: regenerating them gives the same
weights.

Usage: make_columnar_models.py OUT_DIR [k=100 200 ...]   (writes OUT_DIR/dense_<k> for each k)
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


class Dense(tf.Module):
    """softmax(x W + b) with W [k, 10] and b [10] drawn from a generator seeded with k."""

    def __init__(self, k):
        super().__init__()
        rng = np.random.default_rng(k)
        self.w = tf.Variable(rng.normal(0.0, 1.0 / np.sqrt(k), (k, 10)).astype(np.float32), name="w")
        self.b = tf.Variable(rng.normal(0.0, 0.1, 10).astype(np.float32), name="b")
        self.serve = tf.function(self._serve, input_signature=[tf.TensorSpec([None, k], tf.float32, name="x")])

    def _serve(self, x):
        return {"y": tf.nn.softmax(tf.matmul(x, self.w) + self.b)}


def main(out, *widths):
    for k in map(int, widths or (100, 200)):
        module = Dense(k)
        tf.saved_model.save(module, os.path.join(out, f"dense_{k}"), signatures={"serving_default": module.serve})


if __name__ == "__main__":
    main(*sys.argv[1:])
