"""The baseline of benches/columnar.sh (d): in-process Keras ``model.fit`` of the model ``SpindleEstimator.fit``
trains there (the mnist_mlp fixture's: 784 -> 128 relu -> 10 softmax, SGD 0.05, sparse categorical cross-entropy,
tests/fixtures/make_fixtures.py's seed), on the same rows: the Parquet file ColumnarBench wrote (``features``
784 floats, ``label``), read once with pyarrow into numpy arrays in memory before any timing. Same batch size and
epochs, batches shuffled in order as Spindle's are (``shuffle="batch"``), TensorFlow on ``threads`` intra-op and
``threads`` inter-op threads as the estimator is set there.

Prints the first ``fit`` call (tracing included, as a user sees it), then the best and median of ``repeats`` more,
as samples (rows x epochs) per second.

Usage: columnar_keras_fit.py PARQUET [epochs=3] [batch=256] [repeats=3] [threads=1]
"""

import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import tensorflow as tf  # noqa: E402


def main(parquet, epochs=3, batch=256, repeats=3, threads=1):
    epochs, batch, repeats, threads = int(epochs), int(batch), int(repeats), int(threads)
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    table = pq.read_table(parquet, columns=["features", "label"])
    x = table.column("features").combine_chunks().flatten().to_numpy().reshape(-1, 784).astype(np.float32)
    y = table.column("label").to_numpy()
    del table
    rows = len(y)
    keras.utils.set_random_seed(11)
    model = keras.Sequential(
        [keras.Input((784,)), keras.layers.Dense(128, activation="relu"), keras.layers.Dense(10, activation="softmax")]
    )
    model.compile(keras.optimizers.SGD(0.05), keras.losses.SparseCategoricalCrossentropy())

    def run():
        started = time.perf_counter()
        model.fit(x, y, batch_size=batch, epochs=epochs, verbose=0, shuffle="batch")
        return time.perf_counter() - started

    first = run()
    times = sorted(run() for _ in range(repeats))
    median = statistics.median(times)
    samples = rows * epochs
    print(
        f"BENCH {'d.keras-first':<24} best {samples / first:12.0f} median {samples / first:12.0f} samples/s "
        f"(the first call alone: {first:.3f} s)"
    )
    print(
        f"BENCH {'d.keras':<24} best {samples / times[0]:12.0f} median {samples / median:12.0f} samples/s "
        f"({repeats} runs after the first: best {times[0]:.3f} s, median {median:.3f} s)"
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
