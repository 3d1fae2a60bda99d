package io.spindle.examples

import java.io.FileInputStream
import java.util.zip.GZIPInputStream

import scala.io.Source

import org.apache.spark.SparkConf
import org.apache.spark.sql.{DataFrame, SparkSession}
import org.apache.spark.sql.functions.{col, udf}

import io.spindle.SpindleModel

/** The main example: scores the handwritten digits (scikit-learn's copy of the UCI data set, 1797 8x8 images) with a
  * Keras model exported by `python/spindle_keras`, on an embedded local Spark, and prints held-out accuracy.
  *
  * Usage: DigitsInference <digits.csv.gz> [savedModelDir]
  */
object DigitsInference {

  /** Rows as (index, features in [0, 1], label), in file order: row i is held out when i % 4 == 0. */
  def loadDigits(spark: SparkSession, csvGz: String): DataFrame = {
    val source = Source.fromInputStream(new GZIPInputStream(new FileInputStream(csvGz)))
    val rows =
      try
        source
          .getLines()
          .filter(_.trim.nonEmpty)
          .zipWithIndex
          .map { case (line, i) =>
            val values = line.split(',').map(_.trim.toDouble)
            (i, values.init.map(v => (v / 16.0).toFloat), values.last.toLong)
          }
          .toVector
      finally source.close()
    spark.createDataFrame(rows).toDF("index", "features", "label")
  }

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
      val digits = loadDigits(spark, args(0)).cache()
      val heldOut = digits.filter(col("index") % 4 === 0)
      val model = SpindleModel
        .load(modelDir)
        .setInputCols(Map("features" -> "features"))
        .setOutputCols(Map("probabilities" -> "probabilities"))
        .setBatchSize(128)
      println(model.describeSignature())
      val argmax = udf((p: Seq[Float]) => p.indices.maxBy(p).toLong)
      val scored = model.transform(heldOut).withColumn("prediction", argmax(col("probabilities")))
      val total = scored.count()
      val correct = scored.filter(col("prediction") === col("label")).count()
      scored.select("index", "label", "prediction").show(5)
      println(f"held-out accuracy: ${correct.toDouble / total}%.4f ($correct of $total digits)")
    } finally spark.stop()
  }
}
