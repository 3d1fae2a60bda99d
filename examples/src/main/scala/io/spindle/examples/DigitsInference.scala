package io.spindle.examples

import org.apache.spark.SparkConf
import org.apache.spark.sql.SparkSession

import io.spindle.SpindleModel

/** Inference only: scores the handwritten digits (scikit-learn's copy of the UCI data set, 1797 8x8 images) with a
  * Keras model exported by `python/spindle/keras`, on an embedded local Spark, and prints held-out accuracy.
  *
  * Usage: DigitsInference <digits.csv.gz> [savedModelDir]
  */
object DigitsInference {

  def main(args: Array[String]): Unit = {
    require(args.nonEmpty, "usage: DigitsInference <digits.csv.gz> [savedModelDir]")
    val modelDir = args.lift(1).getOrElse("tests/fixtures/digits_mlp_trained")
    // spark-submit sets the master; run on an embedded local[2] Spark otherwise.
    val builder = SparkSession.builder()
    if (!new SparkConf().contains("spark.master")) builder.master("local[2]")
    val spark = builder
      .appName("spindle-digits")
      .config("spark.ui.enabled", "false")
      .getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    try {
      val heldOut = Digits.heldOut(Digits.load(spark, args(0))).cache()
      val model = SpindleModel
        .load(modelDir)
        .setInputCols(Map("features" -> "features"))
        .setOutputCols(Map("probabilities" -> "probabilities"))
        .setBatchSize(128)
      println(model.describeSignature())
      val scored = Digits.withPrediction(model.transform(heldOut))
      val (correct, total) = Digits.accuracy(scored)
      scored.select("index", "label", "prediction").show(5)
      println(f"held-out accuracy: ${correct.toDouble / total}%.4f ($correct of $total digits)")
    } finally spark.stop()
  }
}
