package io.spindle.benches

import org.apache.spark.sql.SparkSession

/** What every benchmark starts with: its numeric arguments and an embedded `local[2]` Spark without the UI. */
object Bench {

  /** Argument `i` as a number, or `default` when it is not given. */
  def arg(args: Array[String], i: Int, default: Int): Int = args.lift(i).map(_.toInt).getOrElse(default)

  /** Rows/s of `run` over `rows` rows: the best of `repeats` timed runs after `repeats` untimed ones (the JIT needs a
    * dozen passes to reach steady state), printed as a `BENCH label` line.
    */
  def best(label: String, rows: Long, repeats: Int)(run: => Double): Double = {
    (0 until repeats).foreach(_ => run)
    val times = (0 until repeats).map { _ =>
      val t0 = System.nanoTime(); val check = run; val s = (System.nanoTime() - t0) / 1e9
      require(!check.isNaN, s"$label produced NaN"); s
    }
    val sorted = times.sorted
    val rate = rows / sorted.head
    println(
      f"BENCH $label%-14s ${rate}%12.0f rows/s (best of $repeats: ${sorted.head}%.3f s, median ${sorted(sorted.size / 2)}%.3f s)"
    )
    rate
  }

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
