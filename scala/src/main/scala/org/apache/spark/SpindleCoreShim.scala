package org.apache.spark

import java.util.concurrent.ConcurrentLinkedQueue

import scala.jdk.CollectionConverters._

import org.apache.spark.scheduler.{SparkListener, SparkListenerTaskEnd}
import org.apache.spark.util.Utils

/** The package-private Spark core calls training needs: the executor's host, local dir and GPUs, the cluster's task
  * slots and dynamic allocation, and the exceptions failed tasks threw.
  */
object SpindleCoreShim {

  /** The host this executor's block manager advertises: the address peers on other hosts can reach. */
  def executorHost: String = SparkEnv.get.blockManager.blockManagerId.host

  /** One of this executor's local dirs (`spark.local.dir`), where spill files belong. */
  def localDir: String = Utils.getLocalDir(SparkEnv.get.conf)

  /** Every GPU address this executor holds (the `gpu` resource it registered with, which its tasks' are taken from);
    * empty in local mode, where the driver runs the tasks, or when Spark's internals differ. Spark keeps the list in a
    * private field of CoarseGrainedExecutorBackend, whose accessor (the same in Spark 3.5 and 4.x) is read here.
    */
  def executorGpus: Seq[String] = {
    val accessor = "org$apache$spark$executor$CoarseGrainedExecutorBackend$$_resources"
    Option(SparkEnv.get)
      .flatMap(_.executorBackend)
      .collect { case b: executor.CoarseGrainedExecutorBackend => b }
      .flatMap(b => scala.util.Try(b.getClass.getMethod(accessor).invoke(b)).toOption)
      .collect { case m: scala.collection.Map[_, _] => m.asInstanceOf[scala.collection.Map[String, Any]] }
      .flatMap(_.get("gpu"))
      .collect { case r: resource.ResourceInformation => r.addresses.toSeq }
      .getOrElse(Nil)
  }

  /** The Hadoop configuration Spark builds from `conf` (`spark.hadoop.*` included), for code outside a task. */
  def hadoopConfiguration(conf: SparkConf): org.apache.hadoop.conf.Configuration =
    org.apache.spark.deploy.SparkHadoopUtil.get.newConfiguration(conf)

  /** How many tasks of `profile` (default: the default resource profile) the registered executors can run at once. */
  def maxConcurrentTasks(sc: SparkContext, profile: Option[resource.ResourceProfile] = None): Int =
    sc.maxNumConcurrentTasks(profile.getOrElse(sc.resourceProfileManager.defaultResourceProfile))

  /** Executors asked of YARN or Kubernetes but not registered yet: the target they start with
    * (`spark.executor.instances`, which a lost executor's replacement keeps) less those registered. 0 elsewhere (local,
    * local-cluster, standalone), where executors are not requested one by one.
    */
  def pendingExecutors(sc: SparkContext): Int =
    if (sc.master.startsWith("yarn") || sc.master.startsWith("k8s"))
      math.max(
        scheduler.cluster.SchedulerBackendUtils.getInitialTargetExecutorNumber(sc.conf) - sc.getExecutorIds().size,
        0
      )
    else 0

  /** Registers `profile` (idempotent), so that its slots can be counted; Spark throws when the cluster cannot have it.
    */
  def registerProfile(sc: SparkContext, profile: resource.ResourceProfile): Unit =
    sc.resourceProfileManager.addResourceProfile(profile)

  /** Whether dynamic allocation is on, as Spark's scheduler sees it (it ignores the setting on a `local` master). */
  def dynamicAllocation(sc: SparkContext): Boolean = Utils.isDynamicAllocationEnabled(sc.getConf)

  /** Waits (up to 10 s) until the listeners have seen every event posted so far: Spark delivers them asynchronously. */
  def drainListeners(sc: SparkContext): Unit = sc.listenerBus.waitUntilEmpty(10000L)

  /** Runs `job`; when it fails, returns Spark's error with the exceptions its failed tasks threw, as the driver
    * received them. A failed barrier stage aborts with a message only, without the task's exception as the cause, so
    * this listens for them. The stage aborts on the first failure to arrive, which may be a peer's consequence of the
    * real one, so this waits (up to 5 s) until `settled` accepts what arrived. Tasks of other jobs that fail meanwhile
    * are included: callers pick by type.
    */
  def withTaskFailures[T](sc: SparkContext, settled: Seq[Throwable] => Boolean)(
      job: => T
  ): Either[(SparkException, Seq[Throwable]), T] = {
    val failures = new ConcurrentLinkedQueue[Throwable]()
    val listener = new SparkListener {
      override def onTaskEnd(end: SparkListenerTaskEnd): Unit = end.reason match {
        case f: ExceptionFailure => f.exception.foreach(failures.add)
        case _                   =>
      }
    }
    sc.addSparkListener(listener)
    try Right(job)
    catch {
      case e: SparkException =>
        val deadline = System.currentTimeMillis() + 5000L
        sc.listenerBus.waitUntilEmpty(10000L) // the task-end events are delivered asynchronously
        while (!settled(failures.asScala.toSeq) && System.currentTimeMillis() < deadline) {
          Thread.sleep(100)
          sc.listenerBus.waitUntilEmpty(10000L)
        }
        Left((e, failures.asScala.toSeq))
    } finally sc.removeSparkListener(listener)
  }
}
