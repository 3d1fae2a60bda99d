"""A Keras training script in the style of TensorFlow's multi-worker tutorial, unmodified but for its input, which is
spindle.data: MultiWorkerMirroredStrategy from TF_CONFIG, the model built under strategy.scope(), model.fit.

    mwms_digits.py WEIGHTS_NPZ EPOCHS

The chief (worker 0) saves the trained weights to WEIGHTS_NPZ. Keras 3 does not train under MultiWorkerMirroredStrategy
(model.fit fails converting PerReplica values), so this runs tf.keras as Keras 2 (TF_USE_LEGACY_KERAS=1, tf-keras).
"""

import json
import os
import sys

import numpy as np
import tensorflow as tf

import spindle.data

weights_path, epochs = sys.argv[1], int(sys.argv[2])
strategy = tf.distribute.MultiWorkerMirroredStrategy()
print(f"workers in sync: {strategy.num_replicas_in_sync}", flush=True)

with strategy.scope():
    model = tf.keras.Sequential(
        [
            tf.keras.Input((64,)),
            tf.keras.layers.Dense(64, activation="relu"),
            tf.keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=tf.keras.optimizers.Adam(0.01),
        loss=tf.keras.losses.SparseCategoricalCrossentropy(),
        metrics=["accuracy"],
    )

tf.keras.utils.set_random_seed(1)
history = model.fit(
    spindle.data.dataset(label="label", shuffle=True), epochs=epochs, verbose=2
)
print(f"losses: {history.history['loss']}", flush=True)

if json.loads(os.environ["TF_CONFIG"])["task"]["index"] == 0:
    np.savez(weights_path, *model.get_weights())
