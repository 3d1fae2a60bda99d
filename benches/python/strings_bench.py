"""Python TensorFlow's own signature call on the batches benches/strings.sh gives Spindle: rows/s of
tf.saved_model.load(model).signatures["serving_default"] over the same texts (see StringBench.scala), in one process,
each output fetched as numpy. Two figures: `python-tf` calls it on each batch as a numpy array of Python strings (as
predict_batch_udf hands a batch over), so the timing includes TensorFlow's conversion of the strings;
`python-tf-tensors` on tensors built before timing, TensorFlow's compute and call overhead alone.
Best (and median) of `repeats` timed runs after one untimed.

Usage: strings_bench.py [rows=200000] [batch=256] [repeats=10]
"""

import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

MODEL = "tests/fixtures/corpus/text_classifier"


def main(rows=200000, batch=256, repeats=10):
    rows, batch, repeats = int(rows), int(batch), int(repeats)
    with open(os.path.join(MODEL, "assets", "vocab.txt"), encoding="utf-8") as f:
        vocabulary = [line.rstrip("\n") for line in f]
    texts = [
        " ".join(vocabulary[(7 * i + 13 * k) % len(vocabulary)] for k in range(2 + i % 6)) for i in range(rows)
    ]
    arrays = [np.array(texts[b : b + batch], dtype=object) for b in range(0, rows, batch)]
    tensors = [tf.constant(a) for a in arrays]
    fn = tf.saved_model.load(MODEL).signatures["serving_default"]

    def run(batches):
        started = time.perf_counter()
        total = 0.0
        for b in batches:
            total += float(fn(text=tf.convert_to_tensor(b))["score"].numpy()[0, 0])
        return time.perf_counter() - started

    for label, batches in (("python-tf", arrays), ("python-tf-tensors", tensors)):
        run(batches)
        times = sorted(run(batches) for _ in range(repeats))
        print(
            f"BENCH {label} {rows / times[0]:12.0f} rows/s (best of {repeats}: {times[0]:.3f} s, "
            f"median {statistics.median(times):.3f} s)"
        )


if __name__ == "__main__":
    main(*sys.argv[1:])
