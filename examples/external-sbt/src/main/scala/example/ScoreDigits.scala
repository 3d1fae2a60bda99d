package example

import scala.io.Source

import org.apache.spark.sql.SparkSession

import io.spindle.SpindleModel

/** Scores 100 held-out handwritten digits with the Keras model in tests/fixtures/digits_mlp_trained, through the
  * published Spindle artifact alone, and checks every probability against the ones Python TensorFlow computed
  * (tests/fixtures/digits_expected.csv: index, label, 64 pixels f0..f63, 10 probabilities p0..p9).
  *
  * Usage: ScoreDigits [savedModelDir] [expected.csv]; exits 1 on any mismatch.
  */
object ScoreDigits {
  val Tolerance = 1e-5

  def main(args: Array[String]): Unit = {
    val modelDir = args.lift(0).getOrElse("../../tests/fixtures/digits_mlp_trained")
    val csv = args.lift(1).getOrElse("../../tests/fixtures/digits_expected.csv")
    val source = Source.fromFile(csv)
    val rows =
      try
        source.getLines().drop(1).map(_.split(',')).map { v =>
          (v(0).toInt, v(1).toInt, v.slice(2, 66).map(_.toFloat), v.slice(66, 76).map(_.toDouble))
        }.toVector
      finally source.close()
    val expected = rows.map(r => r._1 -> r._4).toMap

    val spark = SparkSession
      .builder()
      .master("local[2]")
      .appName("spindle-external-sbt")
      .config("spark.driver.host", "127.0.0.1")
      .config("spark.driver.bindAddress", "127.0.0.1")
      .config("spark.ui.enabled", "false")
      .getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    val errors =
      try {
        import spark.implicits._
        val df = rows.map { case (i, label, pixels, _) => (i, label, pixels) }.toDF("index", "label", "pixels")
        val scored = SpindleModel
          .load(modelDir)
          .setInputCols(Map("features" -> "pixels"))
          .setOutputCols(Map("probabilities" -> "probabilities"))
          .setBatchSize(16)
          .transform(df)
          .select("index", "label", "probabilities")
          .collect()
        var maxDiff = 0.0
        var correct = 0
        val mismatches = scored.toSeq.flatMap { r =>
          val index = r.getInt(0)
          val got = r.getSeq[Float](2).map(_.toDouble)
          val want = expected(index)
          val diff = if (got.length == want.length) got.zip(want).map { case (g, w) => math.abs(g - w) }.max else 1.0
          maxDiff = math.max(maxDiff, diff)
          if (got.indices.maxBy(got) == r.getInt(1)) correct += 1
          if (diff > Tolerance)
            Seq(s"digit $index: got ${got.mkString("[", ", ", "]")}, want ${want.mkString("[", ", ", "]")}")
          else Nil
        }
        val missing = expected.keySet -- scored.map(_.getInt(0))
        println(
          s"checked ${scored.length} digits x 10 probabilities against $csv: max |diff| = $maxDiff " +
            s"(tolerance $Tolerance), $correct of ${scored.length} predicted labels right"
        )
        mismatches ++ missing.toSeq.sorted.map(i => s"digit $i: no output row") ++
          (if (scored.length != rows.length) Seq(s"${scored.length} output rows for ${rows.length} inputs") else Nil)
      } finally spark.stop()
    if (errors.nonEmpty) {
      System.err.println(s"MISMATCH: ${errors.length} problem(s) scoring $modelDir with Spindle:")
      errors.take(10).foreach(e => System.err.println(s"  $e"))
      sys.exit(1)
    }
    println("OK: io.spindle:spindle-spark4_2.13:0.1.0 agrees with Python TensorFlow on every digit")
  }
}
