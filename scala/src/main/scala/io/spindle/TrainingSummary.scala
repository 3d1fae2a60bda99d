package io.spindle

import scala.jdk.CollectionConverters._

import io.spindle.proto.TrainingReport

/** One synchronous training step. Times are the slowest worker's (the step waits for it).
  *
  * @param loss
  *   mean loss over every worker's rows of the step
  * @param examples
  *   rows of the step over all workers
  * @param checkpointMs
  *   time the chief spent checkpointing after the step (part of the step's time, so of `examplesPerSecond`)
  */
final case class StepSummary(
    step: Long,
    epoch: Int,
    loss: Double,
    examples: Long,
    examplesPerSecond: Double,
    inputWaitMs: Double,
    computeMs: Double,
    allReduceMs: Double,
    checkpointMs: Double
)

/** A change of the number of workers during `fit` (elastic training, `minWorkers`).
  *
  * @param resumedFrom
  *   the checkpoint the survivors restored; empty when none had been written (they started over)
  * @param cause
  *   why the workers before could not go on
  * @param atMillis
  *   Unix time in milliseconds of the change
  */
final case class WorkerChange(from: Int, to: Int, resumedFrom: String, cause: String, atMillis: Long)

/** One attempt of the training stage: Spark runs a failed barrier stage again whole (a lost executor, a failed task),
  * and elastic training (`minWorkers`) starts one with fewer workers.
  *
  * @param number
  *   counted from 1, in order
  * @param startMillis
  *   Unix time in milliseconds when Spark submitted it; `endMillis` when it ended
  * @param resumedFrom
  *   the checkpoint its workers restored (the newest when it started); empty for none
  * @param stepsDone
  *   steps it ran past `resumedFrom`: exact for the last attempt; for one that failed, as of the chief's last executor
  *   heartbeat before the failure (`spark.executor.heartbeatInterval`)
  * @param ended
  *   `completed`, or why it failed, as Spark reports it
  */
final case class TrainingAttempt(
    number: Int,
    workers: Int,
    startMillis: Long,
    endMillis: Long,
    resumedFrom: String,
    stepsDone: Long,
    ended: String
)

/** One epoch, over every worker.
  *
  * @param loss
  *   row-weighted mean of the epoch's step losses
  * @param validation
  *   the validation metrics after the epoch (`val_loss`, `val_<metric>`); empty without validation data
  */
final case class EpochSummary(epoch: Int, loss: Double, validation: Map[String, Double]) {

  /** Java-friendly view of [[validation]]. */
  def validationJava: java.util.Map[String, java.lang.Double] =
    validation.map { case (k, v) => k -> java.lang.Double.valueOf(v) }.asJava
}

/** What [[SpindleEstimator.fit]] saw: every step, the rows each worker fed, and the trained variables when the model
  * has a `variables` signature.
  *
  * @param feedSecondsPerWorker
  *   time each worker's task spent reading its rows from Spark and writing them into batches (first epoch)
  * @param feedWaitSecondsPerWorker
  *   time each worker's task waited for a free batch window, held back by training
  * @param firstStepDoneMillis
  *   Unix time in milliseconds when the first step was done (on the chief; 0 when none ran): its distance from the call
  *   to `fit` is the job's fixed cost before training proper
  * @param epochs
  *   every epoch run, with its validation metrics
  * @param bestEpoch
  *   with early stopping, the epoch whose weights were exported; 0 without
  * @param stoppedEarly
  *   whether early stopping ended training before its last epoch
  * @param workerChanges
  *   each change of the number of workers, in order (elastic training)
  * @param attempts
  *   every attempt of the training stage, in order. The steps and epochs cover the whole training across them: a
  *   resumed attempt starts from the history saved with its checkpoint (steps a failed attempt ran past it were undone,
  *   and are not there); the rows and feed times are the last attempt's workers'
  */
final class TrainingSummary private[spindle] (
    val steps: Seq[StepSummary],
    val rowsPerWorker: Seq[Long],
    val feedSecondsPerWorker: Seq[Double],
    val feedWaitSecondsPerWorker: Seq[Double],
    val variables: Map[String, Array[Float]],
    val exportPath: String,
    val firstStepDoneMillis: Long,
    val epochs: Seq[EpochSummary],
    val bestEpoch: Int,
    val stoppedEarly: Boolean,
    val workerChanges: Seq[WorkerChange],
    val attempts: Seq[TrainingAttempt]
) extends Serializable {

  /** The validation metric `name` (`val_loss`, `val_accuracy`, ...) after every epoch, in order. */
  def validationHistory(name: String): Array[Double] = epochs.flatMap(_.validation.get(name)).toArray

  /** Loss of every step, in order. */
  def lossHistory: Array[Double] = steps.map(_.loss).toArray

  def numWorkers: Int = rowsPerWorker.size

  /** Examples per second over the whole run (sum of examples over sum of step times). */
  def examplesPerSecond: Double = {
    val seconds = steps.map(s => s.examples / math.max(s.examplesPerSecond, 1e-9)).sum
    if (seconds > 0) steps.map(_.examples).sum / seconds else 0.0
  }

  /** Rows per second the workers together could feed when not held back by training (sum over workers). */
  def rowsFedPerSecond: Double =
    rowsPerWorker.zip(feedSecondsPerWorker).map { case (r, s) => if (s > 0) r / s else 0.0 }.sum

  // Java-friendly views: plain Java code needs no Scala converters.
  def variablesJava: java.util.Map[String, Array[Float]] = variables.asJava
  def stepsJava: java.util.List[StepSummary] = steps.asJava
  def epochsJava: java.util.List[EpochSummary] = epochs.asJava
  def workerChangesJava: java.util.List[WorkerChange] = workerChanges.asJava
  def attemptsJava: java.util.List[TrainingAttempt] = attempts.asJava
  def rowsPerWorkerJava: java.util.List[java.lang.Long] = rowsPerWorker.map(java.lang.Long.valueOf).asJava
  def feedSecondsPerWorkerJava: java.util.List[java.lang.Double] =
    feedSecondsPerWorker.map(java.lang.Double.valueOf).asJava
  def feedWaitSecondsPerWorkerJava: java.util.List[java.lang.Double] =
    feedWaitSecondsPerWorker.map(java.lang.Double.valueOf).asJava
}

private[spindle] object TrainingSummary {

  /** Merges the workers' reports (one per rank); the chief's carries the variables. */
  def of(
      reports: Seq[TrainingReport],
      exportPath: String,
      changes: Seq[WorkerChange],
      attempts: Seq[TrainingAttempt]
  ): TrainingSummary = {
    val byRank = reports.sortBy(_.getRank)
    val perWorker = byRank.map(_.getStepsList.asScala.toIndexedSeq)
    val steps = perWorker.head.indices.map { i =>
      val all = perWorker.map(_(i))
      val first = all.head
      val stepMicros = all.map(_.getStepMicros).max
      StepSummary(
        first.getStep,
        first.getEpoch,
        first.getLoss,
        first.getExamples,
        first.getExamples * 1e6 / math.max(stepMicros, 1L),
        all.map(_.getInputWaitMicros).max / 1e3,
        all.map(_.getComputeMicros).max / 1e3,
        all.map(_.getAllreduceMicros).max / 1e3,
        all.map(_.getCheckpointMicros).max / 1e3
      )
    }
    val variables = byRank.head.getVariablesList.asScala.map { t =>
      t.getName -> t.getValuesList.asScala.map(_.floatValue).toArray
    }.toMap
    new TrainingSummary(
      steps,
      byRank.map(_.getRows),
      byRank.map(_.getFeedMicros / 1e6),
      byRank.map(_.getFeedWaitMicros / 1e6),
      variables,
      exportPath,
      byRank.head.getFirstStepDoneMillis,
      byRank.head.getEpochsList.asScala.toSeq.map { e =>
        EpochSummary(e.getEpoch, e.getLoss, e.getValidationMap.asScala.map { case (k, v) => k -> v.doubleValue }.toMap)
      },
      byRank.head.getBestEpoch,
      byRank.head.getStoppedEarly,
      changes,
      attempts
    )
  }
}
