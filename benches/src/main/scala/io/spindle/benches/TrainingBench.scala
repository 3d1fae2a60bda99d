package io.spindle.benches

import scala.util.Random

import org.apache.spark.sql.{DataFrame, SparkSession, SpindleSqlShim}

import io.spindle.SpindleEstimator

/** Training throughput through `SpindleEstimator.fit`, one worker. benches/training.sh runs it beside the plain Rust
  * `train` loop (native/spindle-runtime/examples/train_bench.rs) and prints the ratios.
  *
  *   - `BENCH fit-train`: samples/s of the training loop of a 1-worker fit of the MLP 784-128-10 (mnist_mlp, SGD) over
  *     `rows` rows for `epochs` epochs, batch 256, one intra-op and one inter-op thread: all examples over the sum of
  *     the step times (each step's wait for its input included), so Spark's job start, the model load and the export
  *     are left out, as the Rust loop leaves them out.
  *   - `BENCH fed` and `BENCH spark-scan`: rows/s the task fed during the first epoch of a 1-worker fit of the digits
  *     MLP (64 float features and a long label per row): rows over the time the task spent pulling rows from Spark and
  *     writing them into batch windows, the time it waited for a free window (held back by training) left out; against
  *     Spark's scan of the same cached one-partition DataFrame reading every value.
  *
  * Each figure is the best of `repeats` runs after one untimed run.
  *
  * Usage: TrainingBench [rows=60000] [epochs=3] [repeats=3] [feedRows=400000]
  */
object TrainingBench {
  def main(args: Array[String]): Unit = {
    val rows = Bench.arg(args, 0, 60000)
    val epochs = Bench.arg(args, 1, 3)
    val repeats = Bench.arg(args, 2, 3)
    val feedRows = Bench.arg(args, 3, 400000)
    val spark = Bench.spark("spindle-training-bench")

    def best(label: String, unit: String)(run: => Double): Double = {
      run // warm-up
      val rate = (0 until repeats).map(_ => run).max
      println(f"BENCH $label%-10s $rate%12.0f $unit (best of $repeats)")
      rate
    }
    def estimator(model: String, epochs: Int) = new SpindleEstimator()
      .setModelPath(model)
      .setInputCols(Map("features" -> "features", "labels" -> "label"))
      .setNumWorkers(1)
      .setEpochs(epochs)
      .setBatchSize(256)
      .setIntraOpThreads(1)
      .setInterOpThreads(1)

    val mnist = data(spark, rows, 784)
    best("fit-train", "samples/s") {
      val summary = estimator("tests/fixtures/mnist_mlp", epochs).fit(mnist).summary
      val perEpoch = summary.steps.groupBy(_.epoch).toSeq.sortBy(_._1).map { case (_, steps) =>
        val rate = steps.map(_.examples).sum / steps.map(s => s.examples / s.examplesPerSecond).sum
        f"$rate%.0f (input wait ${steps.map(_.inputWaitMs).sum}%.0f ms, compute ${steps.map(_.computeMs).sum}%.0f ms)"
      }
      println(s"  samples/s by epoch: ${perEpoch.mkString(", ")}")
      println(
        f"  epoch 1 feeding: ${summary.feedSecondsPerWorker.head * 1e3}%.0f ms writing rows, " +
          f"${summary.feedWaitSecondsPerWorker.head * 1e3}%.0f ms waiting for a free window"
      )
      summary.examplesPerSecond
    }

    val digits = data(spark, feedRows, 64)
    val scan = best("spark-scan", "rows/s") {
      val t0 = System.nanoTime()
      SpindleSqlShim
        .internalRows(digits)
        .mapPartitions { it =>
          var s = 0.0
          it.foreach { r =>
            val a = r.getArray(0); var i = 0
            while (i < a.numElements()) { s += a.getFloat(i); i += 1 }
            s += r.getLong(1)
          }
          Iterator(s)
        }
        .sum()
      feedRows / ((System.nanoTime() - t0) / 1e9)
    }
    val fed = best("fed", "rows/s") {
      estimator("tests/fixtures/digits_mlp_init", 1).fit(digits).summary.rowsFedPerSecond
    }
    println(f"BENCH ratio fed/spark-scan ${fed / scan}%.3f (target >= 0.8)")
    spark.stop()
  }

  /** `rows` rows of `width` floats in [0, 1) and a class label 0..9, cached in one partition. */
  private[benches] def data(spark: SparkSession, rows: Int, width: Int): DataFrame = {
    val df = generated(spark, rows, width).cache()
    df.count()
    df
  }

  /** [[data]] uncached: each read generates the rows again. */
  private[benches] def generated(spark: SparkSession, rows: Int, width: Int): DataFrame = {
    import spark.implicits._
    spark.sparkContext
      .parallelize(0 until rows, 1)
      .mapPartitions { it =>
        val rnd = new Random(width); it.map(_ => (Array.fill(width)(rnd.nextFloat()), rnd.nextInt(10).toLong))
      }
      .toDF("features", "label")
  }
}
