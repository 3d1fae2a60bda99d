package io.spindle

import java.nio.file.Files

import scala.jdk.CollectionConverters._
import scala.util.Random

import com.fasterxml.jackson.databind.{JsonNode, ObjectMapper}
import org.apache.spark.sql.{Column, DataFrame}
import org.apache.spark.sql.catalyst.InternalRow
import org.apache.spark.sql.functions.{col, lit, when}
import org.apache.spark.sql.types._
import org.apache.spark.unsafe.Platform

import io.spindle.internal.{ColumnKind, InputPlan, PackedColumn, RowWriter, TensorType}

/** Many scalar columns packed into one `[batch, k]` input (`packedInputCols`), against Python TensorFlow's own run of
  * the same signature on the same values (tests/fixtures/packed_model, tests/python/run_signature.py).
  */
class PackedInputsSuite extends SpindleTestBase {

  private val k = 200
  private def names(n: Int, prefix: String = "c") = (0 until n).map(j => s"$prefix$j")

  // Value j of row i: multiples of 1/8, exact in float32; column j is a double, a float or an int by j % 3.
  private def raw(i: Long, j: Int): Long = (i * 7 + j * 13) % 101
  private def value(i: Long, j: Int): Double = j % 3 match {
    case 0 | 1 => raw(i, j) / 8.0 - 6.0
    case _     => (raw(i, j) - 50).toDouble
  }
  private def column(j: Int): Column = {
    val r = (col("id") * 7 + j * 13) % 101
    (j % 3 match {
      case 0 => r / 8.0 - 6.0
      case 1 => (r / 8.0 - 6.0).cast(FloatType)
      case _ => (r - 50).cast(IntegerType)
    }).as(s"c$j")
  }

  private def wide(n: Int, partitions: Int = 3): DataFrame =
    spark.range(0, n, 1, partitions).select(col("id") +: (0 until k).map(column): _*)

  private def packedModel = SpindleModel.fromSavedModel(fixture("packed_model"))

  /** Python TensorFlow's outputs of `signature` of `model` for `inputs` (input -> one value per row). */
  private def python(model: String, signature: String, inputs: (String, Seq[Any])*): JsonNode = {
    def json(v: Any): String = v match {
      case s: Seq[_] => s.map(json).mkString("[", ",", "]")
      case other     => other.toString
    }
    val file = tempDir("packed-inputs").resolve("inputs.json")
    Files.writeString(file, inputs.map { case (k, v) => s""""$k": ${json(v)}""" }.mkString("{", ",", "}"))
    new ObjectMapper().readTree(python("run_signature.py", fixture(model), signature, file.toString).last)
  }

  private def values(node: JsonNode): Seq[Double] = node.elements().asScala.map(_.asDouble).toSeq

  test("200 double, float and int columns packed into a float32 [None, 200] input equal Python TensorFlow's run") {
    val n = 60
    val model = packedModel.setPackedInputCols(Map("x" -> names(k))).setBatchSize(16)
    assert(model.transformSchema(wide(1).schema)("dense").dataType == ArrayType(FloatType, containsNull = false))
    val out = model.transform(wide(n)).select("id", "dense", "same").collect().sortBy(_.getLong(0))
    val expected = python("packed_model", "serving_default", "x" -> (0 until n).map(i => (0 until k).map(value(i, _))))
    assert(out.length == n)
    out.foreach { r =>
      val i = r.getLong(0).toInt
      val same = r.getSeq[Float](2)
      assert(same == values(expected.get("same").get(i)).map(_.toFloat), s"row $i")
      assert(same == (0 until k).map(value(i, _).toFloat), s"row $i")
      val dense = r.getSeq[Float](1)
      val want = values(expected.get("dense").get(i))
      assert(dense.size == 3, s"row $i")
      dense.zip(want).foreach { case (got, w) =>
        assert(math.abs(got - w) <= 1e-5 * math.max(1, math.abs(w)), s"row $i")
      }
    }
  }

  test("an input of shape [None, None] takes as many columns as are packed, in their order") {
    val s = spark
    import s.implicits._
    val df = Seq((1, 2.0, 3.0f), (4, 5.0, 6.0f)).toDF("a", "b", "c")
    val model = packedModel.setSignature("any_width").setPackedInputCols(Map("x" -> Seq("c", "a", "b")))
    val out = model.transform(df).select("a", "weighted").collect().map(r => r.getInt(0) -> r.getFloat(1)).toMap
    // weighted = c * 1 + a * 2 + b * 3
    assert(out == Map(1 -> (3f + 2f + 6f), 4 -> (6f + 8f + 15f)))
  }

  test("mixed column types pack into float32, float64 and int64 inputs beside a plain inputCols one") {
    val n = 40
    val rows = 0 until n
    val df = spark
      .range(n)
      .select(
        col("id"),
        (col("id") - 20).cast(IntegerType).as("i"),
        (col("id") * 1000000007L).as("l"),
        (col("id") / 4.0).cast(FloatType).as("f"),
        (col("id") * -0.5).as("d"),
        (col("id") % 2 === 0).as("flag"),
        (col("id") % 7).cast(ShortType).as("sh"),
        (col("id") - 3).cast(ByteType).as("b"),
        (col("id") * 3).cast(IntegerType).as("x_i32")
      )
      .repartition(2)
    val model = SpindleModel
      .fromSavedModel(fixture("dtypes_model"))
      .setPackedInputCols(
        Map("x_f32" -> Seq("i", "l", "f", "d"), "x_f64" -> Seq("flag", "sh", "b"), "x_i64" -> Seq("b", "l"))
      )
      .setBatchSize(8)
    val out = model.transform(df).collect().sortBy(_.getAs[Long]("id"))
    def f32(i: Int) = Seq((i - 20).toDouble, i * 1000000007L.toDouble, i / 4.0, i * -0.5).map(_.toFloat.toDouble)
    def f64(i: Int) = Seq(if (i % 2 == 0) 1.0 else 0.0, (i % 7).toDouble, (i - 3).toDouble)
    def i64(i: Int) = Seq((i - 3).toLong, i * 1000000007L)
    val expected = python(
      "dtypes_model",
      "serving_default",
      "x_f32" -> rows.map(f32),
      "x_f64" -> rows.map(f64),
      "x_i32" -> rows.map(_ * 3),
      "x_i64" -> rows.map(i64)
    )
    assert(out.length == n)
    out.foreach { r =>
      val i = r.getAs[Long]("id").toInt
      def e(output: String) = expected.get(output).get(i)
      assert(r.getAs[collection.Seq[Float]]("y_f32").toSeq == values(e("y_f32")).map(_.toFloat), s"row $i")
      assert(r.getAs[Double]("y_f64") == e("y_f64").asDouble, s"row $i")
      assert(r.getAs[Int]("y_i32") == e("y_i32").asInt, s"row $i")
      assert(r.getAs[collection.Seq[Long]]("y_i64").toSeq == e("y_i64").elements().asScala.map(_.asLong).toSeq)
      assert(r.getAs[collection.Seq[Long]]("y_i64").toSeq == i64(i).map(_ * 3), s"row $i")
    }
  }

  test("a null in a packed column fails the row, naming the column, the input and the row") {
    val df = wide(5, partitions = 1).withColumn("c17", when(col("id") === 3, lit(null)).otherwise(col("c17")))
    val model = packedModel.setPackedInputCols(Map("x" -> names(k)))
    val e = failureOf[SpindleInputException](model.transform(df).collect())
    assert(e.getMessage.contains("column 'c17'") && e.getMessage.contains("input 'x'"), e.getMessage)
    assert(e.getMessage.contains("row 3") && e.getMessage.contains("null"), e.getMessage)
  }

  test("a string column, a count that is not k and an unknown column are refused before any task runs") {
    val strings = wide(1).withColumn("c5", col("c5").cast(StringType))
    val model = packedModel.setPackedInputCols(Map("x" -> names(k)))
    val e = failureOf[SpindleInputException](model.transformSchema(strings.schema))
    assert(e.getMessage.contains("column 'c5'") && e.getMessage.contains("is string"), e.getMessage)
    assert(e.getMessage.contains("input 'x'") && e.getMessage.contains("float32"), e.getMessage)
    val few = packedModel.setPackedInputCols(Map("x" -> names(199)))
    val e2 = failureOf[SpindleInputException](few.transformSchema(wide(1).schema))
    assert(e2.getMessage.contains("input 'x'") && e2.getMessage.contains("k = 200"), e2.getMessage)
    assert(e2.getMessage.contains("packs 199 columns"), e2.getMessage)
    val missing = packedModel.setPackedInputCols(Map("x" -> (names(199) :+ "nope")))
    val e3 = failureOf[SpindleInputException](missing.transformSchema(wide(1).schema))
    assert(e3.getMessage.contains("column 'nope'") && e3.getMessage.contains("does not exist"), e3.getMessage)
    val arrays = wide(1).withColumn("c0", org.apache.spark.sql.functions.array(col("c0")))
    val e4 = failureOf[SpindleInputException](model.transformSchema(arrays.schema))
    assert(e4.getMessage.contains("column 'c0'") && e4.getMessage.contains("array<double>"), e4.getMessage)
  }

  test("an input named in both inputCols and packedInputCols, or one the signature lacks, is an error naming it") {
    val both = packedModel.setInputCols(Map("x" -> "c0")).setPackedInputCols(Map("x" -> names(k)))
    val e = failureOf[SpindleInputException](both.transformSchema(wide(1).schema))
    assert(e.getMessage.contains("input 'x'") && e.getMessage.contains("inputCols (column 'c0')"), e.getMessage)
    assert(e.getMessage.contains("packedInputCols"), e.getMessage)
    val unknown = packedModel.setPackedInputCols(Map("x" -> names(k), "z" -> Seq("c0")))
    val e2 = failureOf[SpindleModelException](unknown.transformSchema(wide(1).schema))
    assert(e2.getMessage.contains("no input 'z'") && e2.getMessage.contains("packedInputCols"), e2.getMessage)
  }

  test("write.save and load keep packedInputCols, in their order, and the loaded model scores the same") {
    val cols = names(k).reverse
    val model = packedModel.setPackedInputCols(Map("x" -> cols)).setBatchSize(7)
    val path = tempDir("packed-save").resolve("stage").toString
    model.write.overwrite().save(path)
    val loaded = SpindleModel.load(path)
    assert(loaded.getPackedInputCols == Map("x" -> cols))
    assert(loaded.getPackedInputColsJava.get("x") == cols.asJava)
    def scored(m: SpindleModel) = m.transform(wide(20)).select("id", "same").collect().sortBy(_.getLong(0)).toSeq
    val out = scored(loaded)
    assert(out == scored(model))
    assert(out(4).getSeq[Float](1) == (0 until k).reverse.map(value(4, _).toFloat))
    // The Java setter takes java.util collections.
    val java = packedModel.setPackedInputCols(Map("x" -> cols.asJava).asJava)
    assert(java.getPackedInputCols == Map("x" -> cols))
  }

  test("any InternalRow feeds a packed input (a columnar batch's rows are not UnsafeRows)") {
    val columns =
      Seq(PackedColumn("a", 2, IntegerType), PackedColumn("b", 0, DoubleType), PackedColumn("c", 1, BooleanType))
    val plan = InputPlan("x", "a", 2, ColumnKind.Packed(columns), TensorType.Float32, Seq(3L))
    val writer = new RowWriter(plan, 0L, 0)
    val address = Platform.allocateMemory(12)
    try {
      writer.write(InternalRow(2.5, true, 7), address, 0)
      assert((0 until 3).map(i => Platform.getFloat(null, address + 4L * i)) == Seq(7f, 2.5f, 1f))
      val e = intercept[SpindleInputException](writer.write(InternalRow(null, false, 1), address, 9))
      assert(e.getMessage.contains("column 'b'") && e.getMessage.contains("row 9"), e.getMessage)
    } finally Platform.freeMemory(address)
  }

  /** Digits-shaped rows: 64 features in [0, 1), raised by 0.5 in the label's group of six; as one array column and as
    * 64 columns of their own.
    */
  private def synthetic(rows: Int): DataFrame = {
    val s = spark
    import s.implicits._
    val random = new Random(3)
    val df = (0 until rows)
      .map { i =>
        val label = random.nextInt(10)
        (i, Array.tabulate(64)(j => random.nextFloat() + (if (j / 6 == label) 0.5f else 0f)), label.toLong)
      }
      .toDF("id", "pixels", "digit")
    df.select(col("*") +: (0 until 64).map(j => col("pixels")(j).as(s"p$j")): _*).coalesce(1)
  }

  test("fit through packedInputCols trains as the same values in one array column do, and the model keeps them") {
    val data = synthetic(300).cache()
    def estimator = new SpindleEstimator()
      .setModelPath(fixture("digits_mlp_init"))
      .setBatchSize(50)
      .setEpochs(2)
      .setSeed(5)
      .setExportPath(tempDir("packed-export").resolve("model").toString)
    val packed = estimator
      .setInputCols(Map("labels" -> "digit"))
      .setPackedInputCols(Map("features" -> names(64, "p")))
      .fit(data)
    val array = estimator.setInputCols(Map("features" -> "pixels", "labels" -> "digit")).fit(data)
    assert(packed.summary.lossHistory.nonEmpty)
    assert(packed.summary.lossHistory.toSeq == array.summary.lossHistory.toSeq)
    assert(packed.getInputCols.isEmpty, "the serving signature has no labels")
    assert(packed.getPackedInputCols == Map("features" -> names(64, "p")))
    def probabilities(m: SpindleModel) =
      m.transform(data).select("id", "probabilities").collect().sortBy(_.getInt(0)).map(_.getSeq[Float](1)).toSeq
    assert(probabilities(packed) == probabilities(array))
  }
}
