package io.spindle.cluster

import java.nio.file.Path

import scala.concurrent.{Await, Future}
import scala.concurrent.ExecutionContext.Implicits.global
import scala.concurrent.duration._
import scala.jdk.CollectionConverters._

import org.apache.spark.ExceptionFailure
import org.apache.spark.scheduler.{SparkListener, SparkListenerTaskEnd}
import org.apache.spark.sql.DataFrame

import io.spindle.{SpindleClusterException, SpindleEstimator, TrainingSummary}
import io.spindle.examples.Digits

/** Losing an executor JVM mid-training (see [[ClusterSuite]]): Spark retries the barrier stage, the workers resume from
  * the newest checkpoint, and the job ends with the weights of an uninterrupted run over the same data order.
  */
class FaultToleranceSuite extends ClusterSuite {

  // Spark's default: a barrier stage is retried up to 4 times in a row. A stopped executor is declared lost (and
  // replaced) after spark.network.timeout without heartbeats: 20 s here instead of 120 s, to keep the suite short.
  override protected def sparkConf: Map[String, String] = super.sparkConf ++ Map(
    "spark.stage.maxConsecutiveAttempts" -> "4",
    "spark.network.timeout" -> "20s",
    "spark.network.timeoutInterval" -> "5s",
    "spark.executor.heartbeatInterval" -> "2s"
  )

  // Two partitions in file order; an executor's cached half is recomputed, in the same order, from the file.
  private lazy val digits: DataFrame = Digits.training(Digits.load(spark, digitsCsv.toString)).cache()

  private def fit(checkpoints: Path, heartbeatTimeout: Int = 30): TrainingSummary = new SpindleEstimator()
    .setModelPath(fixture("digits_mlp_init"))
    .setInputCols(Map("features" -> "features", "labels" -> "label"))
    .setExportPath(tempDir("spindle-export").resolve("model").toString)
    .setNumWorkers(2)
    .setEpochs(120)
    .setBatchSize(32)
    .setSeed(3)
    .setCheckpointDir(checkpoints.toUri.toString)
    .setCheckpointEverySteps(50)
    .setHeartbeatTimeout(heartbeatTimeout)
    .fit(digits)
    .summary

  /** The run the interrupted ones must end like. */
  private lazy val uninterrupted: TrainingSummary = fit(tempDir("spindle-ckpt"))

  /** `resumed` took up from a checkpoint and ended like the uninterrupted run: the same steps, the same weights. */
  private def assertResumed(resumed: TrainingSummary): Unit = {
    val steps = uninterrupted.steps.size
    val Seq(failed, last) = resumed.attempts
    val from = last.resumedFrom.split("ckpt-").last.toLong
    assert(from >= 50 && from % 50 == 0, s"the retried stage resumed from a checkpoint (step $from)")
    assert(failed.ended != "completed" && last.ended == "completed", resumed.attempts)
    assert(last.stepsDone == steps - from)
    assert(resumed.steps.map(_.step) == (1L to steps), "the step history covers the whole training")
    for ((name, x) <- uninterrupted.variables; y = resumed.variables(name); i <- x.indices)
      assert(math.abs(x(i) - y(i)) <= 1e-6 * math.max(math.abs(x(i)), 1e-3), s"$name[$i]: ${x(i)} vs ${y(i)}")
  }

  test("an executor JVM killed after a checkpoint: the stage retries, resumes, and ends with the same weights") {
    assert(digits.rdd.getNumPartitions == 2)
    assert(uninterrupted.steps.head.step == 1 && uninterrupted.steps.last.step == uninterrupted.steps.size)
    val pids = executorPids()
    assert(pids.size == 2, s"two executor JVMs: ${pids.mkString(", ")}")
    val dir = tempDir("spindle-ckpt")
    val interrupted = Future(fit(dir))
    awaitCheckpoint(dir, interrupted)
    val victim = ProcessHandle.of(pids.head).orElseThrow()
    assert(victim.destroyForcibly(), s"killing executor JVM ${pids.head}")
    assertResumed(Await.result(interrupted, 10.minutes))
  }

  test("an executor stopped (SIGSTOP) after a checkpoint: its peer fails on heartbeats, the stage retries, resumes") {
    val pids = executorPids()
    assert(pids.size == 2, s"two executor JVMs: ${pids.mkString(", ")}")
    val dir = tempDir("spindle-ckpt")
    val failures = new java.util.concurrent.ConcurrentLinkedQueue[String]()
    val listener = new SparkListener {
      override def onTaskEnd(end: SparkListenerTaskEnd): Unit = end.reason match {
        case f: ExceptionFailure => failures.add(f.description)
        case _                   =>
      }
    }
    spark.sparkContext.addSparkListener(listener)
    // 10 s of silence fails the ring, before Spark itself gives the executor up (spark.network.timeout, 20 s).
    val interrupted = Future(fit(dir, heartbeatTimeout = 10))
    awaitCheckpoint(dir, interrupted)
    val victim = pids.head
    assert(signal("STOP", victim), s"stopping $victim")
    val resumed =
      try Await.result(interrupted, 10.minutes)
      finally {
        signal("CONT", victim) // gone already, usually
        spark.sparkContext.removeSparkListener(listener)
      }
    assert(failures.asScala.exists(_.contains("stopped answering")), s"the peer failed on heartbeats: $failures")
    assertResumed(resumed)
  }

  test("an executor lost for good: the retried stage cannot get its 2 task slots, and fit fails saying so") {
    val sc = spark.sparkContext
    val ids = executorIds()
    assert(ids.size == 2, s"two executors: ${ids.mkString(", ")}")
    val dir = tempDir("spindle-ckpt")
    val training = Future(failureOf[SpindleClusterException](fit(dir)))
    awaitCheckpoint(dir, training)
    // Killed through the cluster manager, which lowers the application's executor target: no replacement comes.
    assert(sc.killExecutor(ids.head), s"killing executor ${ids.head}")
    val killed = System.nanoTime()
    val e = Await.result(training, 3.minutes)
    val seconds = (System.nanoTime() - killed) / 1e9
    val message = e.getMessage
    assert(message.contains("retrying the training stage") && message.contains("2 workers need 2 task slots"), message)
    assert(message.contains("has 1"), message)
    assert(seconds < 60, s"fit failed $seconds s after the executor was lost")
    // The last test of the suite: its cluster ends one executor short.
  }
}
