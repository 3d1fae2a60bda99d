package io.spindle.internal

import org.apache.spark.{SparkContext, SpindleCoreShim}
import org.apache.spark.resource.ResourceProfile

import org.slf4j.LoggerFactory

import io.spindle.SpindleClusterException

/** Task slots for a barrier stage: every worker must run at once, and Spark's scheduler waits without a bound (and
  * without a word) for slots that never come. So `fit` checks before the first attempt, and [[RetryWatch]] checks again
  * when Spark retries the stage.
  */
object Slots {
  private val log = LoggerFactory.getLogger(getClass)

  /** Before the first attempt: executors still registering get this long after the last one came. */
  val FirstAttemptGraceMs = 5000L

  private val MaxWaitMs = 60000L

  /** How long a fit waits for executors still pending by default (`executorWaitTimeout`, and `spindle.run`): a queue or
    * an autoscaler that adds a node takes minutes.
    */
  val DefaultWaitSeconds = 300

  /** How often the wait for executors says what it waits for. */
  private val LogEveryMs = 10000L

  /** Fails, instead of letting a barrier stage wait forever, when the cluster cannot run every worker at once. Waits
    * while executors are pending ([[SpindleCoreShim.pendingExecutors]]: asked of YARN or Kubernetes, not registered
    * yet) up to `waitMs`, logging what it waits for; otherwise while executors keep registering (`graceMs` after the
    * last change, `MaxWaitMs` in all). Then throws a [[SpindleClusterException]] saying how many slots are needed and
    * how many exist.
    */
  def require(
      sc: SparkContext,
      workers: Int,
      graceMs: Long,
      waitMs: Long,
      profile: Option[ResourceProfile] = None
  ): Unit = {
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
    var logged = 0L
    var slots = SpindleCoreShim.maxConcurrentTasks(sc, profile)
    var pending = SpindleCoreShim.pendingExecutors(sc)
    def waiting: Boolean = {
      val now = System.currentTimeMillis()
      (pending > 0 && now - started < waitMs) || (now - changed < graceMs && now - started < MaxWaitMs)
    }
    while (slots < workers && waiting) {
      if (pending > 0 && System.currentTimeMillis() - logged >= LogEveryMs) {
        log.info(s"waiting for $pending more executors (have $slots of $workers slots)")
        logged = System.currentTimeMillis()
      }
      Thread.sleep(100)
      val now = SpindleCoreShim.maxConcurrentTasks(sc, profile)
      if (now != slots) changed = System.currentTimeMillis()
      slots = now
      pending = SpindleCoreShim.pendingExecutors(sc)
    }
    if (slots < workers) {
      val late =
        if (pending > 0)
          s"; $pending more executors were asked of the cluster manager and did not come within " +
            s"executorWaitTimeout (${waitMs / 1000} s)"
        else ""
      throw new SpindleClusterException(
        s"training with numWorkers=$workers needs $workers task slots at once (one barrier task per worker), but the " +
          s"cluster has $slots (executor cores / spark.task.cpus${profile.fold("")(_ => ", executor GPUs / gpusPerWorker")})" +
          s"$late; lower numWorkers or add executors"
      )
    }
  }
}
