package io.spindle.examples

import java.io.FileInputStream
import java.util.zip.GZIPInputStream

import scala.io.Source

import org.apache.spark.sql.{DataFrame, SparkSession}
import org.apache.spark.sql.functions.{array_max, array_position, col}

/** scikit-learn's copy of the UCI handwritten digits (1797 8x8 images, `digits.csv.gz`), as the examples, tests and
  * benchmarks use it.
  */
object Digits {

  /** Rows as (index, features in [0, 1], label), in file order: row i is held out when i % 4 == 0. */
  def load(spark: SparkSession, csvGz: String): DataFrame = {
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

  def heldOut(digits: DataFrame): DataFrame = digits.filter(col("index") % 4 === 0)

  def training(digits: DataFrame): DataFrame = digits.filter(col("index") % 4 =!= 0)

  /** Adds `prediction`, the most probable class of the `probabilities` array column. Built-in functions only, no UDF:
    * executors that have only Spindle's jar cannot deserialize a lambda of this project.
    */
  def withPrediction(scored: DataFrame): DataFrame = {
    val p = col("probabilities")
    scored.withColumn("prediction", array_position(p, array_max(p)) - 1)
  }

  /** (correct, total) over rows with `label` and `prediction`. */
  def accuracy(predicted: DataFrame): (Long, Long) =
    (predicted.filter(col("prediction") === col("label")).count(), predicted.count())
}
