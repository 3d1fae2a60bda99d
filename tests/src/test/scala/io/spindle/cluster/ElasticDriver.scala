package io.spindle.cluster

import org.apache.spark.sql.SparkSession

import io.spindle.{SpindleEstimator, SpindleException}
import io.spindle.examples.Digits

/** The driver of [[ElasticSuite]], started by `spark-submit` inside host 1's namespace: trains the digits on 4 workers,
  * one per host, with `minWorkers` 3 and a checkpoint every 50 steps. Prints `EXECUTORS <hosts>` once the 4 executors
  * have registered, then one line: `FIT DONE workers <n> changes <from>-><to>@<millis>,... resumed <path> firstLoss <l>
  * lastLoss <l>` (the loss means of the first and last epochs), or `FIT FAILED <exception>: <message>`.
  *
  * {{{ElasticDriver DIGITS_CSV MODEL_INIT EXPORT_DIR CHECKPOINT_DIR EPOCHS}}}
  */
object ElasticDriver {
  def main(args: Array[String]): Unit = {
    val Array(digitsCsv, modelInit, exportDir, checkpointDir, epochs) = args
    val spark = SparkSession.builder().appName("spindle-elastic").getOrCreate()
    val sc = spark.sparkContext
    val deadline = System.currentTimeMillis() + 180000
    while (sc.getExecutorMemoryStatus.size < 5 && System.currentTimeMillis() < deadline) Thread.sleep(200)
    println(s"EXECUTORS ${sc.getExecutorMemoryStatus.keys.map(_.split(':')(0)).toSeq.sorted.mkString(" ")}")
    val digits = Digits.training(Digits.load(spark, digitsCsv))
    val line =
      try {
        val summary = new SpindleEstimator()
          .setModelPath(modelInit)
          .setInputCols(Map("features" -> "features", "labels" -> "label"))
          .setExportPath(exportDir)
          .setNumWorkers(4)
          .setMinWorkers(3)
          .setEpochs(epochs.toInt)
          .setBatchSize(16)
          .setHeartbeatTimeout(10)
          .setCheckpointDir(checkpointDir)
          .setCheckpointEverySteps(50)
          .fit(digits)
          .summary
        val changes = summary.workerChanges.map(c => s"${c.from}->${c.to}@${c.atMillis}").mkString(",")
        s"FIT DONE workers ${summary.numWorkers} changes $changes " +
          s"resumed ${summary.workerChanges.map(_.resumedFrom).mkString(",")} " +
          s"firstLoss ${summary.epochs.head.loss} lastLoss ${summary.epochs.last.loss}"
      } catch {
        case e: SpindleException => s"FIT FAILED ${e.getClass.getSimpleName}: ${e.getMessage}"
        case e: Throwable        => s"FIT FAILED with no Spindle exception: $e"
      }
    println(line.replace('\n', ' '))
    System.out.flush()
    // Stopping the context would wait on the executor that cannot be reached: the suite has what it needs.
    Runtime.getRuntime.halt(0)
  }
}
