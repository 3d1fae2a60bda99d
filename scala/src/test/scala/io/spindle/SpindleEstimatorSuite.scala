package io.spindle

import scala.util.Random

import org.apache.spark.sql.DataFrame
import org.apache.spark.sql.functions.{col, lit, when}

/** Training in `local[2]` (workers are threads of this JVM, still joined by a real TCP ring): params, schema checks,
  * learning, failure handling. The multi-JVM suite is tests/.../TrainingClusterSuite.
  */
class SpindleEstimatorSuite extends SpindleTestBase {

  /** A learnable digits-shaped set: 64 features in [0, 1), raised by 0.5 in the label's group of six. */
  private def synthetic(rows: Int, partitions: Int, seed: Int = 1): DataFrame = {
    val s = spark
    import s.implicits._
    val random = new Random(seed)
    (0 until rows)
      .map { i =>
        val label = random.nextInt(10)
        val x = Array.tabulate(64)(j => random.nextFloat() + (if (j / 6 == label) 0.5f else 0f))
        (i, x, label.toLong)
      }
      .toDF("id", "pixels", "digit")
      .repartition(partitions)
  }

  private def estimator = new SpindleEstimator()
    .setModelPath(fixture("digits_mlp_init"))
    .setInputCols(Map("features" -> "pixels", "labels" -> "digit"))
    .setExportPath(tempDir("spindle-export").resolve("model").toString)

  test("one worker learns over replayed epochs, and the fitted model scores with the trained weights") {
    val data = synthetic(800, 1)
    val fitted = estimator.setBatchSize(50).setEpochs(4).fit(data)
    val summary = fitted.summary
    assert(summary.steps.size == 4 * 16)
    assert(summary.rowsPerWorker == Seq(800L))
    val byEpoch = summary.steps.groupBy(_.epoch).view.mapValues(s => s.map(_.loss).sum / s.size).toMap
    assert(byEpoch(4) < byEpoch(1) * 0.8, s"mean loss per epoch: $byEpoch")
    assert(fitted.getInputCols == Map("features" -> "pixels"), "the serving signature has no labels")
    val scored = fitted.transform(data).select("probabilities").collect()
    assert(scored.length == 800 && scored.forall(_.getSeq[Float](0).size == 10))
    val before = SpindleModel.fromSavedModel(fixture("digits_mlp_init")).setInputCols(Map("features" -> "pixels"))
    val first = before.transform(data.limit(1)).select("probabilities").head().getSeq[Float](0)
    assert(first != fitted.transform(data.limit(1)).select("probabilities").head().getSeq[Float](0))
  }

  test("two workers in one JVM average their gradients over the ring") {
    val summary = estimator.setNumWorkers(2).setBatchSize(25).setEpochs(2).fit(synthetic(400, 2)).summary
    assert(summary.numWorkers == 2)
    assert(summary.rowsPerWorker.sum == 400)
    assert(summary.steps.forall(s => s.allReduceMs >= 0 && s.examples <= 50))
    assert(summary.steps.filter(_.epoch == 1).map(_.examples).sum == 400)
  }

  test("a missing label column is named before any task starts") {
    val e = failureOf[SpindleInputException](estimator.fit(synthetic(10, 1).drop("digit")))
    assert(e.getMessage.contains("column 'digit'") && e.getMessage.contains("labels"), e.getMessage)
  }

  test("a bad row on one worker fails the job with a typed exception, and its peer does not hang") {
    val data = synthetic(400, 2).withColumn("pixels", when(col("id") === 300, lit(null)).otherwise(col("pixels")))
    val started = System.nanoTime()
    val e = failureOf[SpindleInputException](estimator.setNumWorkers(2).setBatchSize(20).setEpochs(2).fit(data))
    assert(e.getMessage.contains("column 'pixels'") && e.getMessage.contains("null"), e.getMessage)
    assert((System.nanoTime() - started) / 1e9 < 60)
  }

  test("more workers than task slots fails at once") {
    val e = failureOf[SpindleClusterException](estimator.setNumWorkers(3).fit(synthetic(10, 1)))
    assert(e.getMessage.contains("needs 3 task slots") && e.getMessage.contains("has 2"), e.getMessage)
  }

  test("the estimator's params persist") {
    val path = tempDir("spindle-estimator").resolve("stage").toString
    estimator.setNumWorkers(2).setEpochs(3).setSeed(9).write.save(path)
    val loaded = SpindleEstimator.load(path)
    assert(loaded.getNumWorkers == 2 && loaded.getEpochs == 3 && loaded.getSeed == 9)
    assert(loaded.getInputCols == Map("features" -> "pixels", "labels" -> "digit"))
  }
}
