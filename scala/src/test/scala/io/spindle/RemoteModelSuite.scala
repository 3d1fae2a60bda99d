package io.spindle

import java.net.URI
import java.nio.file.{Files, Paths}

import org.apache.hadoop.fs.RawLocalFileSystem

import io.spindle.internal.ModelCache

/** A "remote" Hadoop FileSystem: local files under another scheme, so the copy-to-local path runs for real. */
class FakeRemoteFileSystem extends RawLocalFileSystem {
  override def getUri: URI = URI.create("fakeremote:///")
  override def getScheme: String = "fakeremote"
}

class RemoteModelSuite extends SpindleTestBase {
  override protected def sparkConf: Map[String, String] =
    Map("spark.hadoop.fs.fakeremote.impl" -> classOf[FakeRemoteFileSystem].getName)

  test("a model on a non-local FileSystem is copied to local disk once per JVM and scores") {
    val remote = "fakeremote://" + fixture("dtypes_model")
    val conf = spark.sparkContext.hadoopConfiguration
    val local = ModelCache.localize(remote, conf)
    assert(local != fixture("dtypes_model"))
    assert(Files.isRegularFile(Paths.get(local, "saved_model.pb")))
    assert(ModelCache.localize(remote, conf) == local, "copied once")

    val s = spark
    import s.implicits._
    val df = Seq(Tuple1(Array(1f, 2f, 3f, 4f))).toDF("x_f32")
    val out = SpindleModel.fromSavedModel(remote).setSignature("double_only").transform(df)
    assert(out.head().getAs[collection.Seq[Float]]("y_f32") == Seq(2f, 4f, 6f, 8f))
  }

  test("a missing remote model names its path") {
    val e = failureOf[SpindleModelException](
      SpindleModel
        .fromSavedModel("fakeremote:///no/such/model")
        .transformSchema(new org.apache.spark.sql.types.StructType())
    )
    assert(e.getMessage.contains("fakeremote:///no/such/model"))
  }
}
