package io.spindle.cluster

import java.nio.file.Path

import scala.concurrent.Future
import scala.concurrent.duration._

import io.spindle.SpindleTestBase

/** A suite on a Spark with separate executor JVMs: `local-cluster[2,1,1536]`, a master and two workers in the driver
  * JVM, each worker forking an executor JVM of one core. Spindle reaches the executors only as the assembly jar in
  * `spark.jars`, the way `spark-submit --jars` ships it. `local[N]` cannot test this: its executors are driver threads.
  */
trait ClusterSuite extends SpindleTestBase {

  protected def required(name: String): String =
    sys.props.getOrElse(name, throw new IllegalStateException(s"system property $name is set by build.sbt"))

  override protected def master: String = "local-cluster[2,1,1536]"

  override protected def sparkConf: Map[String, String] = Map(
    "spark.jars" -> Seq(required("spindle.assembly"), required("spindle.tensorflowJar")).mkString(","),
    // The suites' own closures (not Spindle's classes: those come from the assembly only).
    "spark.executor.extraClassPath" -> required("spindle.testClasses"),
    "spark.executorEnv.TF_CPP_MIN_LOG_LEVEL" -> "2"
  )

  /** Waits for both executor JVMs: on a loaded machine they take longer to start than a test takes to submit a job. */
  override protected def beforeAll(): Unit = {
    super.beforeAll()
    val deadline = System.nanoTime() + 120e9.toLong
    def executors = spark.sparkContext.getExecutorMemoryStatus.size - 1 // the driver's block manager is listed too
    while (executors < 2 && System.nanoTime() < deadline) Thread.sleep(100)
    assert(executors == 2, s"the local cluster started $executors of its 2 executors within 120 s")
  }

  /** The executor JVMs' pids: a job of 20 tasks reaches every executor. */
  protected def executorPids(): Set[Long] =
    spark.sparkContext.parallelize(1 to 20, 20).mapPartitions(new ExecutorPid).collect().toSet

  /** The executors' ids, as `sc.killExecutor` takes them. */
  protected def executorIds(): Set[String] =
    spark.sparkContext.parallelize(1 to 20, 20).mapPartitions(new ExecutorId).collect().toSet

  /** Sends signal `name` (`STOP`, `CONT`) to process `pid`; false when it failed (the process is gone). */
  protected def signal(name: String, pid: Long): Boolean =
    new ProcessBuilder("kill", s"-$name", pid.toString).inheritIO().start().waitFor() == 0

  /** The complete checkpoints (`ckpt-N`) in `dir`. */
  protected def checkpointsIn(dir: Path): Seq[String] =
    Option(dir.toFile.list()).toSeq.flatten.filter(_.matches("ckpt-\\d+"))

  /** Waits (at most 120 s) until `training` has written a complete checkpoint into `dir`; fails if it ended first. */
  protected def awaitCheckpoint(dir: Path, training: Future[_]): Unit = {
    val deadline = System.nanoTime() + 120.seconds.toNanos
    while (checkpointsIn(dir).isEmpty && !training.isCompleted && System.nanoTime() < deadline) Thread.sleep(20)
    assert(checkpointsIn(dir).nonEmpty && !training.isCompleted, "a checkpoint came before training ended")
  }
}

/** The executor's pid, from a task (a top-level class: see [[CountCorrectRows]]). */
class ExecutorPid extends (Iterator[Int] => Iterator[Long]) with Serializable {
  override def apply(rows: Iterator[Int]): Iterator[Long] = Iterator(ProcessHandle.current().pid())
}

/** The executor's id, from a task. */
class ExecutorId extends (Iterator[Int] => Iterator[String]) with Serializable {
  override def apply(rows: Iterator[Int]): Iterator[String] = Iterator(org.apache.spark.SparkEnv.get.executorId)
}
