package io.spindle

import java.nio.file.Paths

import scala.concurrent.{Await, Future}
import scala.concurrent.ExecutionContext.Implicits.global
import scala.concurrent.duration._
import scala.util.Random

import org.apache.spark.ml.PipelineModel
import org.apache.spark.sql.DataFrame

/** `fit` logging to a real `mlflow server` (SQLite, local artifacts, 127.0.0.1), checked through its REST API: the run,
  * its Params, every epoch's metrics with their steps, the SavedModel and the fitted stage, which loads back and
  * scores; a server restarted during training loses no metric; an unreachable URI fails fit before any job.
  */
class MlflowSuite extends SpindleTestBase {

  // Epochs travel with executor heartbeats: a short interval lets the driver log them while training runs.
  override protected def sparkConf: Map[String, String] = Map("spark.executor.heartbeatInterval" -> "300ms")

  private lazy val server = {
    val s = new MlflowServer(repoRoot.resolve(".venv/bin/mlflow"), tempDir("spindle-mlflow-server"))
    s.start()
    s
  }

  override def afterAll(): Unit =
    try server.stop()
    finally super.afterAll()

  /** Digits-shaped rows: 64 features in [0, 1), raised by 0.5 in the label's group of six. */
  private def synthetic(rows: Int): DataFrame = {
    val s = spark
    import s.implicits._
    val random = new Random(7)
    (0 until rows)
      .map { i =>
        val label = random.nextInt(10)
        (i, Array.tabulate(64)(j => random.nextFloat() + (if (j / 6 == label) 0.5f else 0f)), label.toLong)
      }
      .toDF("id", "pixels", "digit")
      .repartition(1)
  }

  // digits_mlp_metrics_init has an evaluate signature, so validation metrics (val_loss, val_<metric>) too.
  private def estimator(experiment: String) = new SpindleEstimator()
    .setModelPath(fixture("digits_mlp_metrics_init"))
    .setInputCols(Map("features" -> "pixels", "labels" -> "digit"))
    .setExportPath(tempDir("spindle-export").resolve("model").toString)
    .setMlflowTrackingUri(server.uri)
    .setMlflowExperiment(experiment)

  test("fit logs its Params, every epoch's metrics and the fitted stage, which loads back and scores") {
    val data = synthetic(600)
    val fitted = estimator("params-metrics").setBatchSize(50).setEpochs(3).setValidationFraction(0.2).fit(data)
    val summary = fitted.summary
    val Seq(run) = server.runs("params-metrics")
    val runId = run.path("info").path("run_id").asText
    assert(run.path("info").path("status").asText == "FINISHED")
    val ps = run.path("data").path("params")
    val params = (0 until ps.size).map(ps.get).map(p => p.path("key").asText -> p.path("value").asText).toMap
    assert(params("epochs") == "3" && params("batchSize") == "50", params)
    assert(params("inputCols") == """{"features":"pixels","labels":"digit"}""", params)
    assert(params("modelPath") == fixture("digits_mlp_metrics_init"))
    assert(!params.keySet.exists(_.startsWith("mlflow")), "the tracking URI may carry credentials")
    assert(summary.epochs.size == 3)
    assert(server.history(runId, "loss") == summary.epochs.map(e => e.epoch.toLong -> e.loss))
    val keys = summary.epochs.head.validation.keySet
    assert(keys.contains("val_loss") && keys.contains("val_accuracy"), summary.epochs.head)
    for (key <- keys)
      assert(server.history(runId, key) == summary.epochs.map(e => e.epoch.toLong -> e.validation(key)))
    val files = server.artifacts(runId)
    assert(files.contains("savedmodel/saved_model.pb") && files.contains("savedmodel/variables/variables.index"), files)
    assert(files.contains("model/MLmodel") && files.exists(_.startsWith("model/sparkml/stages/")), files)
    // The stage as the server stored it: a PipelineModel whose SpindleModel scores as the fitted one does.
    val stored = run.path("info").path("artifact_uri").asText.stripPrefix("mlflow-artifacts:/")
    val sparkml = server.dir.resolve("artifacts").resolve(stored).resolve("model/sparkml")
    val loaded = PipelineModel.load(sparkml.toUri.toString)
    assert(loaded.stages.head.isInstanceOf[SpindleModel])
    val rows = data.limit(20)
    def scores(df: DataFrame) = df.select("id", "probabilities").collect().map(r => r.getInt(0) -> r.getSeq[Float](1))
    val expected = scores(fitted.transform(rows)).toMap
    val got = scores(loaded.transform(rows))
    assert(got.length == 20 && got.forall { case (id, p) => p == expected(id) })
  }

  test("a server restarted while training runs loses no epoch's metrics") {
    val name = "restart"
    // Enough steps that epochs are still running once the first is logged (an epoch is published once a second, sent
    // with the next heartbeat): 9,000 steps take 5 s on a quiet machine.
    val training = Future(estimator(name).setBatchSize(10).setEpochs(30).fit(synthetic(3000)))
    // Wait for a first epoch's loss to arrive (logged while training runs), then restart the server.
    val deadline = System.nanoTime() + 120e9.toLong
    def firstEpoch = scala.util.Try(server.runs(name).map(_.path("info").path("run_id").asText)).toOption.flatMap {
      case Seq(id) if server.history(id, "loss").nonEmpty => Some(id)
      case _                                              => None
    }
    var runId = firstEpoch
    while (runId.isEmpty && !training.isCompleted && System.nanoTime() < deadline) {
      Thread.sleep(100)
      runId = firstEpoch
    }
    assert(runId.isDefined && !training.isCompleted, "no epoch's loss was logged while training ran")
    val before = server.history(runId.get, "loss")
    server.stop()
    assert(!training.isCompleted, "fit ended before the server stopped")
    Thread.sleep(1500)
    server.start()
    val summary = Await.result(training, 5.minutes).summary
    assert(summary.epochs.size == 30)
    assert(before.size < 30, s"the server was stopped after the last epoch: $before")
    assert(server.history(runId.get, "loss") == summary.epochs.map(e => e.epoch.toLong -> e.loss))
    assert(server.runs(name).head.path("info").path("status").asText == "FINISHED")
  }

  test("a non-finite epoch loss is logged as such, and a failed fit ends its run FAILED") {
    val data = synthetic(400).withColumn("target", org.apache.spark.sql.functions.col("digit").cast("float"))
    def diverging(experiment: String) = estimator(experiment)
      .setModelPath(fixture("diverging_regression"))
      .setInputCols(Map("features" -> "pixels", "labels" -> "target"))
      .setBatchSize(20)
    val summary = diverging("diverging").setTerminateOnNaN(false).fit(data).summary
    val Seq(run) = server.runs("diverging")
    val logged = server.history(run.path("info").path("run_id").asText, "loss")
    assert(logged.map(_._1) == Seq(1L) && summary.epochs.map(_.loss).exists(l => l.isNaN || l.isInfinite))
    val (got, want) = (logged.head._2, summary.epochs.head.loss)
    assert((got.isNaN && want.isNaN) || got == want, s"$logged vs ${summary.epochs}")
    failureOf[SpindleTrainingException](diverging("terminated").fit(data))
    assert(server.runs("terminated").map(_.path("info").path("status").asText) == Seq("FAILED"))
  }

  test("an unreachable tracking URI fails fit before any job, naming the URI") {
    val closed = new MlflowServer(Paths.get("mlflow"), tempDir("unused")).uri
    val e =
      failureOf[SpindleMlflowException](estimator("x").setMlflowTrackingUri(closed).setEpochs(1).fit(synthetic(50)))
    assert(e.getMessage.contains(closed), e.getMessage)
    val bad =
      failureOf[SpindleMlflowException](estimator("x").setMlflowTrackingUri("file:/tmp/mlruns").fit(synthetic(50)))
    assert(bad.getMessage.contains("file:/tmp/mlruns"), bad.getMessage)
  }
}
