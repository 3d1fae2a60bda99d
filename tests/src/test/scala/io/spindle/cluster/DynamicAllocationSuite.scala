package io.spindle.cluster

import org.apache.spark.sql.DataFrame
import org.scalatest.concurrent.TimeLimits
import org.scalatest.time.{Seconds, Span}

import io.spindle.{SpindleClusterException, SpindleEstimator, SpindleModel}
import io.spindle.examples.Digits

/** Dynamic allocation on executor JVMs (see [[ClusterSuite]]): Spark runs no barrier stage under it, so `fit` must say
  * so before any work, while inference, which needs no barrier, runs as usual.
  */
class DynamicAllocationSuite extends ClusterSuite with TimeLimits {

  override protected def sparkConf: Map[String, String] = super.sparkConf ++ Map(
    "spark.dynamicAllocation.enabled" -> "true",
    "spark.dynamicAllocation.shuffleTracking.enabled" -> "true",
    "spark.dynamicAllocation.initialExecutors" -> "2",
    "spark.dynamicAllocation.minExecutors" -> "2"
  )

  private lazy val digits: DataFrame = Digits.load(spark, digitsCsv.toString)

  test("fit under dynamic allocation fails at once with a typed error naming the setting") {
    val estimator = new SpindleEstimator()
      .setModelPath(fixture("digits_mlp_init"))
      .setInputCols(Map("features" -> "features", "labels" -> "label"))
      .setOutputCols(Map("probabilities" -> "probabilities"))
      .setExportPath(tempDir("spindle-export").resolve("model").toString)
      .setNumWorkers(2)
    // The bound only guards against a hang; the assertions are on the error.
    val e = failAfter(Span(60, Seconds))(intercept[SpindleClusterException](estimator.fit(Digits.training(digits))))
    assert(e.getMessage.contains("spark.dynamicAllocation.enabled=false"), e.getMessage)
    assert(e.getMessage.contains("numWorkers=2"), e.getMessage)
  }

  test("inference runs under dynamic allocation") {
    val model = SpindleModel
      .fromSavedModel(fixture("digits_mlp_init"))
      .setInputCols(Map("features" -> "features"))
      .setOutputCols(Map("probabilities" -> "probabilities"))
    val scored = model.transform(Digits.heldOut(digits)).select("probabilities").collect()
    assert(scored.length == Digits.heldOut(digits).count())
    assert(scored.forall(r => math.abs(r.getSeq[Float](0).sum - 1f) < 1e-4), "each row's probabilities sum to 1")
  }
}
