package io.spindle

import java.nio.file.Files

import scala.jdk.CollectionConverters._

import com.fasterxml.jackson.databind.{JsonNode, ObjectMapper}
import org.apache.spark.sql.types._

/** Inputs whose rows vary in size: strings (DT_STRING in and out), ragged rows padded per batch, and tf.Examples built
  * per row; against Python TensorFlow's own run of the same signatures (tests/fixtures/strings_model,
  * tests/python/run_signature.py).
  */
class VariableInputsSuite extends SpindleTestBase {

  private def strings(signature: String) = SpindleModel.fromSavedModel(fixture("strings_model")).setSignature(signature)

  /** A tf.Example feature for run_signature.py: its dtype and its rows. */
  private case class Feature(dtype: String, rows: Seq[Any])

  private def json(v: Any): String = v match {
    case Feature(dtype, rows) => s"""{"dtype": "$dtype", "rows": ${json(rows)}}"""
    case s: collection.Seq[_] => s.map(json).mkString("[", ",", "]")
    case s: String            => new ObjectMapper().writeValueAsString(s)
    case f: Float             => f.toDouble.toString
    case other                => other.toString
  }

  /** Python TensorFlow's outputs of `signature` for `inputs` (input, or feature with `examples`, -> rows). */
  private def python(signature: String, examples: Option[String], inputs: (String, Any)*): JsonNode = {
    val file = tempDir("signature-inputs").resolve("inputs.json")
    Files.writeString(file, inputs.map { case (k, v) => s"${json(k)}: ${json(v)}" }.mkString("{", ",", "}"))
    val printed = python("run_signature.py", Seq(fixture("strings_model"), signature, file.toString) ++ examples: _*)
    new ObjectMapper().readTree(printed.last)
  }

  private def texts(node: JsonNode): Seq[String] = node.elements().asScala.map(_.asText).toSeq

  // Short, long (past TensorFlow's inline 22 bytes), empty, and multi-byte UTF-8 texts.
  private def pair(i: Int): Seq[String] =
    Seq(
      Seq("été", "a", "", "a rather longer text than an inline string holds", "naïve")(i % 5) + i,
      if (i % 7 == 0) "" else "x" * (i % 40)
    )

  test("string columns feed string inputs; string outputs come back as strings, or bytes when asked") {
    val s = spark
    import s.implicits._
    val n = 300
    val df = (0 until n).map(i => (i, pair(i))).toDF("id", "pair").repartition(3)
    // A 200-byte arena per batch holds a few rows: batches run early, and every row is still scored once.
    val out = strings("pairs")
      .setBinaryOutputs(Array("first_byte"))
      .setBatchSize(64)
      .setVariableLengthBytes(200)
      .transform(df)
    assert(out.schema("joined").dataType == StringType)
    assert(out.schema("upper").dataType == ArrayType(StringType, containsNull = false))
    assert(out.schema("first_byte").dataType == BinaryType)
    val rows = out.collect().sortBy(_.getAs[Int]("id"))
    val expected = python("pairs", None, "pair" -> (0 until n).map(pair))
    assert(rows.length == n)
    rows.foreach { r =>
      val i = r.getAs[Int]("id")
      assert(r.getAs[String]("joined") == expected.get("joined").get(i).asText, s"row $i")
      assert(r.getAs[collection.Seq[String]]("upper").toSeq == texts(expected.get("upper").get(i)), s"row $i")
      assert(r.getAs[Array[Byte]]("first_byte").toSeq == pair(i).head.getBytes("UTF-8").take(1).toSeq, s"row $i")
    }
  }

  test("a string output that is not UTF-8, asked as a string, names output, column and row") {
    val s = spark
    import s.implicits._
    val df = Seq(Seq("ok", "a"), Seq("été", "b")).toDF("pair").coalesce(1)
    val e = failureOf[SpindleInputException](strings("pairs").transform(df).collect())
    assert(e.getMessage.contains("output 'first_byte' (string) for column 'first_byte' (string), row 1"), e.getMessage)
    assert(e.getMessage.contains("setBinaryOutputs"), e.getMessage)
  }

  test("binary columns feed string inputs as their bytes") {
    val s = spark
    import s.implicits._
    val df =
      Seq(("ab".getBytes, true), (Array[Byte](0, -1, 2), true), (Array.emptyByteArray, false)).toDF("text", "flag")
    val rows = strings("serving_default").setBinaryOutputs(Array("kept")).transform(df).collect()
    assert(rows.map(_.getAs[Int]("length")).toSeq == Seq(2, 3, 0))
    assert(rows.map(_.getAs[Array[Byte]]("kept").toSeq).toSeq == Seq(Seq[Byte](97, 98), Seq[Byte](0, -1, 2), Seq()))
  }

  test("ragged rows are padded to their batch's longest row, as Python TensorFlow sees them padded") {
    val s = spark
    import s.implicits._
    val n = 200
    def ids(i: Int) = (0 until (i * 7) % 13).map(k => (i * 31 + k * 17) % 50 - 10).map(_.toLong)
    def weights(i: Int) = (0 until (i % 5)).map(k => k * 0.5f + i)
    val df = (0 until n).map(i => (i, ids(i), weights(i))).toDF("id", "ids", "weights").repartition(2)
    val rows = strings("ragged").setBatchSize(16).transform(df).collect().sortBy(_.getAs[Int]("id"))
    def padded[T](rows: Seq[Seq[T]], pad: T) = rows.map(r => r ++ Seq.fill(rows.map(_.size).max - r.size)(pad))
    val expected = python(
      "ragged",
      None,
      "ids" -> padded((0 until n).map(ids), 0L),
      "weights" -> padded((0 until n).map(weights), 0f)
    )
    assert(rows.length == n)
    rows.foreach { r =>
      val i = r.getAs[Int]("id")
      assert(r.getAs[Long]("ids_sum") == expected.get("ids_sum").get(i).asLong, s"row $i")
      assert(r.getAs[Long]("nonzero") == expected.get("nonzero").get(i).asLong, s"row $i")
      assert(r.getAs[Float]("weights_sum") == expected.get("weights_sum").get(i).floatValue, s"row $i")
      // Padded to the longest row of its batch: at least its own length, at most the longest of all.
      val width = r.getAs[Int]("width")
      assert(width >= ids(i).size && width <= 12, s"row $i: width $width")
    }
    // Some batch was narrower than the widest row of all: rows are padded per batch, not per partition or job.
    assert(rows.map(_.getAs[Int]("width")).distinct.length > 1)
  }

  test("a ragged row pads with padValue, and a row larger than variableLengthBytes names it") {
    val s = spark
    import s.implicits._
    val df = Seq((Seq(1L), Seq(1f)), (Seq(1L, 2L, 3L), Seq.empty[Float])).toDF("ids", "weights").coalesce(1)
    val rows = strings("ragged").setPadValue(7).transform(df).collect()
    // Padded to width 3 with 7: [1, 7, 7] and [1, 2, 3]; weights to width 1: [1] and [7].
    assert(rows.map(_.getAs[Long]("ids_sum")).toSeq == Seq(15L, 6L))
    assert(rows.map(_.getAs[Float]("weights_sum")).toSeq == Seq(1f, 7f))
    val e = failureOf[SpindleInputException](strings("ragged").setVariableLengthBytes(16).transform(df).collect())
    assert(e.getMessage.contains("column 'ids' (input 'ids', int64), row 1 of partition 0"), e.getMessage)
    assert(e.getMessage.contains("the row needs 24 bytes"), e.getMessage)
    assert(e.getMessage.contains("set variableLengthBytes to at least 24"), e.getMessage)
  }

  test("exampleFeatures build a tf.Example per row, parsed by the model as Python TensorFlow parses them") {
    val s = spark
    import s.implicits._
    val n = 120
    def x(i: Int) = Seq(i * 0.25f, -i.toFloat)
    def tag(i: Int) = Seq("cat", "", "été", "dog" * (i % 9))(i % 4)
    def ids(i: Int) = (0 until i % 4).map(k => (i * k).toLong)
    val df = (0 until n).map(i => (i, x(i), i.toLong - 60, tag(i), ids(i))).toDF("id", "xs", "count", "label", "ids")
    val model = strings("examples")
      .setExampleFeatures(Map("x" -> "xs", "n" -> "count", "tag" -> "label", "ids" -> "ids"))
      .setBatchSize(32)
    val rows = model.transform(df.repartition(2)).collect().sortBy(_.getAs[Int]("id"))
    val expected = python(
      "examples",
      Some("examples"),
      "x" -> Feature("float32", (0 until n).map(x)),
      "n" -> Feature("int64", (0 until n).map(_.toLong - 60)),
      "tag" -> Feature("string", (0 until n).map(tag)),
      "ids" -> Feature("int64", (0 until n).map(ids))
    )
    assert(rows.length == n)
    rows.foreach { r =>
      val i = r.getAs[Int]("id")
      assert(r.getAs[Float]("x_sum") == expected.get("x_sum").get(i).floatValue, s"row $i")
      assert(r.getAs[Long]("n") == expected.get("n").get(i).asLong, s"row $i")
      assert(r.getAs[String]("tag") == expected.get("tag").get(i).asText, s"row $i")
      // tf.sparse.reduce_sum leaves the shape unknown: an output of unknown rank comes as an array per row.
      assert(r.getAs[collection.Seq[Long]]("ids_sum") == Seq(expected.get("ids_sum").get(i).asLong), s"row $i")
    }
  }

  test("columns that cannot feed a dtype name column, input and both types") {
    val s = spark
    import s.implicits._
    val ints = Seq((1, true)).toDF("text", "flag")
    val e1 = intercept[SpindleInputException](strings("serving_default").transform(ints))
    assert(e1.getMessage.contains("column 'text' for input 'text' (string [?])"), e1.getMessage)
    assert(e1.getMessage.contains("expected dtype string, but the column is int"), e1.getMessage)
    val texts = Seq((Seq("a"), Seq(1f))).toDF("ids", "weights")
    val e2 = intercept[SpindleInputException](strings("ragged").transform(texts))
    assert(e2.getMessage.contains("expected dtype int64, but the column is array<string>"), e2.getMessage)
    val e3 = intercept[SpindleInputException](
      strings("examples").setExampleFeatures(Map("x" -> "flags")).transform(Seq(Seq(true)).toDF("flags"))
    )
    assert(
      e3.getMessage.contains("column 'flags' for feature 'x' of input 'examples' is array<boolean>"),
      e3.getMessage
    )
    val e4 = intercept[SpindleInputException](
      strings("pairs")
        .setBinaryOutputs(Array("joined", "nope"))
        .transform(
          Seq(Seq("a", "b")).toDF("pair")
        )
    )
    assert(e4.getMessage.contains("binaryOutputs names 'nope'"), e4.getMessage)
  }
}
