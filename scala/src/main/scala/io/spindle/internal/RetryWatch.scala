package io.spindle.internal

import java.util.concurrent.ConcurrentHashMap
import java.util.concurrent.atomic.AtomicReference

import scala.jdk.CollectionConverters._
import scala.util.control.NonFatal

import org.apache.spark.{ExecutorLostFailure, SparkContext, SpindleCoreShim, TaskEndReason}
import org.apache.spark.resource.ResourceProfile
import org.apache.spark.scheduler.{
  SparkListener,
  SparkListenerStageSubmitted,
  SparkListenerTaskEnd,
  SparkListenerTaskStart
}

/** While `fit` runs the job whose stages carry the local property `tag`: when Spark retries the training stage (after a
  * worker failed), makes sure the retry starts, or cancels it and says why, so that `fit` fails in bounded time instead
  * of waiting for task slots that never come.
  *
  * A retried barrier stage starts only once it has every worker's slot free at once, and Spark's scheduler waits for
  * that without a bound and without a word. Two ways it never comes:
  *   - an executor is gone for good (killed, its host down): the cluster has fewer slots than workers;
  *   - a host is cut off: the driver cannot reach its executor, so the task it ran never ends, and its slot stays held
  *     until Spark gives the executor up (its heartbeat timeout, two minutes by default), often longer.
  *
  * So the retry must start all of its tasks within [[RetryWatch.StartMs]] of its submission (or of the last executor
  * that registered: a lost executor being replaced, as a standalone worker or YARN does), and fails sooner when the
  * cluster has fewer slots than workers for [[RetryWatch.ShortMs]]. The error names each rank lost with the attempt
  * before (its task ended with its executor, or never ended) and its host, and how many slots are missing.
  */
final class RetryWatch(
    sc: SparkContext,
    workers: Int,
    tag: String,
    executorWaitMs: Long,
    profile: Option[ResourceProfile] = None
) extends AutoCloseable {
  import RetryWatch._

  private val failure = new AtomicReference[Elastic.WorkersLost]()
  @volatile private var closed = false
  // (stage, attempt) -> partition -> where its task ran and how it ended.
  private val tasks = new ConcurrentHashMap[(Int, Int), ConcurrentHashMap[Int, Task]]()
  private val latest = new ConcurrentHashMap[Int, Int]() // stage -> its newest attempt

  private def tasksOf(stage: Int, number: Int) =
    tasks.computeIfAbsent((stage, number), _ => new ConcurrentHashMap[Int, Task]())

  private val listener = new SparkListener {
    override def onStageSubmitted(submitted: SparkListenerStageSubmitted): Unit = {
      val stage = submitted.stageInfo
      if (Option(submitted.properties).exists(_.getProperty(Property) == tag)) {
        latest.put(stage.stageId, stage.attemptNumber())
        if (stage.attemptNumber() > 0) watch(stage.stageId, stage.attemptNumber())
      }
    }
    override def onTaskStart(start: SparkListenerTaskStart): Unit =
      if (latest.containsKey(start.stageId))
        tasksOf(start.stageId, start.stageAttemptId).put(start.taskInfo.index, Task(start.taskInfo.host, None))
    override def onTaskEnd(end: SparkListenerTaskEnd): Unit =
      if (latest.containsKey(end.stageId))
        tasksOf(end.stageId, end.stageAttemptId).put(end.taskInfo.index, Task(end.taskInfo.host, Some(end.reason)))
  }
  sc.addSparkListener(listener)

  /** The tasks of (`stage`, `number`) lost with it, by rank: they ended with their executor, or never. */
  private def lost(stage: Int, number: Int): Seq[(Int, Task)] =
    tasksOf(stage, number).asScala.toSeq.sortBy(_._1).filter { case (_, task) =>
      task.end.forall(_.isInstanceOf[ExecutorLostFailure])
    }

  private def watch(stage: Int, number: Int): Unit = {
    val checking = new Thread(
      () =>
        try check(stage, number)
        catch { case NonFatal(_) => },
      s"spindle-retry-watch stage $stage.$number"
    )
    checking.setDaemon(true)
    checking.start()
  }

  private def check(stage: Int, number: Int): Unit = {
    val submitted = System.currentTimeMillis()
    var (slots, since) = (SpindleCoreShim.maxConcurrentTasks(sc, profile), submitted)
    def current = !closed && latest.get(stage) == number
    def waited = System.currentTimeMillis() - since
    // A replacement YARN or Kubernetes was asked for and has not started yet: wait for it as the first attempt does.
    def coming = SpindleCoreShim.pendingExecutors(sc) > 0 && System.currentTimeMillis() - submitted < executorWaitMs
    while (
      current && tasksOf(stage, number).size < workers && (coming ||
        !(slots < workers && waited > ShortMs) && waited < StartMs && System.currentTimeMillis() - submitted < MaxMs)
    ) {
      Thread.sleep(PollMs)
      val now = SpindleCoreShim.maxConcurrentTasks(sc, profile)
      if (now > slots) since = System.currentTimeMillis() // an executor came: a replacement may be starting
      slots = now
    }
    if (current && tasksOf(stage, number).size < workers) {
      val gone = lost(stage, number - 1)
      // A task that never ended still holds its slot in Spark's count.
      val held = gone.count(_._2.end.isEmpty)
      val usable = math.max(slots - held, 0)
      val ranks = gone.map { case (rank, task) => s"rank $rank on host ${task.host}" }
      val what = if (ranks.isEmpty) "" else s" after losing ${ranks.mkString(", ")}"
      val heldNote =
        if (held > 0)
          s", $held of them held by the lost ${if (held == 1) "task" else "tasks"}, which " +
            "the driver cannot reach to end"
        else ""
      val e = new Elastic.WorkersLost(
        s"retrying the training stage$what: $workers workers need $workers task slots at once, and the cluster " +
          s"has $slots$heldNote: ${workers - usable} missing for ${(System.currentTimeMillis() - since) / 1000} s. " +
          "Restore the lost executors or host, or set minWorkers to go on with fewer workers from the checkpoint",
        usable
      )
      if (failure.compareAndSet(null, e)) sc.cancelStage(stage, e.getMessage)
    }
  }

  /** Why a retry was cancelled, if one was. */
  def cancelled: Option[Elastic.WorkersLost] = Option(failure.get())

  override def close(): Unit = {
    closed = true
    sc.removeSparkListener(listener)
  }
}

object RetryWatch {

  /** A task of the training stage: the host it ran on, and how it ended (None while Spark sees it running). */
  private final case class Task(host: String, end: Option[TaskEndReason])

  /** The local property that marks a training job's stages. */
  val Property = "spindle.training"

  /** A retry with fewer slots than workers fails after this long without a new executor. */
  val ShortMs = 30000L

  /** A retry whose tasks have not all started fails after this long without a new executor: their slots are held. */
  val StartMs = 45000L

  private val MaxMs = 120000L
  private val PollMs = 200L
}
