package io.spindle.examples

import java.nio.file.Files

import org.apache.spark.SparkConf
import org.apache.spark.sql.SparkSession

import io.spindle.{SpindleEstimator, SpindleModel}

/** The main example: trains the untrained Keras MLP exported by `python/spindle/keras` on the handwritten digits with
  * two synchronous workers (checkpointing, and writing TensorBoard events), evaluates it on held-out digits, and scores
  * with the trained model, on an embedded local Spark (`local[2]` unless a master is set, as spark-submit does).
  *
  * Usage: DigitsTraining <digits.csv.gz> [initialSavedModelDir] [exportDir] [workers=2]
  */
object DigitsTraining {

  def main(args: Array[String]): Unit = {
    require(args.nonEmpty, "usage: DigitsTraining <digits.csv.gz> [initialSavedModelDir] [exportDir] [workers=2]")
    val initial = args.lift(1).getOrElse("tests/fixtures/digits_mlp_init")
    val work = Files.createTempDirectory("spindle-digits")
    val exportPath = args.lift(2).getOrElse(work.resolve("model").toString)
    val workers = args.lift(3).map(_.toInt).getOrElse(2)
    val builder = SparkSession.builder()
    if (!new SparkConf().contains("spark.master")) builder.master("local[2]")
    val spark = builder.appName("spindle-digits-training").config("spark.ui.enabled", "false").getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    try {
      val digits = Digits.load(spark, args(0)).cache()
      val fitted: SpindleModel = new SpindleEstimator()
        .setModelPath(initial)
        .setInputCols(Map("features" -> "features", "labels" -> "label"))
        .setOutputCols(Map("probabilities" -> "probabilities"))
        .setNumWorkers(workers)
        .setEpochs(DigitsTraining.Epochs)
        .setBatchSize(DigitsTraining.BatchSize)
        .setSeed(1)
        .setExportPath(exportPath)
        .setCheckpointDir(work.resolve("checkpoints").toString) // a fresh one: a used one would be resumed from
        .setCheckpointEverySteps(200)
        .setTensorboardDir(work.resolve("tensorboard").toString) // tensorboard --logdir <this>
        .fit(Digits.training(digits))
      val losses = fitted.summary.lossHistory
      println(
        f"trained ${losses.length} steps on $workers workers: loss ${losses.head}%.4f -> ${losses.last}%.4f, " +
          f"${fitted.summary.examplesPerSecond}%.0f examples/s; exported to $exportPath"
      )
      println(s"checkpoints in ${work.resolve("checkpoints")}, TensorBoard events in ${work.resolve("tensorboard")}")
      val scored = Digits.withPrediction(fitted.transform(Digits.heldOut(digits)))
      val (correct, total) = Digits.accuracy(scored)
      scored.select("index", "label", "prediction").show(5)
      println(f"held-out accuracy: ${correct.toDouble / total}%.4f ($correct of $total digits)")
      // The export is a plain SavedModel: any SpindleModel (or TensorFlow) can load it later.
      val reloaded = SpindleModel.load(exportPath).setInputCols(Map("features" -> "features"))
      println(s"reloaded from $exportPath: ${reloaded.transform(Digits.heldOut(digits)).count()} rows scored")
    } finally spark.stop()
  }

  /** Settings that reach >= 97% held-out accuracy (see tests/fixtures/simulate_digits_training.py). */
  val Epochs = 30
  val BatchSize = 32
}
