package io.spindle.internal

import org.apache.spark.{SparkContext, SpindleCoreShim}
import org.apache.spark.resource.ResourceProfile

import io.spindle.SpindleClusterException

/** Task slots for a barrier stage: every worker must run at once, and Spark's scheduler waits without a bound (and
  * without a word) for slots that never come. So `fit` checks before the first attempt, and [[RetryWatch]] checks again
  * when Spark retries the stage.
  */
object Slots {

  /** Before the first attempt: executors still registering get this long after the last one came. */
  val FirstAttemptGraceMs = 5000L

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
}
