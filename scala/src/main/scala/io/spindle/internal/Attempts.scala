package io.spindle.internal

import java.util.concurrent.ConcurrentHashMap

import scala.collection.mutable.ArrayBuffer
import scala.jdk.CollectionConverters._

import org.apache.spark.{SparkContext, SpindleCoreShim}
import org.apache.spark.scheduler.{
  SparkListener,
  SparkListenerExecutorMetricsUpdate,
  SparkListenerStageCompleted,
  SparkListenerStageSubmitted
}

import io.spindle.TrainingAttempt

/** Every attempt of a fit's training stage, as the driver sees it. Spark runs a failed barrier stage again whole, and
  * elastic training starts one with fewer workers; each attempt's workers restore the newest checkpoint. A listener
  * records, for each attempt of a barrier stage whose job carries one of the fit's tags ([[RetryWatch.Property]]): its
  * start and end, the checkpoint newest when it started (the one its workers restore), the last step its chief reported
  * (the progress accumulator `stepId`, which executor heartbeats bring) and why it ended. One owner (`fit`); idempotent
  * close.
  */
final class Attempts(sc: SparkContext, stepId: Long, newest: () => Option[String]) extends AutoCloseable {
  import Attempts.Running
  private val tags = ConcurrentHashMap.newKeySet[String]()
  private val running = new ConcurrentHashMap[(Int, Int), Running]()
  private val ended = ArrayBuffer[TrainingAttempt]()

  private val listener = new SparkListener {
    override def onStageSubmitted(submitted: SparkListenerStageSubmitted): Unit = {
      val stage = submitted.stageInfo
      val tag = Option(submitted.properties).flatMap(p => Option(p.getProperty(RetryWatch.Property)))
      if (tag.exists(tags.contains) && stage.rddInfos.exists(_.isBarrier)) {
        val start = stage.submissionTime.getOrElse(System.currentTimeMillis())
        running.put((stage.stageId, stage.attemptNumber()), Running(stage.numTasks, start, newest().getOrElse(""), 0))
      }
    }

    override def onExecutorMetricsUpdate(update: SparkListenerExecutorMetricsUpdate): Unit =
      for ((_, stage, attempt, infos) <- update.accumUpdates; info <- infos if info.id == stepId)
        (info.update, Option(running.get((stage, attempt)))) match {
          case (Some(step: Long), Some(r)) if step > r.lastStep =>
            running.put((stage, attempt), r.copy(lastStep = step))
          case _ =>
        }

    override def onStageCompleted(completed: SparkListenerStageCompleted): Unit = {
      val stage = completed.stageInfo
      Option(running.remove((stage.stageId, stage.attemptNumber()))).foreach { r =>
        val from = Checkpoints.stepOf(r.resumedFrom)
        val attempt = TrainingAttempt(
          0,
          r.workers,
          r.start,
          stage.completionTime.getOrElse(System.currentTimeMillis()),
          r.resumedFrom,
          math.max(r.lastStep - from, 0L),
          stage.failureReason.fold("completed")(_.linesIterator.take(1).mkString)
        )
        Attempts.this.synchronized(ended += attempt)
      }
    }
  }
  sc.addSparkListener(listener)

  /** Records the attempts of the stages whose job carries `tag`. */
  def watch(tag: String): Unit = tags.add(tag)

  /** Every attempt ended so far, numbered from 1 in order; the last one's steps are `lastStep` (the fit's last step,
    * exact) less the step it resumed from.
    */
  def all(lastStep: Long): Seq[TrainingAttempt] = {
    val done = synchronized(ended.toList).sortBy(_.startMillis)
    done.zipWithIndex.map { case (a, i) =>
      val steps = if (i == done.size - 1) math.max(lastStep - Checkpoints.stepOf(a.resumedFrom), 0L) else a.stepsDone
      a.copy(number = i + 1, stepsDone = steps)
    }
  }

  private var closed = false

  /** Stops recording, once the events posted so far have arrived (the last attempt's end among them). */
  override def close(): Unit = if (!closed) {
    closed = true
    SpindleCoreShim.drainListeners(sc)
    sc.removeSparkListener(listener)
  }
}

object Attempts {

  /** An attempt still running: its workers, start, the checkpoint it resumed from and the last step seen. */
  private final case class Running(workers: Int, start: Long, resumedFrom: String, lastStep: Long)
}
