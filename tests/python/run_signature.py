"""Runs a SavedModel signature with TensorFlow's own Python loader, for the JVM suites to compare against Spindle.

Usage: run_signature.py <saved model dir> <signature> <inputs json: {"input": [row values...], ...}> [<example input>]

With <example input>, the JSON holds tf.Example features instead ({"feature": {"dtype": "float32" | "int64" |
"string", "rows": [row values...]}}, a list per row for several values), and each row's serialized tf.train.Example
feeds that input.

Prints one JSON object: each output's rows as nested lists (booleans, Python ints, floats; float16 and bfloat16
widened to float exactly; strings as text, or as a list of byte values where they are not UTF-8).
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402


def feature(dtype, values):
    values = values if isinstance(values, list) else [values]
    if dtype == "string":
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode("utf-8") for v in values]))
    if dtype == "int64":
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))
    return tf.train.Feature(float_list=tf.train.FloatList(value=values))


def examples(features):
    rows = len(next(iter(features.values()))["rows"])
    return [
        tf.train.Example(
            features=tf.train.Features(
                feature={name: feature(f["dtype"], f["rows"][r]) for name, f in features.items()}
            )
        ).SerializeToString()
        for r in range(rows)
    ]


def text(value):
    if isinstance(value, list):
        return [text(v) for v in value]
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return list(value)


def main(model_dir, signature, inputs_json, example_input=None):
    fn = tf.saved_model.load(model_dir).signatures[signature]
    with open(inputs_json) as f:
        rows = json.load(f)
    if example_input:
        rows = {example_input: examples(rows)}
    specs = fn.structured_input_signature[1]
    outputs = fn(**{name: tf.constant(values, dtype=specs[name].dtype) for name, values in rows.items()})
    result = {}
    for name, tensor in outputs.items():
        if tensor.dtype in (tf.float16, tf.bfloat16):
            tensor = tf.cast(tensor, tf.float64)
        values = tensor.numpy().tolist()
        result[name] = text(values) if tensor.dtype == tf.string else values
    print(json.dumps(result))


if __name__ == "__main__":
    main(*sys.argv[1:])
