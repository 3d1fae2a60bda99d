package io.spindle

import java.nio.file.Files

import scala.jdk.CollectionConverters._

import com.fasterxml.jackson.databind.{JsonNode, ObjectMapper}
import org.apache.spark.sql.{DataFrame, Row}

/** Every fixed-width dtype beyond the four first ones (bool, uint8, int8, int16, uint16, uint32, uint64, float16,
  * bfloat16), in and out, against Python TensorFlow's own run of the same signature on the same rows
  * (tests/fixtures/widths_model, tests/python/run_signature.py).
  */
class DtypesSuite extends SpindleTestBase {

  private def widths = SpindleModel.fromSavedModel(fixture("widths_model"))

  // Row i's inputs: each dtype's extremes turn up among the 200 rows.
  private def bool(i: Int) = i % 3 == 0
  private def u8(i: Int) = Seq(i % 256, 255 - i % 256, (i * 7) % 256)
  private def i8(i: Int) = ((i % 256) - 128).toByte
  private def i16(i: Int) = Seq((-32768 + i * 331).toShort, (32767 - i * 17).toShort)
  private def u16(i: Int) = if (i == 1) 65535 else (i * 331) % 65536
  private def u32(i: Int) = if (i == 1) 4294967295L else i * 21474836L
  private def u64(i: Int) = i * 46116860184273879L // below 2^63 - 1 for every row, + 1 included
  private def f16(i: Int) = Seq(i * 0.37f - 30f, if (i == 1) 65504f else 60000f - i * 301f)
  private def bf16(i: Int) = (i * 1.37f - 100f).toDouble // a double column whose values are floats

  private def inputs(n: Int): DataFrame = {
    val s = spark
    import s.implicits._
    (0 until n)
      .map(i => (i, bool(i), u8(i), i8(i), i16(i), u16(i), u32(i), u64(i), f16(i), bf16(i)))
      .toDF("id", "x_bool", "x_u8", "x_i8", "x_i16", "x_u16", "x_u32", "x_u64", "x_f16", "x_bf16")
      .repartition(3)
  }

  // A float goes as its exact double, so that both sides round the same value to half precision.
  private def json(v: Any): String = v match {
    case s: Seq[_] => s.map(json).mkString("[", ",", "]")
    case f: Float  => f.toDouble.toString
    case other     => other.toString
  }

  /** Python TensorFlow's outputs of `signature` for `inputs` (input -> one value per row), as JSON per output. */
  private def python(signature: String, inputs: (String, Seq[Any])*): JsonNode = {
    val file = tempDir("signature-inputs").resolve("inputs.json")
    Files.writeString(file, inputs.map { case (k, v) => s""""$k": ${json(v)}""" }.mkString("{", ",", "}"))
    val printed = python("run_signature.py", fixture("widths_model"), signature, file.toString)
    new ObjectMapper().readTree(printed.last)
  }

  private def values(node: JsonNode): Seq[JsonNode] = node.elements().asScala.toSeq

  test("every fixed-width dtype in and out equals Python TensorFlow's run of the signature") {
    val n = 200
    val out = widths.setBatchSize(16).transform(inputs(n)).collect().sortBy(_.getAs[Int]("id"))
    val rows = 0 until n
    val expected = python(
      "serving_default",
      "x_bool" -> rows.map(bool),
      "x_u8" -> rows.map(u8),
      "x_i8" -> rows.map(i8),
      "x_i16" -> rows.map(i16),
      "x_u16" -> rows.map(u16),
      "x_u32" -> rows.map(u32),
      "x_u64" -> rows.map(u64),
      "x_f16" -> rows.map(f16),
      "x_bf16" -> rows.map(bf16)
    )
    assert(out.length == n)
    def seq[T](r: Row, c: String) = r.getAs[collection.Seq[T]](c).toSeq
    out.foreach { r =>
      val i = r.getAs[Int]("id")
      def e(output: String) = expected.get(output).get(i)
      assert(r.getAs[Boolean]("y_bool") == e("y_bool").asBoolean, s"row $i")
      assert(seq[Int](r, "y_u8") == values(e("y_u8")).map(_.asInt), s"row $i")
      assert(r.getAs[Byte]("y_i8") == e("y_i8").asInt.toByte, s"row $i")
      assert(seq[Short](r, "y_i16") == values(e("y_i16")).map(_.asInt.toShort), s"row $i")
      assert(r.getAs[Int]("y_u16") == e("y_u16").asInt, s"row $i")
      assert(r.getAs[Long]("y_u32") == e("y_u32").asLong, s"row $i")
      assert(r.getAs[Long]("y_u64") == e("y_u64").asLong, s"row $i")
      assert(seq[Float](r, "y_f16") == values(e("y_f16")).map(_.asDouble.toFloat), s"row $i")
      assert(r.getAs[Float]("y_bf16") == e("y_bf16").asDouble.toFloat, s"row $i")
      val sum = e("y_sum").asDouble
      assert(math.abs(r.getAs[Float]("y_sum") - sum) <= 1e-6 * math.abs(sum), s"row $i")
    }
    // The edges arrived as such: 255 + 1 wraps in uint8, as TensorFlow computes it.
    assert(seq[Int](out(0), "y_u8") == Seq(1, 0, 1))
    assert(out(1).getAs[Long]("y_u32") == 4294967294L)
  }

  test("the output columns get the narrowest Spark type holding every value") {
    val schema = widths.transformSchema(inputs(1).schema)
    val types = schema.fields.map(f => f.name -> f.dataType.simpleString).toMap
    assert(
      types.filter(_._1.startsWith("y_")) == Map(
        "y_bool" -> "boolean",
        "y_u8" -> "array<int>",
        "y_i8" -> "tinyint",
        "y_i16" -> "array<smallint>",
        "y_u16" -> "int",
        "y_u32" -> "bigint",
        "y_u64" -> "bigint",
        "y_f16" -> "array<float>",
        "y_bf16" -> "float",
        "y_sum" -> "float"
      )
    )
  }

  test("an integer that does not fit its dtype fails the row, naming column, row and value") {
    val s = spark
    import s.implicits._
    val bad = inputs(4).drop("x_u8").join(Seq((2, Seq(1, 300, 2))).toDF("id", "x_u8"), "id")
    val e = failureOf[SpindleInputException](widths.transform(bad).collect())
    assert(e.getMessage.contains("column 'x_u8'") && e.getMessage.contains("uint8"), e.getMessage)
    assert(e.getMessage.contains("value 300") && e.getMessage.contains(", row "), e.getMessage)
    val negative = inputs(3).withColumn("x_u32", org.apache.spark.sql.functions.lit(-1L))
    val e2 = failureOf[SpindleInputException](widths.transform(negative).collect())
    assert(e2.getMessage.contains("column 'x_u32'") && e2.getMessage.contains("value -1"), e2.getMessage)
  }

  test("a uint64 output above a Spark long's range is an error naming the output") {
    val big = inputs(2).withColumn("x_u64", org.apache.spark.sql.functions.lit(Long.MaxValue))
    val e = failureOf[SpindleModelException](widths.transform(big).collect())
    assert(e.getMessage.contains("output 'y_u64'") && e.getMessage.contains("9223372036854775808"), e.getMessage)
  }

  test("a column type that cannot feed a dtype is refused before any task runs") {
    val asInt = inputs(2).withColumn("x_bool", org.apache.spark.sql.functions.lit(1))
    val e = failureOf[SpindleInputException](widths.transformSchema(asInt.schema))
    assert(e.getMessage.contains("column 'x_bool'") && e.getMessage.contains("bool"), e.getMessage)
    val asDouble = inputs(2).withColumn("x_u16", org.apache.spark.sql.functions.lit(1.5))
    val e2 = failureOf[SpindleInputException](widths.transformSchema(asDouble.schema))
    assert(e2.getMessage.contains("column 'x_u16'") && e2.getMessage.contains("uint16"), e2.getMessage)
  }

  // Row i's [2, 3, 2] image: distinct values, so a misplaced element shows.
  private def image(i: Int) = Seq.tabulate(2, 3, 2)((a, b, c) => i * 0.25f + a * 6 + b * 2 + c)

  test("arrays nested three deep feed a rank-4 input, as Python TensorFlow computes it") {
    val s = spark
    import s.implicits._
    val n = 50
    val df = (0 until n).map(i => (i, image(i))).toDF("id", "x_img").repartition(2)
    val out = widths.setSignature("nested").setBatchSize(8).transform(df).collect().sortBy(_.getAs[Int]("id"))
    val expected = python("nested", "x_img" -> (0 until n).map(image))
    out.foreach { r =>
      val i = r.getAs[Int]("id")
      val flat = image(i).flatten.flatten
      // A rank-4 output comes back flat, row-major.
      assert(r.getAs[collection.Seq[Float]]("y_img").toSeq == flat.map(_ * 2), s"row $i")
      val sum = expected.get("y_sum").get(i).asDouble
      assert(math.abs(r.getAs[Float]("y_sum") - sum) <= 1e-6 * math.abs(sum), s"row $i")
    }
  }

  test("with nestedOutputs, a rank-4 output comes back as arrays nested to its shape, as Python TensorFlow has it") {
    val s = spark
    import s.implicits._
    val n = 20
    val df = (0 until n).map(i => (i, image(i))).toDF("id", "x_img")
    val model = widths.setSignature("nested").setNestedOutputs(true).setBatchSize(8)
    assert(model.transformSchema(df.schema)("y_img").dataType.simpleString == "array<array<array<float>>>")
    val out = model.transform(df).collect().sortBy(_.getAs[Int]("id"))
    val expected = python("nested", "x_img" -> (0 until n).map(image)).get("y_img")
    out.foreach { r =>
      val i = r.getAs[Int]("id")
      val nested =
        r.getAs[collection.Seq[collection.Seq[collection.Seq[Float]]]]("y_img").map(_.map(_.toSeq).toSeq).toSeq
      val python = values(expected.get(i)).map(values(_).map(values(_).map(_.asDouble.toFloat)))
      assert(nested == python, s"row $i")
      assert(nested == image(i).map(_.map(_.map(_ * 2))), s"row $i")
    }
  }

  test("a nested array of the wrong length at any depth names the row and the depth") {
    val s = spark
    import s.implicits._
    val short =
      Seq((0, image(0)), (1, image(1).updated(1, image(1)(1).dropRight(1)))).toDF("id", "x_img").coalesce(1)
    val e = failureOf[SpindleInputException](widths.setSignature("nested").transform(short).collect())
    assert(e.getMessage.contains("column 'x_img'") && e.getMessage.contains("row 1"), e.getMessage)
    assert(e.getMessage.contains("array at depth 2 has 2 elements, expected 3"), e.getMessage)
    val shallow = Seq((0, image(0).map(_.flatten))).toDF("id", "x_img")
    val e2 = failureOf[SpindleInputException](widths.setSignature("nested").transformSchema(shallow.schema))
    assert(e2.getMessage.contains("nests arrays 2 deep"), e2.getMessage)
  }

  // Pixel (y, x) of image k: distinct red, green and blue values.
  private def rgb(k: Int, y: Int, x: Int) = Seq(10 * k + y, 100 + 5 * x + y, 200 + k + x)

  /** A directory of PNG images `height` x 5 drawn from `rgb`, read with Spark's image data source. */
  private def images(count: Int, height: Int): DataFrame = {
    val dir = tempDir("spindle-images")
    for (k <- 0 until count) {
      val img = new java.awt.image.BufferedImage(5, height, java.awt.image.BufferedImage.TYPE_INT_RGB)
      for (y <- 0 until height; x <- 0 until 5) {
        val Seq(r, g, b) = rgb(k, y, x)
        img.setRGB(x, y, (r << 16) | (g << 8) | b)
      }
      javax.imageio.ImageIO.write(img, "png", dir.resolve(s"image-$k.png").toFile)
    }
    spark.read.format("image").load(dir.toString)
  }

  test("Spark's image source feeds a uint8 [h, w, c] input as it holds it (BGR) or in RGB, as Python computes it") {
    val df = images(3, 4)
    val base = widths.setSignature("image").setInputCols(Map("pixels" -> "image"))
    for (order <- Seq("BGR", "RGB")) {
      val out = base.setImageChannelOrder(order).transform(df).collect().sortBy(_.getAs[Row]("image").getString(0))
      // What the model was fed, per row: Spark's BGR bytes, or the colors as drawn.
      val fed =
        out.indices.map(k => Seq.tabulate(4, 5)((y, x) => if (order == "RGB") rgb(k, y, x) else rgb(k, y, x).reverse))
      val expected = python("image", "pixels" -> fed).get("weighted")
      out.zipWithIndex.foreach { case (r, k) =>
        assert(r.getAs[collection.Seq[Int]]("same").toSeq == fed(k).flatten.flatten, s"$order image $k")
        assert(r.getAs[Float]("weighted") == expected.get(k).asDouble.toFloat, s"$order image $k")
      }
    }
  }

  test("an image of the wrong size names its origin and both sizes") {
    val e = failureOf[SpindleInputException](
      widths.setSignature("image").setInputCols(Map("pixels" -> "image")).transform(images(1, 3)).collect()
    )
    assert(e.getMessage.contains("image-0.png") && e.getMessage.contains("is 3x5x3, expected 4x5x3"), e.getMessage)
  }

  // Row i's raw bytes: every value 0..255 occurs (Java bytes above 127 are negative), in an order that shows.
  private def raw(i: Int, n: Int): Array[Byte] = Array.tabulate(n)(k => ((i * 37 + k * 11) % 256).toByte)
  private def unsigned(bytes: Array[Byte]): Seq[Int] = bytes.map(_ & 0xff).toSeq

  test("a binary column feeds a uint8 [h, w, c] input its raw pixel bytes, row-major, as Python computes it") {
    val s = spark
    import s.implicits._
    val n = 40
    val df = (0 until n).map(i => (i, raw(i, 60))).toDF("id", "raw").repartition(3)
    val out =
      widths.setSignature("image").setInputCols(Map("pixels" -> "raw")).setBatchSize(8).transform(df).collect()
    val fed = (0 until n).map(i => unsigned(raw(i, 60)).grouped(3).toSeq.grouped(5).toSeq)
    val expected = python("image", "pixels" -> fed).get("weighted")
    assert(out.length == n)
    out.foreach { r =>
      val i = r.getAs[Int]("id")
      assert(r.getAs[collection.Seq[Int]]("same").toSeq == unsigned(raw(i, 60)), s"row $i")
      assert(r.getAs[Float]("weighted") == expected.get(i).asDouble.toFloat, s"row $i")
    }
  }

  test("a binary column feeds a uint8 [batch, ?] input rows of any length, padded per batch, as Python computes it") {
    val s = spark
    import s.implicits._
    val n = 120
    val length = (i: Int) => (i * 7) % 41 // empty rows too
    val df = (0 until n).map(i => (i, raw(i, length(i)))).toDF("id", "raw").repartition(3)
    val out = widths.setSignature("raw_bytes").setBatchSize(16).transform(df).collect()
    // Python gets every row padded with zeros to the longest, which the sums do not see, as Spindle pads per batch.
    val longest = (0 until n).map(length).max
    val fed = (0 until n).map(i => unsigned(raw(i, length(i))).padTo(longest, 0))
    val expected = python("raw_bytes", "raw" -> fed)
    assert(out.length == n)
    out.foreach { r =>
      val i = r.getAs[Int]("id")
      assert(r.getAs[Long]("total") == expected.get("total").get(i).asLong, s"row $i")
      assert(r.getAs[Long]("weighted") == expected.get("weighted").get(i).asLong, s"row $i")
    }
    assert(out.map(_.getAs[Long]("total")).distinct.length > n / 2, "rows differ, so a misplaced row shows")
  }

  test("a binary value of the wrong length for a fixed uint8 input names column, row and both lengths") {
    val s = spark
    import s.implicits._
    val df = Seq((0, raw(0, 60)), (1, raw(1, 59))).toDF("id", "raw").coalesce(1)
    val e = failureOf[SpindleInputException](
      widths.setSignature("image").setInputCols(Map("pixels" -> "raw")).transform(df).collect()
    )
    assert(e.getMessage.contains("column 'raw' (input 'pixels', uint8), row 1"), e.getMessage)
    assert(e.getMessage.contains("holds 59 bytes, expected 60"), e.getMessage)
  }

  test("describeSignature names every dtype") {
    val text = widths.describeSignature()
    Seq("bool", "uint8", "int8", "int16", "uint16", "uint32", "uint64", "float16", "bfloat16").foreach { d =>
      assert(text.contains(s": $d "), s"$d in\n$text")
    }
  }
}
