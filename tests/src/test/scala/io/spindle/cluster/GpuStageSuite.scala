package io.spindle.cluster

import java.nio.file.Files
import java.nio.file.attribute.PosixFilePermissions

import org.apache.spark.sql.DataFrame

import io.spindle.{SpindleClusterException, SpindleEstimator, SpindleModel, SpindleModelException}
import io.spindle.examples.Digits

/** `gpusPerWorker`: the training stage alone asks for GPUs (a stage-level task resource profile), on two executor JVMs
  * that each have 2 fake GPUs (a discovery script reports addresses 0 and 1) while the application's tasks ask for
  * none. Scoring runs without GPUs; the training workers get one each, which this CPU-only libtensorflow refuses,
  * naming it.
  */
class GpuStageSuite extends ClusterSuite {

  override protected def master: String = "local-cluster[2,2,1536]"

  private lazy val discovery = {
    val script = Files.createTempFile("spindle-fake-gpus", ".sh")
    script.toFile.deleteOnExit()
    Files.write(script, "#!/usr/bin/env bash\necho '{\"name\": \"gpu\", \"addresses\": [\"0\", \"1\"]}'\n".getBytes)
    Files.setPosixFilePermissions(script, PosixFilePermissions.fromString("rwxr-xr-x"))
    script.toString
  }

  override protected def sparkConf: Map[String, String] = super.sparkConf ++ Map(
    "spark.worker.resource.gpu.amount" -> "2",
    "spark.worker.resource.gpu.discoveryScript" -> discovery,
    "spark.executor.resource.gpu.amount" -> "2",
    "spark.executor.resource.gpu.discoveryScript" -> discovery,
    "spark.stage.maxConsecutiveAttempts" -> "1"
  )

  private lazy val digits: DataFrame = Digits.load(spark, digitsCsv.toString).cache()

  private def estimator = new SpindleEstimator()
    .setModelPath(fixture("digits_mlp_init"))
    .setInputCols(Map("features" -> "features", "labels" -> "label"))
    .setExportPath(tempDir("spindle-export").resolve("model").toString)

  test("tasks outside the training stage get no GPU; each training worker gets the one it asked for") {
    val scored = SpindleModel
      .fromSavedModel(fixture("digits_mlp_trained"))
      .setInputCols(Map("features" -> "features"))
      .transform(digits)
    assert(scored.count() == digits.count(), "scoring ran on the CPU, holding no GPU")
    val e = failureOf[SpindleModelException](estimator.setNumWorkers(4).setGpusPerWorker(1).fit(digits.repartition(4)))
    assert(e.getMessage.matches("(?s).*the task holds GPU\\(s\\) [01] \\(Spark's task resources\\).*"), e.getMessage)
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
