package io.spindle.internal

import org.apache.spark.{SparkContext, SparkException, SpindleCoreShim}
import org.apache.spark.rdd.RDD
import org.apache.spark.resource.{ResourceProfile, ResourceProfileBuilder, TaskResourceRequests}
import org.slf4j.LoggerFactory

import io.spindle.{SpindleClusterException, SpindleException}
import io.spindle.proto.TrainingReport

/** The training job, apart from the estimator that plans it (as XGBoost4J-Spark's `XGBoost.train` is apart from its
  * estimator): the stage's resource profile, the slot check, the workers' address gather, the barrier stage itself, and
  * the mapping of its failures to the exception a worker threw.
  */
object BarrierTraining {

  /** Each worker's rows: its partition's training rows and its validation rows, read in that order by its task. */
  type Parts = RDD[(PartitionFeed, PartitionFeed)]

  /** How the training stage runs: the GPUs each worker asks for (0: none of its own), how long to wait for executors
    * still pending, whether the driver's rendezvous is sealed ([[Channel]]), what records its attempts, and the jobs'
    * description in Spark's UI.
    */
  final case class Stage(
      gpusPerWorker: Int,
      executorWaitMs: Long,
      encrypt: Boolean,
      attempts: Attempts,
      description: String
  )

  /** Runs `job` over `parts` as one barrier stage, a task per partition, each asking for `gpusPerWorker` GPUs when
    * above 0; returns every worker's report. With several workers, they first gather their ring addresses on the
    * driver, proving `secret`.
    */
  def run(
      sc: SparkContext,
      parts: Parts,
      job: TrainJob,
      stage: Stage,
      secret: Array[Byte]
  ): Seq[TrainingReport] = {
    val workers = parts.getNumPartitions
    val profile = resourceProfile(sc, stage.gpusPerWorker)
    Slots.require(sc, workers, Slots.FirstAttemptGraceMs, stage.executorWaitMs, profile)
    val gather = if (workers > 1) {
      val host = sc.getConf.get("spark.driver.host", "127.0.0.1")
      Some(new HelloGather(sc.getConf.get("spark.driver.bindAddress", host), host, workers, secret, stage.encrypt))
    } else None
    val theJob = job.copy(gatherAddress = gather.map(_.address))
    val log = LoggerFactory.getLogger(getClass)
    val (previous, previousTag) =
      (sc.getLocalProperty("spark.job.description"), sc.getLocalProperty(RetryWatch.Property))
    val tag = s"spindle-${System.nanoTime()}"
    sc.setJobDescription(s"Spindle: ${stage.description}")
    sc.setLocalProperty(RetryWatch.Property, tag)
    stage.attempts.watch(tag)
    val retries = new RetryWatch(sc, workers, tag, stage.executorWaitMs, profile)
    val reports =
      try
        SpindleCoreShim.withTaskFailures(sc, hasRootCause)(theJob.progress.logged(sc, log) {
          // The shuffle after the barrier stage makes it a map stage: Spark aborts a failed barrier result stage,
          // but retries a failed barrier map stage whole (up to spark.stage.maxConsecutiveAttempts), so workers
          // lost with an executor come back and resume from the newest checkpoint.
          profile
            .fold(parts)(p => parts.withResources(p))
            .barrier()
            .mapPartitions(new TrainTask(theJob))
            .repartition(1)
            .collect()
        }) match {
          case Right(r) => r
          case Left((e, taskFailures)) =>
            throw retries.cancelled.map { c => c.addSuppressed(e); c }.getOrElse(rootCause(e, taskFailures))
        }
      finally {
        gather.foreach(_.close())
        retries.close()
        sc.setJobDescription(previous)
        sc.setLocalProperty(RetryWatch.Property, previousTag)
      }
    reports.toSeq.map(TrainingReport.parseFrom)
  }

  /** The training stage's own resource profile when it asks for GPUs: scans before it and transforms after it run
    * without them.
    */
  private def resourceProfile(sc: SparkContext, gpusPerWorker: Int): Option[ResourceProfile] =
    if (gpusPerWorker > 0) {
      val task = new TaskResourceRequests().cpus(sc.getConf.getInt("spark.task.cpus", 1)).resource("gpu", gpusPerWorker)
      val p = new ResourceProfileBuilder().require(task).build()
      try SpindleCoreShim.registerProfile(sc, p)
      catch {
        case e: SparkException =>
          throw new SpindleClusterException(
            s"gpusPerWorker=$gpusPerWorker: Spark refuses the training stage's resource profile: ${e.getMessage}",
            e
          )
      }
      Some(p)
    } else None

  /** Whether `failures` hold an exception other than a peer's ring error, which only follows another failure. */
  private def hasRootCause(failures: Seq[Throwable]): Boolean =
    failures.exists(f => !f.isInstanceOf[SpindleClusterException])

  /** The Spindle exception a worker threw, rather than Spark's job-abort wrapper around it. When one worker fails, its
    * peers fail too, with a cluster error about the ring it left: the first other error is the cause.
    */
  private def rootCause(e: SparkException, taskFailures: Seq[Throwable]): Throwable = {
    val thrown = Iterator.iterate[Throwable](e)(_.getCause).takeWhile(_ != null).toSeq ++ taskFailures
    val spindle = thrown.collect { case s: SpindleException => s }
    spindle
      .find(!_.isInstanceOf[SpindleClusterException])
      .orElse(spindle.headOption)
      .map { s => s.addSuppressed(e); s }
      .getOrElse(e)
  }
}
