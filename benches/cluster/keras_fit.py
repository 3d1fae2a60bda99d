"""The baseline of benches/cluster.sh: plain in-process Keras ``model.fit`` of the same MLP (784 -> 128 relu -> 10
softmax, SGD 0.05, the mnist_mlp fixture's) on rows x 784 float32 random rows, batch 256 (the fit's 2 workers x 128),
one epoch, TensorFlow on 2 threads (the cluster's two cores). Prints the first ``fit`` call (tracing included, as a
user sees it) and a second, warm one."""

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

rows = int(sys.argv[1])
tf.config.threading.set_intra_op_parallelism_threads(2)
tf.config.threading.set_inter_op_parallelism_threads(2)
rng = np.random.default_rng(7)
x = rng.random((rows, 784), dtype=np.float32)
y = rng.integers(0, 10, rows)
keras.utils.set_random_seed(11)
model = keras.Sequential(
    [keras.Input((784,)), keras.layers.Dense(128, activation="relu"), keras.layers.Dense(10, activation="softmax")]
)
model.compile(keras.optimizers.SGD(0.05), keras.losses.SparseCategoricalCrossentropy())
for name in ("first", "warm"):
    started = time.perf_counter()
    model.fit(x, y, batch_size=256, epochs=1, verbose=0, shuffle=False)
    print(f"BENCH keras {name} {time.perf_counter() - started:.3f}")
