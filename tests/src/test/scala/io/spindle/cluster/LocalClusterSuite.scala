package io.spindle.cluster

import scala.jdk.CollectionConverters._

import org.apache.spark.sql.functions.col

import io.spindle.{SpindleInputException, SpindleModel}

/** Inference on executor JVMs (see [[ClusterSuite]]). */
class LocalClusterSuite extends ClusterSuite {

  override protected def sparkConf: Map[String, String] = super.sparkConf + ("spark.task.maxFailures" -> "1")

  private def rows(n: Int) = {
    val s = spark
    import s.implicits._
    (0 until n).map(i => (i, Array.tabulate(4)(j => (i + j).toFloat))).toDF("id", "x_f32").repartition(4)
  }

  test("scores on two executor JVMs, none of them the driver") {
    val model = SpindleModel.fromSavedModel(fixture("dtypes_model")).setSignature("double_only").setBatchSize(64)
    val scored = model.transform(rows(2000))
    val where = scored.rdd.mapPartitions(new CountCorrectRows).collect()
    assert(where.map(_._2).sum == 2000, "every row scored correctly")
    val pids = where.map(_._1).toSet
    assert(!pids.contains(ProcessHandle.current().pid()))
    assert(pids.size == 2, s"both executors scored (pids: $pids)")
  }

  test("op libraries ship to executor JVMs (sc.addFile) and load there before the model") {
    val s = spark
    import s.implicits._
    val site = java.nio.file.Files
      .list(repoRoot.resolve(".venv/lib"))
      .iterator()
      .asScala
      .map(_.resolve("site-packages/tensorflow_text/python/ops"))
      .find(java.nio.file.Files.isDirectory(_))
      .getOrElse(fail("tensorflow-text is not in .venv: run ci/setup-python.sh"))
    val model = SpindleModel
      .fromSavedModel(fixture("text_ops/whitespace"))
      .setOpLibraries(Array(site.resolve("_whitespace_tokenizer_v2.so").toString))
    val texts = (0 until 400).map(i => s"row $i  of\ttext ${"x" * (i % 7)}")
    val scored = model.transform(texts.toDF("text").repartition(4))
    // Tasks run on the executor JVMs only (local-cluster). TextOpsSuite compares this model with Python; here ASCII
    // whitespace splitting is the reference.
    scored.select("text", "tokens", "count").collect().foreach { r =>
      val want = r.getString(0).split("\\s+").filter(_.nonEmpty).toSeq
      assert(r.getSeq[String](1).take(r.getLong(2).toInt) == want, r.getString(0))
    }
  }

  test("a bad row on an executor reaches the driver as a typed exception") {
    val model = SpindleModel.fromSavedModel(fixture("dtypes_model")).setSignature("double_only")
    val bad = rows(10).withColumn("x_f32", org.apache.spark.sql.functions.slice(col("x_f32"), 1, 3))
    val e = failureOf[SpindleInputException](model.transform(bad).collect())
    assert(e.getMessage.contains("3 elements, expected 4"))
  }
}

/** Runs on executors, so it is a top-level class: a lambda in the suite would drag the suite (and ScalaTest) onto the
  * executors' class path. Returns the executor's pid and how many rows it scored right.
  */
class CountCorrectRows extends (Iterator[org.apache.spark.sql.Row] => Iterator[(Long, Int)]) with Serializable {
  override def apply(rows: Iterator[org.apache.spark.sql.Row]): Iterator[(Long, Int)] = {
    var ok = 0
    rows.foreach { r =>
      val i = r.getInt(0)
      if (r.getSeq[Float](2) == Seq.tabulate(4)(j => 2f * (i + j))) ok += 1
    }
    Iterator(ProcessHandle.current().pid() -> ok)
  }
}
