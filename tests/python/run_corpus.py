"""Runs every fixture of tests/fixtures/corpus with TensorFlow's own Python loader on its manifest rows, in one
process, for the JVM corpus suite to compare against Spindle.

Usage: run_corpus.py <corpus dir>
Prints one JSON object: fixture name -> output -> rows, as run_signature.py prints them (tf.Example fixtures get
each row's serialized tf.train.Example built from the manifest's feature rows).
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
from run_signature import examples, text  # noqa: E402


def run(corpus, fixture):
    fn = tf.saved_model.load(os.path.join(corpus, fixture["dir"])).signatures[fixture["signature"]]
    rows = fixture["rows"]
    if "example_input" in fixture:
        features = {name: {"dtype": dtype, "rows": rows[name]} for name, dtype in fixture["example_features"].items()}
        rows = {fixture["example_input"]: examples(features)}
    specs = fn.structured_input_signature[1]
    outputs = fn(**{name: tf.constant(values, dtype=specs[name].dtype) for name, values in rows.items()})
    return {
        name: text(t.numpy().tolist()) if t.dtype == tf.string else t.numpy().tolist() for name, t in outputs.items()
    }


def main(corpus):
    with open(os.path.join(corpus, "manifest.json")) as f:
        fixtures = json.load(f)["fixtures"]
    print(json.dumps({fixture["name"]: run(corpus, fixture) for fixture in fixtures}))


if __name__ == "__main__":
    main(*sys.argv[1:])
