package io.spindle.benches

import java.nio.file.{Files, Paths}

import scala.jdk.CollectionConverters._

import org.apache.spark.sql.SparkSession

import io.spindle.{SpindleEstimator, SpindleModel}

/** Peak resident memory of a `local[2]` JVM (driver and executor in one process, as YARN and Kubernetes would count an
  * executor) while Spindle trains on and scores `rows` rows x 784 float32: a 1-worker fit of the MLP 784-128-10 for 2
  * epochs (epoch 2 replays the spill file), then a transform of the same rows. benches/memory.sh runs it at 1x and 10x
  * the rows, each in a fresh JVM, and prints the ratio.
  *
  * The rows are generated as they are read (not cached), and the heap is fixed and touched up front (-Xms = -Xmx,
  * -XX:+AlwaysPreTouch), so what grows with the data is what Spindle (or Spark's row path) keeps resident. A warm-up
  * fit and transform over 1,000 rows loads libtensorflow and the model first; `BENCH rss` prints the peak after the
  * warm-up and after the run (VmHWM) and the anon/file split at the sampled peak.
  *
  * Usage: MemoryBench [rows=60000]
  */
object MemoryBench {
  def main(args: Array[String]): Unit = {
    val rows = Bench.arg(args, 0, 60000)
    val spark = Bench.spark("spindle-memory-bench")
    val sampler = new Sampler
    sampler.start()

    def run(n: Int): Unit = {
      val df = TrainingBench.generated(spark, n, 784)
      val model = new SpindleEstimator()
        .setModelPath("tests/fixtures/mnist_mlp")
        .setInputCols(Map("features" -> "features", "labels" -> "label"))
        .setNumWorkers(1)
        .setEpochs(2)
        .setBatchSize(256)
        .fit(df)
      SpindleModel
        .fromSavedModel("tests/fixtures/mnist_mlp")
        .setOutputCols(Map("probabilities" -> "probabilities"))
        .transform(df)
        .write
        .format("noop")
        .mode("overwrite")
        .save()
      require(model.summary.steps.nonEmpty, "the fit ran no step")
    }
    run(1000)
    val warm = Sampler.status("VmHWM")
    sampler.reset()
    run(rows)
    val peak = Sampler.status("VmHWM")
    val (anon, file, shmem) = sampler.atPeak
    println(
      f"BENCH rss rows=$rows%d warm-up peak ${warm / 1024.0}%.0f MiB, peak ${peak / 1024.0}%.0f MiB " +
        f"(at the sampled peak: anon ${anon / 1024.0}%.0f, file ${file / 1024.0}%.0f, shmem ${shmem / 1024.0}%.0f MiB)"
    )
    sampler.interrupt()
    spark.stop()
  }

  /** `rows` rows of 784 floats in [0, 1) and a label 0..9 in one partition, generated as they are read. */
  /** Reads /proc/self/status every 10 ms and keeps the RssAnon/RssFile/RssShmem of the largest VmRSS seen. */
  private class Sampler extends Thread("rss-sampler") {
    setDaemon(true)
    @volatile private var best = (0L, 0L, 0L, 0L)
    def reset(): Unit = best = (0L, 0L, 0L, 0L)
    def atPeak: (Long, Long, Long) = (best._2, best._3, best._4)
    override def run(): Unit =
      try {
        while (true) {
          val s = Sampler.all()
          if (s("VmRSS") > best._1) best = (s("VmRSS"), s("RssAnon"), s("RssFile"), s("RssShmem"))
          Thread.sleep(10)
        }
      } catch { case _: InterruptedException => }
  }

  private object Sampler {

    /** /proc/self/status's kB figures by name. */
    def all(): Map[String, Long] =
      Files
        .readAllLines(Paths.get("/proc/self/status"))
        .asScala
        .flatMap { line =>
          line.split(":\\s+", 2) match {
            case Array(k, v) if v.endsWith(" kB") => Some(k -> v.stripSuffix(" kB").trim.toLong)
            case _                                => None
          }
        }
        .toMap

    def status(name: String): Long = all()(name)
  }
}
