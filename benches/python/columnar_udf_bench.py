"""PySpark's own way to score 200 scalar columns with a SavedModel, the baseline of benches/columnar.sh (c): rows/s
of ``pyspark.ml.functions.predict_batch_udf`` over the Parquet file ColumnarBench wrote (f0..f199 float), on
``local[2]``: the columns as one struct (``predict_batch_udf`` stacks a struct's scalar fields into one [batch, 200]
array), Arrow batches to the Python workers, batch 256, each batch run through the same SavedModel's
``serving_default`` in Python TensorFlow (loaded once per worker, TensorFlow's default threads), the ``y``
probabilities back as ``array<float>`` into Spark's ``noop`` sink. Each pass is a fresh ``spark.read.parquet``, as on
the JVM side. Best and median of ``repeats`` timed passes after ``warmups`` untimed ones.

Usage: columnar_udf_bench.py PARQUET MODEL [batch=256] [warmups=5] [repeats=5]
"""

import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pyspark.ml.functions import predict_batch_udf  # noqa: E402
from pyspark.sql import SparkSession  # noqa: E402
from pyspark.sql.functions import struct  # noqa: E402
from pyspark.sql.types import ArrayType, FloatType  # noqa: E402


def make_predict_fn(model):
    """The function ``predict_batch_udf`` calls once per Python worker: loads the SavedModel there."""

    def make():
        import tensorflow as tf

        fn = tf.saved_model.load(model).signatures["serving_default"]

        def predict(x):
            return fn(x=tf.constant(x, tf.float32))["y"].numpy()

        return predict

    return make


def main(parquet, model, batch=256, warmups=5, repeats=5):
    batch, warmups, repeats = int(batch), int(warmups), int(repeats)
    spark = (
        SparkSession.builder.master("local[2]")
        .appName("spindle-bench-columnar-udf")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("WARN")
    rows = spark.read.parquet(parquet).count()
    width = len(spark.read.parquet(parquet).columns)
    udf = predict_batch_udf(
        make_predict_fn(os.path.abspath(model)),
        return_type=ArrayType(FloatType()),
        batch_size=batch,
        input_tensor_shapes=[[width]],
    )

    def run():
        started = time.perf_counter()
        df = spark.read.parquet(parquet)
        df.select(udf(struct(*df.columns)).alias("y")).write.format("noop").mode("overwrite").save()
        return time.perf_counter() - started

    for _ in range(warmups):
        run()
    times = sorted(run() for _ in range(repeats))
    median = statistics.median(times)
    print(
        f"BENCH {'c.predict-batch-udf':<24} best {rows / times[0]:12.0f} median {rows / median:12.0f} rows/s "
        f"({repeats} runs after {warmups} untimed: best {times[0]:.3f} s, median {median:.3f} s)"
    )
    spark.stop()


if __name__ == "__main__":
    main(*sys.argv[1:])
