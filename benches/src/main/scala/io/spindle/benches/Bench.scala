package io.spindle.benches

import org.apache.spark.sql.SparkSession

/** What every benchmark starts with: its numeric arguments and an embedded `local[2]` Spark without the UI. */
object Bench {

  /** Argument `i` as a number, or `default` when it is not given. */
  def arg(args: Array[String], i: Int, default: Int): Int = args.lift(i).map(_.toInt).getOrElse(default)

  def spark(name: String): SparkSession = {
    val spark = SparkSession
      .builder()
      .master("local[2]")
      .appName(name)
      .config("spark.ui.enabled", "false")
      .getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    spark
  }
}
