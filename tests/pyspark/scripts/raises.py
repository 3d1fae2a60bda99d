"""Fails on worker 1 after a short while, as a script with a bug would; worker 0 waits in a collective for it."""

import json
import os
import time

import tensorflow as tf

task = json.loads(os.environ["TF_CONFIG"])["task"]
strategy = tf.distribute.MultiWorkerMirroredStrategy()
if task["index"] == 1:
    time.sleep(1)
    raise ValueError("worker 1 cannot go on: bad hyperparameter 42")
# Worker 0 blocks here for a peer that never comes.
strategy.reduce(
    tf.distribute.ReduceOp.SUM, strategy.run(lambda: tf.constant(1.0)), axis=None
)
