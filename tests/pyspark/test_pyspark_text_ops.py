"""tensorflow-text SavedModels (tests/fixtures/text_ops) scored from PySpark with the op libraries
``spindle.ops.tensorflow_text()`` finds in the installed wheel: each output equals what Python TensorFlow gave
(expected.json, written by make_text_ops.py)."""

import json
import os

import pytest
import spindle.ops
from conftest import FIXTURES
from spindle.ml import SpindleModel

MASTER = "local[2]"
TEXT_OPS = os.path.join(FIXTURES, "text_ops")

with open(os.path.join(TEXT_OPS, "expected.json")) as f:
    EXPECTED = json.load(f)


def test_tensorflow_text_finds_the_wheel_op_libraries():
    paths = spindle.ops.tensorflow_text()
    names = {os.path.basename(p) for p in paths}
    assert {"_whitespace_tokenizer_v2.so", "_fast_wordpiece_tokenizer.so", "_sentencepiece_tokenizer.so"} <= names
    assert all(os.path.isfile(p) for p in paths)


@pytest.mark.parametrize("name", ["whitespace", "fast_wordpiece", "sentencepiece"])
def test_text_model_equals_python(spark, name):
    expected = EXPECTED[name]
    model = SpindleModel().setModelPath(os.path.join(TEXT_OPS, name)).setOpLibraries(spindle.ops.tensorflow_text())
    frame = spark.createDataFrame([(t,) for t in expected["text"]], ["text"]).repartition(2)
    rows = {r["text"]: r for r in model.transform(frame).collect()}
    outputs = [k for k in expected if k != "text"]
    for i, text in enumerate(expected["text"]):
        count = expected["count"][i]
        for out in outputs:
            want, got = expected[out][i], rows[text][out]
            # to_tensor pads to the longest row of its batch: compare the row's own values.
            if isinstance(want, list):
                want, got = want[:count], list(got)[:count]
            assert got == want, f"{name}/{out} row {i} ({text!r})"
