package io.spindle.internal

import java.util.concurrent.atomic.AtomicReference

import scala.util.control.NonFatal

import org.apache.spark.{SparkContext, SpindleCoreShim}
import org.apache.spark.resource.ResourceProfile
import org.apache.spark.scheduler.{SparkListener, SparkListenerStageSubmitted}

import io.spindle.SpindleClusterException

/** Task slots for a barrier stage: every worker must run at once, and Spark's scheduler waits without a bound (and
  * without a word) for slots that never come. So `fit` checks before the first attempt, and [[Slots.Watch]] checks
  * again when Spark retries the stage.
  */
object Slots {

  /** Before the first attempt: executors still registering get this long after the last one came. */
  val FirstAttemptGraceMs = 5000L

  /** Before a retry: a lost executor is often being replaced (a standalone worker relaunches it, YARN or Kubernetes
    * start another); a new JVM takes this long at most to register.
    */
  val RetryGraceMs = 30000L

  private val MaxWaitMs = 60000L

  /** Fails, instead of letting a barrier stage wait forever, when the cluster cannot run every worker at once: waits
    * while executors keep registering (`graceMs` after the last change, `MaxWaitMs` in all), then throws a
    * [[SpindleClusterException]] saying how many slots are needed and how many exist.
    */
  def require(sc: SparkContext, workers: Int, graceMs: Long, profile: Option[ResourceProfile] = None): Unit = {
    // Spark rejects a barrier stage under dynamic allocation only once the job is submitted, with a message that
    // names neither Spindle nor the workers it needs; say so before any work.
    if (SpindleCoreShim.dynamicAllocation(sc))
      throw new SpindleClusterException(
        s"training with numWorkers=$workers runs one barrier stage, and Spark does not run barrier stages with " +
          "dynamic allocation (spark.dynamicAllocation.enabled=true): start this application with " +
          s"spark.dynamicAllocation.enabled=false and at least $workers task slots (spark.executor.instances x " +
          "spark.executor.cores / spark.task.cpus)"
      )
    val started = System.currentTimeMillis()
    var changed = started
    var slots = SpindleCoreShim.maxConcurrentTasks(sc, profile)
    while (
      slots < workers && System.currentTimeMillis() - changed < graceMs &&
      System.currentTimeMillis() - started < MaxWaitMs
    ) {
      Thread.sleep(100)
      val now = SpindleCoreShim.maxConcurrentTasks(sc, profile)
      if (now != slots) changed = System.currentTimeMillis()
      slots = now
    }
    if (slots < workers)
      throw new SpindleClusterException(
        s"training with numWorkers=$workers needs $workers task slots at once (one barrier task per worker), but the " +
          s"cluster has $slots (executor cores / spark.task.cpus${profile.fold("")(_ => ", executor GPUs / gpusPerWorker")}); " +
          "lower numWorkers or add executors"
      )
  }

  /** While `body` runs the job whose stages carry the local property `tag`: when Spark retries one of them (after an
    * executor loss) on a cluster that no longer has `workers` slots, cancels it and returns the reason, so that `fit`
    * fails within [[RetryGraceMs]] as the first attempt would, instead of waiting for slots that never come.
    */
  final class Watch(sc: SparkContext, workers: Int, tag: String, profile: Option[ResourceProfile] = None)
      extends AutoCloseable {
    private val failure = new AtomicReference[SpindleClusterException]()
    private val listener = new SparkListener {
      override def onStageSubmitted(submitted: SparkListenerStageSubmitted): Unit = {
        val stage = submitted.stageInfo
        val ours = Option(submitted.properties).exists(p => p.getProperty(Watch.Property) == tag)
        if (ours && stage.attemptNumber() > 0) {
          val checking = new Thread(
            () =>
              try require(sc, workers, RetryGraceMs, profile)
              catch {
                case e: SpindleClusterException =>
                  failure
                    .compareAndSet(null, new SpindleClusterException(s"retrying the training stage: ${e.getMessage}"))
                  sc.cancelStage(stage.stageId, e.getMessage)
                case NonFatal(_) =>
              },
            s"spindle-slot-check stage ${stage.stageId}"
          )
          checking.setDaemon(true)
          checking.start()
        }
      }
    }
    sc.addSparkListener(listener)

    /** Why a retry was cancelled, if one was. */
    def cancelled: Option[SpindleClusterException] = Option(failure.get())

    override def close(): Unit = sc.removeSparkListener(listener)
  }

  object Watch {

    /** The local property that marks a training job's stages. */
    val Property = "spindle.training"
  }
}
