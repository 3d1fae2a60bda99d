"""Rows/s delivered into a script's tf.data pipeline by spindle.data (spindle.run), against Spark's own scan of the same
cached DataFrame and against the usual PySpark way (mapPartitions, rows pickled to a Python worker, a from_generator
dataset), in the same run. See benches/python-feed.sh.

Each side reads every row of a cached rows x 784 float32 DataFrame of two partitions, with two tasks at once (local[2]):
- spark-scan: a Spark SQL job reading every float of every row (array_max, generated code: the rate Spark itself reads
  the cache at);
- spindle: spindle.run of two processes, each iterating spindle.data.dataset() of its partition once (the first pass,
  streamed from the JVM through the mapped windows) and once more (the replay of the spill file);
- pickle: df.rdd.mapPartitions of a function feeding its rows (pickled Row objects) to tf.data.from_generator.
A side's rate is the rows of both tasks over the slower task's time (from its first batch asked to its last). Prints
the best and the median of `repeats` runs per side, and their ratios.
"""

import json
import os
import statistics
import sys
import tempfile
import time

import spindle
from pyspark.sql import functions as F

ROWS = int(sys.argv[1]) if len(sys.argv) > 1 else 60000
REPEATS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
BATCH = 256
WIDTH = 784


def consume(out_dir):
    """On each spindle.run process: one streamed pass and one replayed pass over its rows, timed."""
    import json
    import os
    import time

    import spindle.data

    rank = os.environ["SPINDLE_RANK"]
    ds = spindle.data.dataset()
    figures = {}
    for name in ("stream", "replay"):
        started, rows = time.perf_counter(), 0
        for batch in ds:
            rows += int(batch["features"].shape[0])
        figures[name] = (rows, time.perf_counter() - started)
    with open(os.path.join(out_dir, f"rank-{rank}.json"), "w") as f:
        json.dump(figures, f)


def pickled(rows):
    """On each PySpark Python worker: the partition's pickled rows through tf.data.from_generator."""
    import time

    import numpy as np
    import tensorflow as tf

    started = time.perf_counter()
    ds = tf.data.Dataset.from_generator(
        lambda: (np.asarray(r.features, dtype=np.float32) for r in rows),
        output_signature=tf.TensorSpec([WIDTH], tf.float32),
    ).batch(BATCH)
    n = 0
    for batch in ds:
        n += int(batch.shape[0])
    yield n, time.perf_counter() - started


def rate(parts):
    """Rows of every task over the slowest task's seconds."""
    return sum(r for r, _ in parts) / max(s for _, s in parts)


def main():
    # PySpark's Python workers (the pickle side): this interpreter, which has NumPy and TensorFlow.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = spindle.session(
        "local[2]",
        "feed-bench",
        **{
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
            "spark.driver.host": "127.0.0.1",
            "spark.driver.memory": "4g",
            "spark.executorEnv.TF_CPP_MIN_LOG_LEVEL": "2",
        },
    )
    spark.sparkContext.setLogLevel("WARN")
    values = F.expr(f"transform(sequence(0, {WIDTH - 1}), i -> cast(((id * {WIDTH} + i) % 251) / 251.0 as float))")
    df = spark.range(ROWS, numPartitions=2).select(values.alias("features")).cache()
    assert df.count() == ROWS

    scan, stream, replay, pickle = [], [], [], []
    for _ in range(REPEATS):
        started = time.perf_counter()
        df.select(F.array_max("features").alias("m")).agg(F.max("m")).collect()
        scan.append(ROWS / (time.perf_counter() - started))

        out = tempfile.mkdtemp(prefix="feed-bench-")
        spindle.run(consume, num_workers=2, data=df, args=(out,), batch_size=BATCH, env={"TF_CPP_MIN_LOG_LEVEL": "2"})
        ranks = [json.load(open(os.path.join(out, f))) for f in sorted(os.listdir(out))]
        assert sum(r["stream"][0] for r in ranks) == ROWS, ranks
        stream.append(rate([r["stream"] for r in ranks]))
        replay.append(rate([r["replay"] for r in ranks]))

        parts = df.rdd.mapPartitions(pickled).collect()
        assert sum(r for r, _ in parts) == ROWS
        pickle.append(rate(parts))

    def show(name, runs):
        print(f"BENCH {name:<16} best {max(runs):>12,.0f} rows/s   median {statistics.median(runs):>12,.0f} rows/s")

    show("spark-scan", scan)
    show("spindle-stream", stream)
    show("spindle-replay", replay)
    show("pickle", pickle)
    print(f"BENCH ratio spindle-stream / spark-scan  best {max(stream) / max(scan):.3f}  (target >= 0.5)")
    print(f"BENCH ratio spindle-replay / spark-scan  best {max(replay) / max(scan):.3f}")
    print(f"BENCH ratio spindle-stream / pickle      best {max(stream) / max(pickle):.1f}x")
    spark.stop()


if __name__ == "__main__":
    main()
