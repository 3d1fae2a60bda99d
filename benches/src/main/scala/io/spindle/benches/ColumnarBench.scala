package io.spindle.benches

import java.nio.file.{Files, Paths}

import scala.util.Random

import org.apache.spark.ml.feature.VectorAssembler
import org.apache.spark.sql.{DataFrame, SparkSession}
import org.apache.spark.sql.functions.{array, col, rand}

import io.spindle.{SpindleEstimator, SpindleModel}

/** The JVM side of benches/columnar.sh (issue 35, columnar input and native Parquet): rows/s of
  * `SpindleModel.transform` over Parquet files, each pass a fresh `spark.read.parquet` into Spark's `noop` sink, so
  * that every figure includes the file's scan and decoding. The script runs the Rust runtime alone and the Python sides
  * beside it and prints the ratios.
  *
  *   - (a) `rows` x one `array<float>` column of 784 values, the MLP 784-128-10 (tests/fixtures/mnist_mlp):
  *     `a.spark-scan-noop` (Spark's own scan of the file into the sink), `a.transform-select` (the `probabilities`
  *     column alone into the sink), `a.transform-all` (every column of transform's output: the 784 floats passed
  *     through as well).
  *   - (b) `rows` x 100 float columns f0..f99, a Dense(10) over float32 [None, 100] (`dense_100`, made by
  *     benches/python/make_columnar_models.py): the columns packed into the input by `packedInputCols`, on the columnar
  *     path (`b.packed-columnar`) and on the row path (`b.packed-row`, `columnar` off); and for reference what works
  *     without `packedInputCols`, `array(f0, ..., f99)` into the input (`b.array-row`).
  *   - (c) `rows` x 200 float columns, `dense_200`: `c.packed` (`packedInputCols`, default path) against
  *     `c.vector-assembler` (VectorAssembler of the 200 columns, the vector column into the input) and, for reference,
  *     `c.array` (`array` of the 200 columns into the input).
  *   - (d) `SpindleEstimator.fit` of mnist_mlp (SGD 0.05, the estimator's `train` signature), one worker on `local[2]`,
  *     over a Parquet file of `fitRows` x (784 floats, a label), `epochs` epochs, batch `batch`, TensorFlow on
  *     `threads` intra-op and `threads` inter-op threads: one untimed fit of one epoch (warm executors, page cache),
  *     then `fitRepeats` timed ones. `d.fit`: samples (rows x epochs) over the wall time of the call; `d.split` the
  *     best run's time by TrainingSummary: the steps' input wait, compute and all-reduce summed, and fixed = wall -
  *     those three.
  *
  * Files are written once by Spark under `data` (random floats, seeded) and kept; a file whose `_SUCCESS` is there is
  * not written again.
  *
  * Usage: ColumnarBench data models [rows=200000] [batch=256] [warmups=5] [repeats=5] [only=a,b,c,d] [fitRows=600000]
  * [epochs=3] [fitRepeats=3] [threads=1]
  */
object ColumnarBench {
  def main(args: Array[String]): Unit = {
    val data = args(0)
    val models = args(1)
    val rest = args.drop(2)
    val rows = Bench.arg(rest, 0, 200000)
    val batch = Bench.arg(rest, 1, 256)
    val warmups = Bench.arg(rest, 2, 5)
    val repeats = Bench.arg(rest, 3, 5)
    val only = rest.lift(4).getOrElse("a,b,c,d").split(",").map(_.trim).toSet
    val fitRows = Bench.arg(rest, 5, 600000)
    val epochs = Bench.arg(rest, 6, 3)
    val fitRepeats = Bench.arg(rest, 7, 3)
    val threads = Bench.arg(rest, 8, 1)
    val spark = Bench.spark("spindle-bench-columnar")
    def timed(label: String)(run: => Unit) = Bench.bestAndMedian(label, rows, warmups, repeats)(run)

    if (only("a")) {
      val path = s"$data/mnist-$rows.parquet"
      write(path)(features(spark, rows, withLabel = false))
      val model = SpindleModel
        .fromSavedModel("tests/fixtures/mnist_mlp")
        .setBatchSize(batch)
        .setOutputCols(Map("probabilities" -> "probabilities"))
      timed("a.spark-scan-noop")(noop(spark.read.parquet(path)))
      timed("a.transform-select")(noop(model.transform(spark.read.parquet(path)).select("probabilities")))
      timed("a.transform-all")(noop(model.transform(spark.read.parquet(path))))
    }

    if (only("b")) {
      val path = s"$data/flat100-$rows.parquet"
      write(path)(flat(spark, rows, 100))
      val cols = names(100)
      def model() = SpindleModel.fromSavedModel(s"$models/dense_100").setBatchSize(batch)
      timed("b.array-row") {
        noop(
          model().setInputCols(Map("x" -> "xs")).transform(packedByArray(spark.read.parquet(path), cols)).select("y")
        )
      }
      timed("b.packed-columnar") {
        noop(packed(model(), cols, columnar = true).transform(spark.read.parquet(path)).select("y"))
      }
      timed("b.packed-row") {
        noop(packed(model(), cols, columnar = false).transform(spark.read.parquet(path)).select("y"))
      }
      // The row path as it was before the node dropped unread columns: every input column copied into every row.
      timed("b.packed-row-all")(noop(packed(model(), cols, columnar = false).transform(spark.read.parquet(path))))
      timed("b.spark-scan-noop")(noop(spark.read.parquet(path)))
    }

    if (only("c")) {
      // Over 100 fields Spark's Parquet scan gives column batches only under a larger maxFields (docs/user-guide.md).
      spark.conf.set("spark.sql.codegen.maxFields", "1000")
      val path = s"$data/flat200-$rows.parquet"
      write(path)(flat(spark, rows, 200))
      val cols = names(200)
      def model() = SpindleModel.fromSavedModel(s"$models/dense_200").setBatchSize(batch)
      val assembler = new VectorAssembler().setInputCols(cols.toArray).setOutputCol("xv")
      timed("c.vector-assembler") {
        noop(
          model().setInputCols(Map("x" -> "xv")).transform(assembler.transform(spark.read.parquet(path))).select("y")
        )
      }
      timed("c.array") {
        noop(
          model().setInputCols(Map("x" -> "xs")).transform(packedByArray(spark.read.parquet(path), cols)).select("y")
        )
      }
      timed("c.packed")(noop(packed(model(), cols, columnar = true).transform(spark.read.parquet(path)).select("y")))
    }

    if (only("d")) fit(spark, s"$data/fit-$fitRows.parquet", fitRows, batch, epochs, fitRepeats, threads)
    spark.stop()
  }

  // ---- The two Params of issue 35 (`packedInputCols`, `columnar`), added on main in parallel: every call to them is
  // here. Until they are merged, this is the one spot that does not compile; (b) and (c) need it. ----
  private def packed(model: SpindleModel, cols: Seq[String], columnar: Boolean): SpindleModel =
    model.setPackedInputCols(Map("x" -> cols)).setColumnar(columnar).setOutputCols(Map("y" -> "y"))
  // ---- end of the new Params ----

  /** Deletes the local directory `path` (a fit's export), if there. */
  private def remove(path: String): Unit = {
    val dir = if (path.startsWith("file:")) Paths.get(new java.net.URI(path)) else Paths.get(path)
    if (Files.exists(dir)) Files.walk(dir).sorted(java.util.Comparator.reverseOrder()).forEach(f => Files.delete(f))
  }

  /** `df`, every row into Spark's `noop` sink: the whole plan runs, nothing is written. */
  private def noop(df: DataFrame): Unit = df.write.format("noop").mode("overwrite").save()

  private def names(k: Int): Seq[String] = (0 until k).map(i => s"f$i")

  /** The columns `cols` as one `array<float>` column `xs`: the way to feed scalar columns without `packedInputCols`. */
  private def packedByArray(df: DataFrame, cols: Seq[String]): DataFrame = df.select(array(cols.map(col): _*).as("xs"))

  /** Writes `df` as Parquet at `path` unless a complete file (its `_SUCCESS`) is already there. */
  private def write(path: String)(df: => DataFrame): Unit =
    if (!Files.exists(Paths.get(path, "_SUCCESS"))) {
      val t0 = System.nanoTime()
      df.write.mode("overwrite").parquet(path)
      println(f"wrote $path in ${(System.nanoTime() - t0) / 1e9}%.1f s")
    }

  /** `rows` rows of 784 floats in [0, 1) (`features`) and, `withLabel`, a class 0..9 (`label`), in two partitions. */
  private def features(spark: SparkSession, rows: Int, withLabel: Boolean): DataFrame = {
    import spark.implicits._
    val generated = spark.sparkContext
      .parallelize(0 until rows, 2)
      .mapPartitionsWithIndex { (p, it) =>
        val rnd = new Random(p); it.map(_ => (Array.fill(784)(rnd.nextFloat()), rnd.nextInt(10).toLong))
      }
      .toDF("features", "label")
    if (withLabel) generated else generated.select("features")
  }

  /** `rows` rows of `k` float columns f0..f(k-1), uniform in [0, 1). */
  private def flat(spark: SparkSession, rows: Int, k: Int): DataFrame =
    spark.range(0, rows, 1, 2).select((0 until k).map(i => rand(i.toLong).cast("float").as(s"f$i")): _*)

  /** (d): timed 1-worker fits of mnist_mlp over the Parquet file at `path`, and the split of the best one. */
  private def fit(
      spark: SparkSession,
      path: String,
      rows: Int,
      batch: Int,
      epochs: Int,
      repeats: Int,
      threads: Int
  ): Unit = {
    write(path)(features(spark, rows, withLabel = true))
    def estimator(epochs: Int) = new SpindleEstimator()
      .setModelPath("tests/fixtures/mnist_mlp")
      .setInputCols(Map("features" -> "features", "labels" -> "label"))
      .setNumWorkers(1)
      .setEpochs(epochs)
      .setBatchSize(batch)
      .setIntraOpThreads(threads)
      .setInterOpThreads(threads)
    // The file read as one partition, one per worker: fit then reads its column batches. (Another number of partitions
    // is repartitioned to numWorkers, a shuffle of the whole file.)
    spark.conf.set("spark.sql.files.maxPartitionBytes", "16g")
    spark.conf.set("spark.sql.files.minPartitionNum", "1")
    println(s"  fit input: ${spark.read.parquet(path).rdd.getNumPartitions} partitions of Parquet")
    remove(estimator(1).fit(spark.read.parquet(path)).summary.exportPath) // warm executors, the file in page cache
    val runs = (0 until repeats).map { i =>
      val t0 = System.nanoTime()
      val summary = estimator(epochs).fit(spark.read.parquet(path)).summary
      val wall = (System.nanoTime() - t0) / 1e9
      remove(summary.exportPath)
      val steps = summary.steps
      val inputWait = steps.map(_.inputWaitMs).sum / 1e3
      val compute = steps.map(_.computeMs).sum / 1e3
      val allReduce = steps.map(_.allReduceMs).sum / 1e3
      val stepSum = steps.map(s => s.examples / math.max(s.examplesPerSecond, 1e-9)).sum
      println(
        f"  fit ${i + 1}: wall $wall%.3f s, ${steps.size} steps summing to $stepSum%.3f s (input wait " +
          f"$inputWait%.3f, compute $compute%.3f, all-reduce $allReduce%.3f s), first epoch fed " +
          f"${summary.feedSecondsPerWorker.head}%.3f s"
      )
      (wall, inputWait, compute, allReduce, stepSum)
    }
    val walls = runs.map(_._1).sorted
    val samples = rows.toLong * epochs
    println(
      f"BENCH ${"d.fit"}%-24s best ${samples / walls.head}%12.0f median ${samples / Bench.median(walls)}%12.0f " +
        f"samples/s ($repeats runs after 1 untimed: best ${walls.head}%.3f s, median ${Bench.median(walls)}%.3f s)"
    )
    val (wall, inputWait, compute, allReduce, stepSum) = runs.minBy(_._1)
    println(
      f"BENCH d.split wall $wall%.3f inputWait $inputWait%.3f compute $compute%.3f allReduce $allReduce%.3f " +
        f"fixed ${wall - inputWait - compute - allReduce}%.3f stepSum $stepSum%.3f s"
    )
  }
}
