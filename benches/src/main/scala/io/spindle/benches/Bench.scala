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

  /** Best and median rates of a timed run (`unit`s per second). */
  final case class Rates(best: Double, median: Double)

  /** Rates of `run` over `units` units (rows, samples): `warmups` untimed runs, then the best and the median of
    * `repeats` timed ones, printed as `BENCH label best B median M unit/s (...)`, the line benches/columnar.sh reads.
    */
  def bestAndMedian(label: String, units: Long, warmups: Int, repeats: Int, unit: String = "rows")(
      run: => Unit
  ): Rates = {
    (0 until warmups).foreach(_ => run)
    val times = (0 until repeats).map { _ =>
      val t0 = System.nanoTime(); run; (System.nanoTime() - t0) / 1e9
    }.sorted
    val median = Bench.median(times)
    val rates = Rates(units / times.head, units / median)
    println(
      f"BENCH $label%-24s best ${rates.best}%12.0f median ${rates.median}%12.0f $unit/s " +
        f"($repeats runs after $warmups untimed: best ${times.head}%.3f s, median $median%.3f s)"
    )
    rates
  }

  /** The median of `xs` (the mean of the middle two when their number is even). */
  def median(xs: Seq[Double]): Double = {
    val s = xs.sorted
    if (s.size % 2 == 1) s(s.size / 2) else (s(s.size / 2 - 1) + s(s.size / 2)) / 2
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
