package io.spindle.internal

import java.nio.charset.StandardCharsets.UTF_8
import java.nio.file.{Files, Path}
import java.time.Instant
import java.util.UUID

import scala.util.control.NonFatal

import org.apache.commons.io.FileUtils
import org.apache.hadoop.fs.{Path => HPath}
import org.apache.spark.ml.{Pipeline, PipelineStage}
import org.apache.spark.sql.DataFrame
import org.slf4j.Logger

import io.spindle.SpindleModel

/** The fitted stage as an MLflow model of the `spark` flavor: a directory holding `MLmodel` and, under `sparkml/`, a
  * one-stage `PipelineModel` saved by Spark's MLWriter (the SpindleModel's own writer copies the SavedModel into it, so
  * the directory is self-contained). `mlflow.spark.load_model` reads it back with `PipelineModel.load`, which finds the
  * Python `spindle.ml` stage when `spindle` is importable; Scala reads `sparkml/` with `PipelineModel.load`.
  */
private[spindle] object MlflowModel {

  /** Where the flavor keeps the PipelineModel, inside the model directory. */
  val ModelData = "sparkml"

  /** Ends `run` after a successful fit: the summary's epochs (those training did not log, or logged otherwise), the
    * SavedModel exported at `exported` as `savedmodel/`, the fitted stage as `model/`. Training succeeded, so a stage
    * that cannot be saved costs its artifact, not the fit.
    */
  def finish(run: MlflowLog, fitted: SpindleModel, df: DataFrame, exported: String, log: Logger): Unit = {
    fitted.summary.epochs.foreach(e => run.epoch(e.epoch.toLong, e.loss, e.validation))
    val dir = Files.createTempDirectory("spindle-mlflow-")
    try {
      val model = dir.resolve("model")
      val stage =
        try {
          write(fitted, df, model, run.runId)
          Seq("model" -> new HPath(model.toUri))
        } catch {
          case NonFatal(e) =>
            log.warn(s"MLflow run ${run.runId}: the fitted stage could not be saved, so it is not logged: $e")
            Nil
        }
      run.finish(
        ("savedmodel" -> new HPath(exported)) +: stage,
        df.sparkSession.sparkContext.hadoopConfiguration,
        "FINISHED"
      )
    } finally FileUtils.deleteQuietly(dir.toFile)
  }

  /** Writes the model directory of `fitted` into `dir` (a new local directory); `df`: the training rows, whose schema
    * `Pipeline.fit` checks (no job runs: the pipeline has no estimator).
    */
  def write(fitted: SpindleModel, df: DataFrame, dir: Path, runId: String): Unit = {
    val pipeline = new Pipeline().setStages(Array[PipelineStage](fitted)).fit(df)
    pipeline.write.save(dir.resolve(ModelData).toUri.toString)
    val spark = df.sparkSession.version
    val mlmodel =
      s"""artifact_path: model
         |flavors:
         |  spark:
         |    model_data: $ModelData
         |    pyspark_version: $spark
         |model_uuid: ${UUID.randomUUID().toString.replace("-", "")}
         |run_id: $runId
         |utc_time_created: '${Instant.now()}'
         |""".stripMargin
    Files.write(dir.resolve("MLmodel"), mlmodel.getBytes(UTF_8))
  }
}
