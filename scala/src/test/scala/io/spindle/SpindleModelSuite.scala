package io.spindle

import java.nio.file.Files

import org.apache.spark.ml.{Pipeline, PipelineModel}
import org.apache.spark.ml.linalg.Vectors
import org.apache.spark.sql.{DataFrame, Row}
import org.apache.spark.sql.functions.col

import io.spindle.internal.ModelCache

/** Inference through every supported column kind and dtype, batching, persistence and bad input. */
class SpindleModelSuite extends SpindleTestBase {

  private def dtypesModel = SpindleModel.fromSavedModel(fixture("dtypes_model"))

  /** `n` rows whose expected outputs are easy to compute: row i holds values derived from i. */
  private def dtypeRows(n: Int, partitions: Int): DataFrame = {
    val s = spark
    import s.implicits._
    (0 until n)
      .map(i =>
        (Array.tabulate(4)(j => i + j * 0.5f), Array.tabulate(3)(j => i * 1.0 + j), i, Array(i.toLong, -i.toLong))
      )
      .toDF("x_f32", "x_f64", "x_i32", "x_i64")
      .repartition(partitions)
      .withColumn("id", col("x_i32"))
  }

  private def checkDtypeOutputs(rows: Array[Row]): Unit = rows.foreach { r =>
    val i = r.getAs[Int]("id")
    assert(r.getAs[collection.Seq[Float]]("y_f32") == Seq.tabulate(4)(j => (i + j * 0.5f) * 2))
    assert(r.getAs[Double]("y_f64") == 3.0 * i + 3)
    assert(r.getAs[Int]("y_i32") == i + 1)
    assert(r.getAs[collection.Seq[Long]]("y_i64") == Seq(3L * i, -3L * i))
  }

  test("every dtype round-trips exactly, across partial batches and several partitions") {
    val out = dtypesModel.setBatchSize(7).transform(dtypeRows(1000, 3)).collect()
    assert(out.length == 1000)
    assert(out.map(_.getAs[Int]("id")).sorted.toSeq == (0 until 1000))
    checkDtypeOutputs(out)
  }

  test("empty partitions and a batch larger than the data") {
    val df = dtypeRows(5, 1).repartition(8) // most of the 8 partitions are empty
    val out = dtypesModel.setBatchSize(1024).transform(df).collect()
    assert(out.length == 5)
    checkDtypeOutputs(out)
  }

  test("numeric conversions: doubles into float32, vectors into float64, narrower ints into int64") {
    val s = spark
    import s.implicits._
    val df = Seq(
      (Array(1.0, 2.0, 3.0, 4.0), Vectors.dense(1.0, 2.0, 3.0), 5.toShort, Array(1, 2)),
      (Array(0.5, 0.0, 0.0, 1.0), Vectors.sparse(3, Array(1), Array(4.0)), 6.toShort, Array(3, 4))
    ).toDF("a", "v", "s", "ints")
    val out = dtypesModel
      .setInputCols(Map("x_f32" -> "a", "x_f64" -> "v", "x_i32" -> "s", "x_i64" -> "ints"))
      .setOutputCols(Map("y_f32" -> "doubled", "y_f64" -> "sum"))
      .transform(df)
    assert(out.columns.toSeq == Seq("a", "v", "s", "ints", "doubled", "sum"))
    val rows = out.collect()
    assert(rows.map(_.getAs[collection.Seq[Float]]("doubled")).toSeq == Seq(Seq(2f, 4f, 6f, 8f), Seq(1f, 0f, 0f, 2f)))
    assert(rows.map(_.getAs[Double]("sum")).toSeq == Seq(6.0, 4.0))
  }

  test("signature choice and output schema") {
    val s = spark
    import s.implicits._
    val model = dtypesModel.setSignature("double_only")
    val df = Seq(Tuple1(Array(1f, 2f, 3f, 4f))).toDF("x_f32")
    val schema = model.transformSchema(df.schema)
    assert(schema.fieldNames.toSeq == Seq("x_f32", "y_f32"))
    assert(model.transform(df).head().getAs[collection.Seq[Float]]("y_f32") == Seq(2f, 4f, 6f, 8f))
    assert(model.describeSignature().contains("x_f32: float32 [?, 4]"))
  }

  test("one TensorFlow session per JVM, shared by tasks and transforms") {
    ModelCache.clear()
    val model = dtypesModel.setBatchSize(16)
    model.transform(dtypeRows(100, 4)).count()
    model.transform(dtypeRows(50, 2)).collect()
    assert(ModelCache.size == 1)
  }

  test("write.save copies the SavedModel and load restores the stage, also inside a Pipeline") {
    val dir = tempDir("spindle-save")
    val model = dtypesModel.setSignature("double_only").setBatchSize(3).setOutputCols(Map("y_f32" -> "twice"))
    model.write.overwrite().save(dir.resolve("stage").toString)
    assert(Files.isRegularFile(dir.resolve("stage/savedmodel/saved_model.pb")))
    val loaded = SpindleModel.load(dir.resolve("stage").toString)
    assert(loaded.uid == model.uid && loaded.getBatchSize == 3 && loaded.getOutputCols == Map("y_f32" -> "twice"))
    val s = spark
    import s.implicits._
    val df = Seq(Tuple1(Array(1f, 1f, 1f, 1f))).toDF("x_f32")
    assert(loaded.transform(df).head().getAs[collection.Seq[Float]]("twice") == Seq(2f, 2f, 2f, 2f))

    val pipeline = new Pipeline().setStages(Array(model)).fit(df)
    pipeline.write.overwrite().save(dir.resolve("pipeline").toString)
    val again = PipelineModel.load(dir.resolve("pipeline").toString)
    assert(again.transform(df).head().getAs[collection.Seq[Float]]("twice") == Seq(2f, 2f, 2f, 2f))
  }

  // ---- bad input: each a typed exception naming the cause ----

  test("missing column") {
    val e = failureOf[SpindleInputException](dtypesModel.transform(dtypeRows(3, 1).drop("x_f64")))
    assert(e.getMessage.contains("column 'x_f64'") && e.getMessage.contains("does not exist"))
  }

  test("wrong dtype") {
    val s = spark
    import s.implicits._
    val strings = Seq(Tuple1("a")).toDF("x_f32")
    val e = failureOf[SpindleInputException](dtypesModel.setSignature("double_only").transform(strings))
    assert(e.getMessage.contains("'x_f32'") && e.getMessage.contains("float32") && e.getMessage.contains("string"))
    val doubles = dtypeRows(3, 1).withColumn("x_i32", col("x_i32").cast("double"))
    val e2 = failureOf[SpindleInputException](dtypesModel.transform(doubles))
    assert(e2.getMessage.contains("'x_i32'") && e2.getMessage.contains("int32") && e2.getMessage.contains("double"))
  }

  test("wrong array length, found on the row that has it") {
    val s = spark
    import s.implicits._
    val df = Seq(Array(1f, 2f, 3f, 4f), Array(1f, 2f, 3f)).toDF("x_f32")
    val e = failureOf[SpindleInputException](dtypesModel.setSignature("double_only").transform(df).collect())
    assert(
      e.getMessage.contains("column 'x_f32'") && e.getMessage.contains("row 0 of partition 1") &&
        e.getMessage.contains("3 elements, expected 4")
    )
  }

  test("null feature value") {
    val s = spark
    import s.implicits._
    val df = Seq((Option(1), 1), (None, 2))
      .toDF("x_i32", "other")
      .select(
        col("x_i32"),
        org.apache.spark.sql.functions.array((0 until 4).map(_ => col("other").cast("float")): _*).as("x_f32"),
        org.apache.spark.sql.functions.array((0 until 3).map(_ => col("other").cast("double")): _*).as("x_f64"),
        org.apache.spark.sql.functions.array(col("other").cast("long"), col("other").cast("long")).as("x_i64")
      )
    val e = failureOf[SpindleInputException](dtypesModel.transform(df).collect())
    assert(e.getMessage.contains("column 'x_i32'") && e.getMessage.contains("null"))
  }

  test("missing signature") {
    val e = failureOf[SpindleModelException](dtypesModel.setSignature("nope").transform(dtypeRows(1, 1)))
    assert(e.getMessage.contains("'nope'") && e.getMessage.contains("serving_default"))
  }

  test("non-existent model path") {
    val missing = tempDir("spindle-none").resolve("no-such-model").toString
    val e = failureOf[SpindleModelException](SpindleModel.fromSavedModel(missing).transform(dtypeRows(1, 1)))
    assert(e.getMessage.contains(missing))
  }

  test("corrupt SavedModel") {
    val dir = tempDir("spindle-corrupt")
    Files.write(dir.resolve("saved_model.pb"), "this is not a protobuf".getBytes("UTF-8"))
    Files.createDirectories(dir.resolve("variables"))
    val e = failureOf[SpindleModelException](SpindleModel.fromSavedModel(dir.toString).transform(dtypeRows(1, 1)))
    assert(e.getMessage.contains(dir.toString))
  }

  test("load of something that is not a SavedModel fails at load, naming the path and what one holds") {
    val dir = tempDir("spindle-not-a-model")
    val keras = dir.resolve("model.keras")
    Files.write(keras, Array[Byte](80, 75, 3, 4))
    val empty = Files.createDirectories(dir.resolve("empty"))
    val other = Files.createDirectories(dir.resolve("other"))
    Files.write(other.resolve("weights.h5"), Array[Byte](1))
    for ((path, why) <- Seq(keras -> "is a file", empty -> "is empty", other -> "weights.h5")) {
      val e = failureOf[SpindleModelException](SpindleModel.load(path.toString))
      assert(e.getMessage.contains(path.toString) && e.getMessage.contains(why), e.getMessage)
      assert(e.getMessage.contains("saved_model.pb"), e.getMessage)
    }
  }

  test("describeSignature names every TensorFlow dtype, string and bool included") {
    val text = SpindleModel.load(fixture("strings_model")).describeSignature()
    for (line <- Seq("text: string [?]", "flag: bool [?]", "length: int32 [?]", "kept: string [?]"))
      assert(text.contains(line), text)
    assert(!text.contains("unspecified"), text)
    assert(dtypesModel.describeSignature().contains("x_f32: float32 [?, 4]"))
  }

  test("a batch too large for the task's memory is a typed error naming batchSize, numSlots and the budget") {
    val s = spark
    import s.implicits._
    val images = Seq.fill(4)(Array.fill(784)(0.5f)).toDF("features")
    val mnist = SpindleModel.fromSavedModel(fixture("mnist_mlp"))
    val e = failureOf[SpindleInputException](mnist.setBatchSize(100000000).transform(images).collect())
    for (part <- Seq("batchSize=100000000", "numSlots=2", "3136 bytes per row", "budget"))
      assert(e.getMessage.contains(part), e.getMessage)
    assert(mnist.setBatchSize(2).transform(images).count() == 4, "the SparkContext lives on")
  }
}

/** A Keras model exported by python/spindle/keras scores like Keras itself, on real digits. */
class DigitsAgreementSuite extends SpindleTestBase {
  test("probabilities agree with the Python model to 1e-5 and held-out accuracy is >= 0.95") {
    val lines = scala.io.Source.fromFile(fixture("digits_expected.csv")).getLines().drop(1).toVector
    val rows = lines.map(_.split(',').map(_.toDouble)).map { v =>
      (v(0).toInt, v(1).toLong, v.slice(2, 66).map(_.toFloat), v.slice(66, 76))
    }
    val s = spark
    import s.implicits._
    val df = rows.map { case (i, label, f, _) => (i, label, f) }.toDF("index", "label", "pixels").repartition(3)
    val scored = SpindleModel
      .fromSavedModel(fixture("digits_mlp_trained"))
      .setInputCols(Map("features" -> "pixels"))
      .setBatchSize(16)
      .transform(df)
      .select("index", "label", "probabilities")
      .collect()
    val expected = rows.map(r => r._1 -> r._4).toMap
    var correct = 0
    scored.foreach { r =>
      val p = r.getAs[collection.Seq[Float]]("probabilities")
      p.zip(expected(r.getInt(0))).foreach { case (got, want) =>
        assert(math.abs(got - want) <= 1e-5, s"$got vs $want")
      }
      if (p.indices.maxBy(p) == r.getLong(1)) correct += 1
    }
    assert(scored.length == 100)
    assert(correct >= 95, s"$correct of 100 held-out digits right")
  }
}

class JavaApiSuite extends SpindleTestBase {
  test("the Java surface (java.util.Map setters, static factory) scores a DataFrame") {
    val s = spark
    import s.implicits._
    val df = Seq(Tuple1(Array(1f, 2f, 3f, 4f))).toDF("values")
    val out = JavaApiUsage.doubleIt(fixture("dtypes_model"), df)
    assert(out.head().getAs[collection.Seq[Float]]("doubled") == Seq(2f, 4f, 6f, 8f))
  }
}
