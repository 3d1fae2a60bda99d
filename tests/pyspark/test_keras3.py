"""Keras 3 across executors on local-cluster[2,1,1024] (two executor JVMs): a Keras 3 model on the JAX backend,
trained data-parallel by ``spindle.run`` through Keras's distribution API (``keras.distribution.initialize()`` reading
the KERAS_DISTRIBUTION_* variables Spindle sets), ends with the weights a single worker gets from the same batches
concatenated, fed by ``spindle.data`` in both runs; and not those of a worker that trained on one half alone.
"""

import numpy as np
import pytest

import spindle

MASTER = "local-cluster[2,1,1024]"
SPARK_CONF = {"spark.executor.memory": "1024m"}
pytestmark = pytest.mark.usefixtures("executors")
ENV = {"KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "2"}

FEATURES, HIDDEN = 8, 16
# Rows per worker's partition and per worker's batch: 8 steps an epoch.
HALF, BATCH, EPOCHS = 256, 32, 3
# Float32 tolerance. The runs differ only in the order of the sums in each step's mean gradient (one process sums 64
# rows; two sum 32 each and gloo adds the two): a rounding of about float32's epsilon (1.2e-7) of each gradient, carried
# through 24 SGD steps of weights under 1 in size. Measured (2026-12-06): the largest difference of any weight is
# 6e-8, one unit in the last place, and the losses agree exactly; training on one half alone ends 0.036 away. 1e-6 is
# 17 times the first and 1/36000 of the second.
RTOL, ATOL = 1e-6, 1e-6


def keras3_training():
    """A function for spindle.run (nested, so that cloudpickle ships it by value): a Dense model from fixed initial
    weights, SGD, the feed's batches in order; returns the final weights and the loss of each epoch."""

    def train(initial, epochs):
        import keras
        import numpy as np

        import spindle.data

        # The JAX processes of the run: one per worker, the coordinator at worker 0's held port.
        keras.distribution.initialize()
        # Each process's feed is its own partition already: no sharding of the dataset by Keras.
        keras.distribution.set_distribution(keras.distribution.DataParallel(auto_shard_dataset=False))
        model = keras.Sequential(
            [
                keras.Input((len(initial[0]),)),
                keras.layers.Dense(len(initial[1]), activation="tanh"),
                keras.layers.Dense(1),
            ]
        )
        model.set_weights(initial)
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05), loss="mse")
        history = model.fit(spindle.data.dataset(label="y"), epochs=epochs, shuffle=False, verbose=0)
        return [np.asarray(w) for w in model.get_weights()], history.history["loss"]

    return train


@pytest.fixture(scope="module")
def halves():
    """Two halves of a noisy regression (x: 8 floats, y: a float), and the model's initial weights."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(2 * HALF, FEATURES)).astype(np.float32)
    w = rng.normal(size=(FEATURES,)).astype(np.float32)
    y = (x @ w / np.sqrt(FEATURES) + 0.05 * rng.normal(size=2 * HALF)).astype(np.float32)
    rows = [(xi.tolist(), float(yi)) for xi, yi in zip(x, y)]
    initial = [
        (rng.normal(size=(FEATURES, HIDDEN)) / np.sqrt(FEATURES)).astype(np.float32),
        np.zeros(HIDDEN, np.float32),
        (rng.normal(size=(HIDDEN, 1)) / np.sqrt(HIDDEN)).astype(np.float32),
        np.zeros(1, np.float32),
    ]
    return rows[:HALF], rows[HALF:], initial


def frame(spark, rows, partitions):
    """The rows in order, cut into ``partitions`` contiguous partitions (rank i reads partition i)."""
    from pyspark.sql.types import ArrayType, FloatType, StructField, StructType

    schema = StructType([StructField("x", ArrayType(FloatType(), False), False), StructField("y", FloatType(), False)])
    return spark.createDataFrame(spark.sparkContext.parallelize(rows, partitions), schema)


def train(spark, rows, partitions, batch_size, initial):
    return spindle.run(
        keras3_training(),
        num_workers=partitions,
        data=frame(spark, rows, partitions),
        args=(initial, EPOCHS),
        batch_size=batch_size,
        env=ENV,
    )


def test_two_keras3_jax_workers_end_with_the_weights_of_one_worker_on_the_concatenated_batches(spark, halves):
    first, second = halves[0], halves[1]
    initial = halves[2]
    # Two workers: worker 0 reads the first half, worker 1 the second, BATCH rows a step each.
    two, two_losses = train(spark, first + second, 2, BATCH, initial)
    # One worker whose batch k is worker 0's batch k followed by worker 1's.
    interleaved = [row for k in range(0, HALF, BATCH) for row in first[k : k + BATCH] + second[k : k + BATCH]]
    one, one_losses = train(spark, interleaved, 1, 2 * BATCH, initial)
    # The control: one worker on the first half alone, as a worker whose gradients were not all-reduced would train.
    alone, _ = train(spark, first, 1, BATCH, initial)

    agreement = max(float(np.max(np.abs(a - b))) for a, b in zip(two, one))
    apart = max(float(np.max(np.abs(a - b))) for a, b in zip(two, alone))
    print(f"Keras 3 on JAX, 2 workers vs 1 on the concatenated batches: largest weight difference {agreement:.3g}")
    print(f"2 workers vs 1 worker on one half alone, largest weight difference {apart:.3g}")
    print(f"losses per epoch: 2 workers {two_losses}, 1 worker {one_losses}")
    for a, b in zip(two, one):
        assert a.shape == b.shape and a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(two_losses, one_losses, rtol=RTOL, atol=ATOL)
    # It learned: the loss of the last epoch is well under that of the first.
    assert two_losses[-1] < 0.5 * two_losses[0], two_losses
    # It can fail: gradients of one half alone lead elsewhere, far outside the tolerance.
    assert apart > 100 * ATOL, apart
    # And training moved the weights at all.
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(two, initial)) > 100 * ATOL
