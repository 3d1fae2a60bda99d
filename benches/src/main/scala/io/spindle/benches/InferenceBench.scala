package io.spindle.benches

import scala.util.Random

import org.apache.spark.sql.SpindleSqlShim

import io.spindle.SpindleModel

/** Rows/s of `SpindleModel.transform` over rows x 784 float32 through the MLP 784-128-10, against Spark's own scan of
  * the same cached DataFrame touching every value. benches/inference.sh runs it beside the Rust-only figure and prints
  * the ratios.
  *
  * Each figure is the best of `repeats` timed runs after `repeats` untimed ones: the JIT needs a dozen passes before
  * the JVM side reaches steady state (best of 3 reads about 40% low).
  *
  * Usage: InferenceBench [rows=60000] [batchSize=256] [repeats=15]
  */
object InferenceBench {
  def main(args: Array[String]): Unit = {
    val rows = Bench.arg(args, 0, 60000)
    val batch = Bench.arg(args, 1, 256)
    val repeats = Bench.arg(args, 2, 15)
    val spark = Bench.spark("spindle-bench")
    import spark.implicits._
    val df = spark.sparkContext
      .parallelize(0 until rows, 2)
      .mapPartitionsWithIndex { (p, it) =>
        val rnd = new Random(p); it.map(i => (i, Array.fill(784)(rnd.nextFloat())))
      }
      .toDF("id", "features")
      .cache()
    df.count()

    val model = SpindleModel
      .fromSavedModel("tests/fixtures/mnist_mlp")
      .setBatchSize(batch)
      .setOutputCols(Map("probabilities" -> "probabilities"))

    // Every float of every row is read, as transform must read them.
    val scan = Bench.best("spark-scan", rows, repeats) {
      SpindleSqlShim
        .internalRows(df)
        .mapPartitions { it =>
          var s = 0.0
          it.foreach { r =>
            val a = r.getArray(1); var i = 0
            while (i < a.numElements()) { s += a.getFloat(i); i += 1 }
          }
          Iterator(s)
        }
        .sum()
    }
    val transform = Bench.best("transform", rows, repeats) {
      SpindleSqlShim.internalRows(model.transform(df)).map(_.getArray(2).getFloat(0).toDouble).sum()
    }
    println(f"BENCH ratio transform/spark-scan ${transform / scan}%.3f")
    spark.stop()
  }
}
