package io.spindle.cluster

import java.nio.file.{Files, Paths}

import org.apache.spark.sql.SparkSession

import io.spindle.{SpindleEstimator, SpindleException, SpindleModel}
import io.spindle.examples.Digits

/** The application [[YarnSuite]] submits to YARN (client or cluster mode) with Spindle from `--packages`: trains the
  * digits on two workers with every path on HDFS (model, checkpoints every 20 steps, export, TensorBoard), scores the
  * held-out digits with `SpindleModel.load` of the export, and writes one line to `RESULT` (a local file: the driver
  * may run in a YARN container) and to stdout: `FIT DONE attempts <n> resumed <paths> steps <first>-<last> firstLoss
  * <l> lastLoss <l> accuracy <a>`, or `FIT FAILED <exception>: <message>`.
  *
  * {{{YarnDriver DIGITS_CSV MODEL_INIT WORK_DIR EPOCHS RESULT}}}
  */
object YarnDriver {
  def main(args: Array[String]): Unit = {
    val Array(digitsCsv, modelInit, work, epochs, result) = args
    val spark = SparkSession.builder().appName("spindle-yarn").getOrCreate()
    val line =
      try {
        val digits = Digits.load(spark, digitsCsv)
        val summary = new SpindleEstimator()
          .setModelPath(modelInit)
          .setInputCols(Map("features" -> "features", "labels" -> "label"))
          .setNumWorkers(2)
          .setEpochs(epochs.toInt)
          .setBatchSize(16)
          .setHeartbeatTimeout(10)
          .setCheckpointDir(s"$work/checkpoints")
          .setCheckpointEverySteps(20)
          .setExportPath(s"$work/export")
          .setTensorboardDir(s"$work/tensorboard")
          .fit(Digits.training(digits))
          .summary
        val scored = SpindleModel.load(s"$work/export").transform(Digits.heldOut(digits))
        val (correct, total) = Digits.accuracy(Digits.withPrediction(scored))
        val attempts = summary.attempts
        s"FIT DONE attempts ${attempts.size} resumed ${attempts.map(_.resumedFrom).mkString(",")} " +
          s"ends ${attempts.map(_.ended.replace(' ', '_')).mkString(",")} " +
          s"steps ${summary.steps.head.step}-${summary.steps.last.step} " +
          s"firstLoss ${summary.epochs.head.loss} lastLoss ${summary.epochs.last.loss} " +
          s"accuracy ${correct.toDouble / total}"
      } catch {
        case e: SpindleException => s"FIT FAILED ${e.getClass.getSimpleName}: ${e.getMessage}"
        case e: Throwable        => s"FIT FAILED with no Spindle exception: $e"
      }
    val text = line.replace('\n', ' ')
    println(text)
    Files.writeString(Paths.get(result), text + "\n")
    spark.stop()
  }
}
