"""ParameterServerStrategy with a custom training loop, in the style of TensorFlow's parameter-server tutorial: the
workers and parameter servers run TensorFlow servers, the chief (the coordinator) runs the loop on its Spindle feed.

    ps_digits.py WEIGHTS_NPZ EPOCHS
"""

import sys

import numpy as np
import tensorflow as tf

import spindle.data

weights_path, epochs = sys.argv[1], int(sys.argv[2])
resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
if resolver.task_type in ("worker", "ps"):
    server = tf.distribute.Server(
        resolver.cluster_spec(),
        job_name=resolver.task_type,
        task_index=resolver.task_id,
        protocol="grpc",
        start=True,
    )
    server.join()

strategy = tf.distribute.ParameterServerStrategy(resolver)
coordinator = tf.distribute.coordinator.ClusterCoordinator(strategy)

# The chief's rows from Spindle's feed, a constant the dataset function captures: workers get it with the graph.
batches = list(spindle.data.batches())
x = np.concatenate([b["features"] for b in batches])
y = np.concatenate([b["label"] for b in batches])
print(f"chief read {len(x)} rows in {len(batches)} batches", flush=True)


def dataset_fn():
    return (
        tf.data.Dataset.from_tensor_slices((x, y))
        .shuffle(len(x), seed=1)
        .batch(32)
        .repeat()
    )


with strategy.scope():
    w1 = tf.Variable(tf.random.stateless_normal([64, 64], seed=[1, 2]) * 0.1)
    b1 = tf.Variable(tf.zeros([64]))
    w2 = tf.Variable(tf.random.stateless_normal([64, 10], seed=[3, 4]) * 0.1)
    b2 = tf.Variable(tf.zeros([10]))
    optimizer = tf.keras.optimizers.Adam(0.01)

variables = [w1, b1, w2, b2]
per_worker = coordinator.create_per_worker_dataset(dataset_fn)
iterator = iter(per_worker)


@tf.function
def step(it):
    def replica(features, labels):
        with tf.GradientTape() as tape:
            logits = tf.matmul(tf.nn.relu(tf.matmul(features, w1) + b1), w2) + b2
            loss = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
            )
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    return strategy.run(replica, args=next(it))


steps = epochs * len(x) // 32
losses = [coordinator.schedule(step, args=(iterator,)) for _ in range(steps)]
coordinator.join()
values = [float(loss.fetch()) for loss in losses]
print(f"first loss {values[0]:.4f}, last {np.mean(values[-20:]):.4f}", flush=True)
np.savez(weights_path, *(v.numpy() for v in variables))
