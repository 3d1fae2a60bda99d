package io.spindle

import org.apache.spark.ml.linalg.Vectors
import org.apache.spark.sql.{DataFrame, Row, SpindleScoreExec, SpindleSqlShim}
import org.apache.spark.sql.execution.adaptive.AdaptiveSparkPlanHelper

/** The columnar path (column batches from the vectorized Parquet reader, a vector at a time) against the row path
  * (`setColumnar(false)`), on the same Parquet file: equal outputs for every dtype, rank and column kind the row path
  * takes, equal errors, and each run shown to have taken the path it claims.
  */
class ColumnarSuite extends SpindleTestBase with AdaptiveSparkPlanHelper {

  private def model(name: String, signature: String = "serving_default") =
    SpindleModel.fromSavedModel(fixture(name)).setSignature(signature).setBatchSize(16)

  /** `df` as Parquet files (three of them), read back: the vectorized reader gives column batches. */
  private def parquet(df: DataFrame): DataFrame = {
    val path = tempDir("columnar").resolve("data").toString
    df.repartition(3).write.parquet(path)
    spark.read.parquet(path)
  }

  // Binary values compare by content, arrays of them too.
  private def plain(v: Any): Any = v match {
    case b: Array[Byte]       => b.toSeq
    case s: collection.Seq[_] => s.map(plain).toSeq
    case r: Row               => r.toSeq.map(plain)
    case other                => other
  }

  private def run(m: SpindleModel, df: DataFrame, columnar: Boolean): Seq[Seq[Any]] = {
    val scored = m.setColumnar(columnar).transform(df)
    val rows = scored.collect().map(r => r.toSeq.map(plain)).sortBy(_.head.asInstanceOf[Int]).toSeq
    val taken = collect(scored.queryExecution.executedPlan) { case s: SpindleScoreExec => s.supportsColumnar }
    assert(taken == Seq(columnar), s"columnar path taken: $taken, expected $columnar")
    rows
  }

  /** Scores `df` (its first column an int id) from Parquet both ways and asserts equal rows; returns them. */
  private def same(m: SpindleModel, df: DataFrame): Seq[Seq[Any]] = {
    val input = parquet(df)
    val rows = run(m, input, columnar = false)
    assert(rows.size == df.count())
    val columnar = run(m, input, columnar = true)
    rows.zip(columnar).foreach { case (r, c) => assert(c == r, s"row ${r.head}") }
    assert(columnar.size == rows.size)
    columnar
  }

  test("the four first dtypes, copied from the vectors in bulk or converted value by value, equal the row path") {
    val s = spark
    import s.implicits._
    val n = 203 // not a multiple of the batch
    val exact = (0 until n)
      .map(i => (i, Seq.tabulate(4)(k => i * 0.5f - k), Seq.tabulate(3)(k => i * 1e-3 + k), i - 100, Seq(i * 7L, -i)))
      .toDF("id", "x_f32", "x_f64", "x_i32", "x_i64")
    val rows = same(model("dtypes_model"), exact)
    assert(rows(5)(5) == Seq(5f, 3f, 1f, -1f)) // y_f32 = 2 x_f32
    val converted = (0 until n)
      .map(i =>
        (i, Seq.tabulate(4)(k => (i - k).toDouble), Seq.tabulate(3)(k => (i + k).toFloat), i.toShort, Seq(i, -i))
      )
      .toDF("id", "x_f32", "x_f64", "x_i32", "x_i64")
    same(model("dtypes_model"), converted)
  }

  test("off-heap column vectors are copied from their address, with the same outputs") {
    val s = spark
    import s.implicits._
    val df = (0 until 300).map(i => (i, Seq.tabulate(784)(k => ((i * 31 + k) % 97) / 97f))).toDF("id", "features")
    spark.conf.set("spark.sql.columnVector.offheap.enabled", "true")
    try same(model("mnist_mlp").setOutputCols(Map("probabilities" -> "p")), df)
    finally spark.conf.unset("spark.sql.columnVector.offheap.enabled")
    same(model("mnist_mlp").setOutputCols(Map("probabilities" -> "p")), df)
  }

  test("every fixed-width dtype beyond those, in and out, equals the row path") {
    val s = spark
    import s.implicits._
    val df = (0 until 150)
      .map { i =>
        (
          i,
          i % 3 == 0,
          Seq(i % 256, 255 - i % 256, (i * 7) % 256),
          ((i % 256) - 128).toByte,
          Seq((-32768 + i * 331).toShort, (32767 - i * 17).toShort),
          (i * 331) % 65536,
          i * 21474836L,
          i * 46116860184273879L,
          Seq(i * 0.37f - 30f, 60000f - i * 301f),
          (i * 1.37f - 100f).toDouble
        )
      }
      .toDF("id", "x_bool", "x_u8", "x_i8", "x_i16", "x_u16", "x_u32", "x_u64", "x_f16", "x_bf16")
    same(model("widths_model"), df)
  }

  test("nested arrays in and nested outputs, images as bytes, ragged bytes: the row path's kinds give equal rows") {
    val s = spark
    import s.implicits._
    val nested = (0 until 60)
      .map(i => (i, Seq.tabulate(2, 3, 2)((a, b, c) => i + a * 0.5f - b + c * 0.25f)))
      .toDF("id", "x_img")
    same(model("widths_model", "nested").setNestedOutputs(true), nested)
    val images = (0 until 60).map(i => (i, Array.tabulate[Byte](60)(k => (i * 3 + k).toByte))).toDF("id", "pixels")
    same(model("widths_model", "image"), images)
    val raw = (0 until 60).map(i => (i, Array.tabulate[Byte](i % 41)(k => (i + k * 5).toByte))).toDF("id", "raw")
    same(model("widths_model", "raw_bytes"), raw)
  }

  test("strings, string outputs (text and binary), ragged rows, tf.Examples and vectors give equal rows") {
    val s = spark
    import s.implicits._
    val text = Seq("", "a", "été", "spindle", "x" * 300)
    val strings = (0 until 90).map(i => (i, text(i % 5) * (i % 3), i % 2 == 0)).toDF("id", "text", "flag")
    same(model("strings_model"), strings)
    val pairs = (0 until 90).map(i => (i, Seq(text(i % 5), text((i + 2) % 5)))).toDF("id", "pair")
    same(model("strings_model", "pairs").setBinaryOutputs(Array("first_byte")), pairs)
    val ragged = (0 until 90)
      .map(i => (i, Seq.tabulate(i % 7)(k => (i * k).toLong), Seq.tabulate(i % 5)(k => k * 0.5f)))
      .toDF("id", "ids", "weights")
    same(model("strings_model", "ragged"), ragged)
    val examples = (0 until 90)
      .map(i => (i, Seq(i * 0.25f, -i.toFloat), i.toLong - 60, text(i % 5), Seq.tabulate(i % 4)(k => (i * k).toLong)))
      .toDF("id", "xs", "count", "label", "ids")
    same(
      model("strings_model", "examples")
        .setExampleFeatures(Map("x" -> "xs", "n" -> "count", "tag" -> "label", "ids" -> "ids")),
      examples
    )
    val vectors = (0 until 90)
      .map { i =>
        val v = if (i % 2 == 0) Vectors.dense(i, -i, 0.5, 1) else Vectors.sparse(4, Array(1, 3), Array(i, 2.0))
        (i, v)
      }
      .toDF("id", "x_f32")
    same(model("dtypes_model", "double_only"), vectors)
  }

  test("a null, or an array of the wrong length, fails naming column and row, as on the row path") {
    val s = spark
    import s.implicits._
    def failure(df: DataFrame, columnar: Boolean): String =
      failureOf[SpindleInputException](
        model("dtypes_model", "double_only").setColumnar(columnar).transform(df).collect()
      ).getMessage
    val nulls = parquet(
      (0 until 40).map(i => (i, if (i == 17) null else Seq.tabulate(4)(_.toFloat))).toDF("id", "x_f32").coalesce(1)
    )
    val message = failure(nulls, columnar = true)
    assert(message.contains("column 'x_f32'") && message.contains("null"), message)
    assert(message == failure(nulls, columnar = false))
    val short = parquet((0 until 40).map(i => (i, Seq.fill(if (i == 23) 3 else 4)(1f))).toDF("id", "x_f32").coalesce(1))
    val wrong = failure(short, columnar = true)
    assert(wrong.contains("has 3 elements, expected 4"), wrong)
    assert(wrong == failure(short, columnar = false))
  }

  test("a projection of the output hands on only the columns it reads, on both paths") {
    val s = spark
    import s.implicits._
    val df = parquet((0 until 500).map(i => (i, Seq.tabulate(784)(k => (k % 13) * i / 500f))).toDF("id", "features"))
    val m = model("mnist_mlp").setOutputCols(Map("probabilities" -> "p"))
    val selected = m.transform(df).select("id", "p")
    val projected = selected.collect().sortBy(_.getInt(0))
    val passed = collect(selected.queryExecution.executedPlan) { case s: SpindleScoreExec => s.passed.map(_.name) }
    assert(passed == Seq(Seq("id")), "the features column is not handed on")
    val rowPath = m.setColumnar(false).transform(df).select("p", "id")
    assert(
      rowPath.collect().sortBy(_.getInt(1)).map(_.getSeq[Float](0)).toSeq == projected.map(_.getSeq[Float](1)).toSeq
    )
    assert(collect(rowPath.queryExecution.executedPlan) { case s: SpindleScoreExec =>
      s.passed.map(_.name)
    } == Seq(Seq("id")))
    val full = m.setColumnar(false).transform(df).collect().sortBy(_.getInt(0))
    assert(projected.map(_.getSeq[Float](1)).toSeq == full.map(_.getSeq[Float](2)).toSeq)
    projected.foreach(r => assert(math.abs(r.getSeq[Float](1).sum - 1f) < 1e-4, s"row ${r.getInt(0)}"))
  }

  test("packed scalar columns, scattered from their vectors or converted, equal the row path; a cached relation too") {
    val floats = spark
      .range(0, 300, 1, 3)
      .selectExpr("cast(id as int) id" +: (0 until 200).map(j => s"cast((id * 7 + $j) % 101 / 8.0 as float) f$j"): _*)
    val packed = model("packed_model").setPackedInputCols(Map("x" -> (0 until 200).map(j => s"f$j")))
    // More than 100 fields: Spark's Parquet scan gives column batches only under a larger spark.sql.codegen.maxFields.
    spark.conf.set("spark.sql.codegen.maxFields", "1000")
    try same(packed, floats)
    finally spark.conf.unset("spark.sql.codegen.maxFields")
    val mixed =
      spark.range(0, 300, 1, 3).selectExpr("cast(id as int) id", "cast(id as float) a", "id * 2 b", "id % 3 = 0 c")
    val anyWidth = model("packed_model", "any_width").setPackedInputCols(Map("x" -> Seq("c", "a", "b")))
    same(anyWidth, mixed)
    val cached = floats.select("id", (0 until 20).map(j => s"f$j"): _*).cache()
    try {
      val twenty = model("packed_model", "any_width").setPackedInputCols(Map("x" -> (0 until 20).map(j => s"f$j")))
      val rows = run(twenty, cached, columnar = false)
      assert(run(twenty, cached, columnar = true) == rows)
    } finally cached.unpersist()
  }

  test("fit reads column batches when its input is columnar, in windows across batches, as it trains on rows") {
    val s = spark
    import s.implicits._
    val random = new scala.util.Random(3)
    val rows = (0 until 600).map { i =>
      val label = random.nextInt(10)
      (i, Array.tabulate(64)(j => random.nextFloat() + (if (j / 6 == label) 0.5f else 0f)), label.toLong)
    }
    val path = tempDir("columnar-fit").resolve("data").toString
    rows.toDF("id", "pixels", "digit").coalesce(1).write.parquet(path)
    // Column batches of 70 rows: every window of 32 rows but a few spans two of them.
    spark.conf.set("spark.sql.parquet.columnarReaderBatchSize", "70")
    try {
      val df = spark.read.parquet(path)
      assert(SpindleSqlShim.columnarBatches(df, 1).isDefined, df.queryExecution.executedPlan)
      def fit(columnar: Boolean) = new SpindleEstimator()
        .setModelPath(fixture("digits_mlp_init"))
        .setInputCols(Map("features" -> "pixels", "labels" -> "digit"))
        .setExportPath(tempDir("columnar-export").resolve("model").toString)
        .setBatchSize(32)
        .setEpochs(2)
        .setColumnar(columnar)
        .fit(df)
        .summary
      val (byRows, byColumns) = (fit(columnar = false), fit(columnar = true))
      assert(byColumns.steps.map(_.examples) == byRows.steps.map(_.examples))
      byColumns.steps.zip(byRows.steps).foreach { case (c, r) =>
        assert(
          math.abs(c.loss - r.loss) <= 1e-5 * math.max(1.0, math.abs(r.loss)),
          s"step ${c.step}: ${c.loss} ${r.loss}"
        )
      }
      assert(byColumns.epochs.last.loss < byColumns.epochs.head.loss)
    } finally spark.conf.unset("spark.sql.parquet.columnarReaderBatchSize")
  }
}
