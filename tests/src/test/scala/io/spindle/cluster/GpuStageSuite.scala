package io.spindle.cluster

import org.apache.spark.sql.DataFrame

import io.spindle.{SpindleClusterException, SpindleEstimator, SpindleModel, SpindleModelException}
import io.spindle.examples.Digits

/** `gpusPerWorker`: the training stage alone asks for GPUs (a stage-level task resource profile), on two executor JVMs
  * that each have 2 fake GPUs (a discovery script reports addresses 0 and 1) while the application's tasks ask for
  * none. Scoring runs without GPUs; the training workers get one each, which this CPU-only libtensorflow refuses,
  * naming it. Every session, with GPUs or without, sees the executor's two.
  */
class GpuStageSuite extends FakeGpus {

  private lazy val digits: DataFrame = Digits.load(spark, digitsCsv.toString).cache()

  private def estimator = new SpindleEstimator()
    .setModelPath(fixture("digits_mlp_init"))
    .setInputCols(Map("features" -> "features", "labels" -> "label"))
    .setExportPath(tempDir("spindle-export").resolve("model").toString)

  test("tasks outside the training stage get no GPU; each training worker gets the one it asked for") {
    val scored = SpindleModel
      .fromSavedModel(fixture("digits_mlp_trained"))
      .setInputCols(Map("features" -> "features"))
      .transform(Digits.heldOut(digits))
    // Holding no GPU on executors that have two, each session runs on the CPU in the executor's GPU mapping.
    val (correct, total) = Digits.accuracy(Digits.withPrediction(scored))
    assert(total == 450 && correct.toDouble / total >= 0.95, s"held-out accuracy $correct of $total")
    val e = failureOf[SpindleModelException](estimator.setNumWorkers(4).setGpusPerWorker(1).fit(digits.repartition(4)))
    assert(
      e.getMessage.matches("(?s).*the task holds GPU\\(s\\) [01] \\(Spark's task resources; this executor's: 0,1\\).*"),
      e.getMessage
    )
  }

  test("more GPUs per worker than an executor has fails at once, naming the setting; too few slots too") {
    val e = failureOf[SpindleClusterException](estimator.setNumWorkers(2).setGpusPerWorker(3).fit(digits))
    assert(e.getMessage.contains("gpusPerWorker=3: Spark refuses the training stage's resource profile"), e.getMessage)
    // 2 executors x 2 GPUs, 2 per worker: 2 slots, not 4.
    val slots = failureOf[SpindleClusterException](estimator.setNumWorkers(4).setGpusPerWorker(2).fit(digits))
    assert(slots.getMessage.contains("needs 4 task slots at once"), slots.getMessage)
    assert(
      slots.getMessage.contains("the cluster has 2 (executor cores / spark.task.cpus, executor GPUs"),
      slots.getMessage
    )
  }
}
