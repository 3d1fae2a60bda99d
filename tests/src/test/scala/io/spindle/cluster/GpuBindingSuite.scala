package io.spindle.cluster

import java.util.concurrent.ConcurrentLinkedQueue

import scala.jdk.CollectionConverters._

import org.apache.spark.{ExceptionFailure, SpindleTestShim}
import org.apache.spark.scheduler.{SparkListener, SparkListenerTaskEnd}
import org.apache.spark.sql.DataFrame

import io.spindle.{SpindleEstimator, SpindleModel, SpindleModelException}
import io.spindle.examples.Digits

/** Each task's session bound to the GPUs Spark gave it, on two executor JVMs of 2 cores whose 2 "GPUs" each come from a
  * discovery script that reports fake addresses 0 and 1 (Spark takes its word), one GPU per task. This machine's
  * libtensorflow sees no GPU, so every session bound to one must fail, naming the task's own address: that shows the
  * mapping from Spark's task resources to the session, task by task, two tasks of one executor holding different GPUs
  * at once; a test plugin records which GPUs Spark gave each task. Each session also names the executor's GPUs, which
  * all sessions of a JVM see (TensorFlow maps GPU ids once per process), its graph placed on the task's.
  */
class GpuBindingSuite extends FakeGpus {

  private lazy val taskGpus = tempDir("spindle-task-gpus").resolve("starts")

  override protected def sparkConf: Map[String, String] = super.sparkConf ++ Map(
    "spark.task.resource.gpu.amount" -> "1",
    "spark.task.maxFailures" -> "1",
    "spark.plugins" -> classOf[TaskGpus].getName,
    TaskGpus.FileConf -> taskGpus.toString
  )

  private lazy val digits: DataFrame = Digits.load(spark, digitsCsv.toString).cache()

  /** Runs `body`, which must fail, and returns each failed task's id and message. */
  private def taskFailures(body: => Any): Seq[(Long, String)] = {
    val failures = new ConcurrentLinkedQueue[(Long, String)]()
    val listener = new SparkListener {
      override def onTaskEnd(end: SparkListenerTaskEnd): Unit = end.reason match {
        case f: ExceptionFailure => failures.add(end.taskInfo.taskId -> f.description)
        case _                   =>
      }
    }
    spark.sparkContext.addSparkListener(listener)
    try {
      intercept[Exception](body)
      SpindleTestShim.waitForListeners(spark.sparkContext)
    } finally spark.sparkContext.removeSparkListener(listener)
    failures.asScala.toSeq
  }

  // The task's GPU and the executor's, which every session of the executor sees.
  private val named = "the task holds GPU\\(s\\) ([0-9,]+) \\(Spark's task resources; this executor's: ([0-9,]+)\\)".r

  test("fit: the four workers, two per executor at once, each bind the GPU Spark gave them") {
    val failures = taskFailures(
      new SpindleEstimator()
        .setModelPath(fixture("digits_mlp_init"))
        .setInputCols(Map("features" -> "features", "labels" -> "label"))
        .setExportPath(tempDir("spindle-export").resolve("model").toString)
        .setNumWorkers(4)
        .fit(Digits.training(digits).repartition(4))
    )
    val matches = failures.flatMap { case (task, message) => named.findFirstMatchIn(message).map(task -> _) }
    assert(matches.nonEmpty, failures.mkString("\n"))
    assert(matches.forall(_._2.group(2) == "0,1"), failures.mkString("\n"))
    val bound = matches.map { case (task, m) => task -> m.group(1) }
    // Spark kills the other workers at the first failure, often before their sessions fail: each failure is checked
    // against the GPU Spark gave that very task, and Spark's own record shows two workers of each executor at once,
    // holding GPUs 0 and 1.
    val starts = TaskGpus.read(taskGpus)
    val assigned = starts.map(s => s.task -> s.gpus).toMap
    for ((task, gpus) <- bound)
      assert(assigned.get(task).contains(gpus), s"task $task's session: GPU $gpus; Spark's: $starts")
    val stage = starts.find(_.task == bound.head._1).map(_.stage)
    val workers = starts.filter(s => stage.contains(s.stage))
    assert(workers.size == 4, starts)
    assert(workers.groupBy(_.executor).values.forall(_.map(_.gpus).sorted == Seq("0", "1")), workers)
  }

  test("transform: each scoring task binds its own GPU, and fails saying which and why") {
    val e = intercept[Exception](
      SpindleModel
        .fromSavedModel(fixture("digits_mlp_trained"))
        .setInputCols(Map("features" -> "features"))
        .transform(digits)
        .collect()
    )
    val message = Iterator.iterate[Throwable](e)(_.getCause).takeWhile(_ != null).map(_.getMessage).mkString("\n")
    assert(named.findFirstMatchIn(message).exists(_.group(2) == "0,1"), message)
    assert(message.contains("TensorFlow sees 0 GPU(s)"), message)
    assert(message.contains(classOf[SpindleModelException].getName), message)
  }
}
