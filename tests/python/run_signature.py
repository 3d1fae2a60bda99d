"""Runs a SavedModel signature with TensorFlow's own Python loader, for the JVM suites to compare against Spindle.

Usage: run_signature.py <saved model dir> <signature> <inputs json: {"input": [row values...], ...}>
Prints one JSON object: each output's rows as nested lists (booleans, Python ints, floats; float16 and
bfloat16 widened to float exactly).
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402


def main(model_dir, signature, inputs_json):
    fn = tf.saved_model.load(model_dir).signatures[signature]
    with open(inputs_json) as f:
        rows = json.load(f)
    specs = fn.structured_input_signature[1]
    outputs = fn(**{name: tf.constant(values, dtype=specs[name].dtype) for name, values in rows.items()})
    result = {}
    for name, tensor in outputs.items():
        if tensor.dtype in (tf.float16, tf.bfloat16):
            tensor = tf.cast(tensor, tf.float64)
        result[name] = tensor.numpy().tolist()
    print(json.dumps(result))


if __name__ == "__main__":
    main(*sys.argv[1:])
