package io.spindle.cluster

import org.apache.spark.sql.SparkSession

import io.spindle.{SpindleClusterException, SpindleEstimator, SpindleException}
import io.spindle.examples.Digits

/** The driver of [[LostHostSuite]], started by `spark-submit` inside host A's namespace against the emulated cluster's
  * master: trains the digits on 2 workers, one per host, for longer than the suite waits, with a checkpoint every 50
  * steps. Prints `EXECUTORS <hosts>` once both executors have registered, then one line: `FIT FAILED <exception>:
  * <message>` (the Spindle exception `fit` threw), or `FIT ENDED`.
  *
  * {{{LostHostDriver DIGITS_CSV MODEL_INIT EXPORT_DIR CHECKPOINT_DIR}}}
  */
object LostHostDriver {
  def main(args: Array[String]): Unit = {
    val Array(digitsCsv, modelInit, exportDir, checkpointDir) = args
    val spark = SparkSession.builder().appName("spindle-lost-host").getOrCreate()
    val sc = spark.sparkContext
    val deadline = System.currentTimeMillis() + 120000
    while (sc.getExecutorMemoryStatus.size < 3 && System.currentTimeMillis() < deadline) Thread.sleep(200)
    println(s"EXECUTORS ${sc.getExecutorMemoryStatus.keys.map(_.split(':')(0)).toSeq.sorted.mkString(" ")}")
    val digits = Digits.training(Digits.load(spark, digitsCsv))
    val line =
      try {
        new SpindleEstimator()
          .setModelPath(modelInit)
          .setInputCols(Map("features" -> "features", "labels" -> "label"))
          .setExportPath(exportDir)
          .setNumWorkers(2)
          .setEpochs(5000)
          .setBatchSize(32)
          .setCheckpointDir(checkpointDir)
          .setCheckpointEverySteps(50)
          .fit(digits)
        "FIT ENDED"
      } catch {
        case e: SpindleClusterException => s"FIT FAILED SpindleClusterException: ${e.getMessage}"
        case e: SpindleException        => s"FIT FAILED ${e.getClass.getSimpleName}: ${e.getMessage}"
        case e: Throwable               => s"FIT FAILED with no Spindle exception: $e"
      }
    println(line.replace('\n', ' '))
    System.out.flush()
    // Stopping the context would wait on the executor that cannot be reached: the suite has what it needs.
    Runtime.getRuntime.halt(0)
  }
}
