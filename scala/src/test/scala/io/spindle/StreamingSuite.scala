package io.spindle

import java.nio.file.Files

import org.apache.spark.sql.types._

/** `SpindleModel.transform` of a streaming DataFrame: a file source, scored, into a file sink with a checkpoint. */
class StreamingSuite extends SpindleTestBase {

  private val files = 6
  private val rowsPerFile = 20

  private def x(id: Int): Seq[Float] = Seq(id + 0.5f, -id.toFloat, id * 0.25f, 1f)

  test("a stream stopped mid-way and restarted from its checkpoint scores every input row exactly once") {
    val (in, out, checkpoint) = (tempDir("stream-in"), tempDir("stream-out"), tempDir("stream-checkpoint"))
    for (f <- 0 until files) {
      val ids = f * rowsPerFile until (f + 1) * rowsPerFile
      val lines = ids.map(i => s"""{"id": $i, "x_f32": ${x(i).mkString("[", ", ", "]")}}""")
      Files.write(in.resolve(f"part-$f%02d.json"), lines.mkString("\n").getBytes("UTF-8"))
    }
    val schema = StructType(Seq(StructField("id", IntegerType), StructField("x_f32", ArrayType(FloatType))))
    val model = SpindleModel
      .fromSavedModel(fixture("dtypes_model"))
      .setSignature("double_only")
      .setOutputCols(Map("y_f32" -> "twice"))
    def start() = model
      .transform(spark.readStream.schema(schema).option("maxFilesPerTrigger", 1).json(in.toString))
      .writeStream
      .format("parquet")
      .option("checkpointLocation", checkpoint.toString)
      .start(out.toString)

    // One file per micro-batch: stop after two, with four still to come.
    val first = start()
    val deadline = System.currentTimeMillis() + 60000
    while (first.recentProgress.count(_.numInputRows > 0) < 2 && System.currentTimeMillis() < deadline) Thread.sleep(50)
    first.stop()
    val before = spark.read.parquet(out.toString).count()
    assert(before >= 2 * rowsPerFile && before < files * rowsPerFile, s"$before rows in the sink after the first run")

    val second = start()
    second.processAllAvailable()
    second.stop()
    val scored = spark.read.parquet(out.toString).collect()
    assert(scored.map(_.getAs[Int]("id")).sorted.toSeq == (0 until files * rowsPerFile))
    scored.foreach { r =>
      val id = r.getAs[Int]("id")
      assert(r.getAs[collection.Seq[Float]]("twice") == x(id).map(_ * 2), s"row $id")
    }
  }
}
