package io.spindle.cluster

import java.nio.file.{Files, Path, Paths}
import java.util.concurrent.ConcurrentLinkedQueue

import scala.concurrent.{Await, Future}
import scala.concurrent.ExecutionContext.Implicits.global
import scala.concurrent.duration._
import scala.jdk.CollectionConverters._
import scala.sys.process._
import scala.util.Try

import org.scalatest.Assertions

/** A standalone cluster on `n` emulated hosts (`tests/netns/hosts.sh`: network namespaces on one bridge, removed at any
  * exit): the master and a worker on host 1, a worker on each other host (10.215.0.i), and a driver class of the tests
  * started by the distribution's own `spark-submit` inside host 1. The suite cuts a host's link with [[cut]] and reads
  * what the driver prints.
  */
final class EmulatedHosts(
    repoRoot: Path,
    val control: Path,
    n: Int,
    driver: Class[_],
    args: Seq[String],
    timeoutS: Int
) extends AutoCloseable {
  import EmulatedHosts._

  private val home = {
    val file = repoRoot.resolve(s"target/spark-dist/${org.apache.spark.SPARK_VERSION}/home")
    Assertions.assert(
      Files.isRegularFile(file),
      s"no Spark ${org.apache.spark.SPARK_VERSION} distribution: run ci/setup-spark.sh"
    )
    Paths.get(Files.readString(file).trim)
  }
  private val output = new ConcurrentLinkedQueue[String]()

  /** The namespaces' tag: host i is `spx-<tag>-<i>`. */
  private val tag = "t" + (System.nanoTime() % 100000).toString

  private val harness = {
    val conf = Seq(
      "spark.master" -> "$SPINDLE_MASTER",
      "spark.driver.host" -> "$SPARK_LOCAL_IP",
      "spark.driver.bindAddress" -> "$SPARK_LOCAL_IP",
      "spark.ui.enabled" -> "false",
      "spark.executor.cores" -> "1",
      "spark.executor.memory" -> "1g",
      "spark.executorEnv.TF_CPP_MIN_LOG_LEVEL" -> "2",
      "spark.executor.extraClassPath" -> prop("spindle.testClasses")
    ).flatMap { case (k, v) => Seq("--conf", "\"" + s"$k=$v" + "\"") }
    // The driver runs inside host 1's namespace, where only the harness's variables say where the master is.
    val submit = (Seq(s"$home/bin/spark-submit") ++ conf ++ Seq(
      "--jars",
      Seq(prop("spindle.assembly"), prop("spindle.tensorflowJar")).mkString(","),
      // The driver class is a test class, on the application class path, which must then see Spindle there too.
      "--driver-class-path",
      Seq("spindle.testClasses", "spindle.assembly", "spindle.tensorflowJar", "spindle.examplesJar")
        .map(prop)
        .mkString(":"),
      "--class",
      driver.getName.stripSuffix("$"),
      prop("spindle.examplesJar")
    ) ++ args).mkString(" ")
    val command =
      Seq("bash", repoRoot.resolve("tests/netns/hosts.sh").toString, "run", control.toString, "--") ++
        Seq("bash", "-c", submit)
    val env = Seq(
      "JAVA_HOME" -> sys.props("java.home"),
      "TF_CPP_MIN_LOG_LEVEL" -> "2",
      "HOSTS_N" -> n.toString,
      "HOSTS_ID" -> tag,
      "HOSTS_SPARK_HOME" -> home.toString,
      "HOSTS_TIMEOUT" -> timeoutS.toString
    )
    Process(command, None, env: _*).run(ProcessLogger(l => output.add(l), l => output.add(l)))
  }
  private val run = Future(harness.exitValue())

  def address(host: Int): String = s"10.215.0.$host"

  def lines: Seq[String] = output.asScala.toSeq
  def tail: String = lines.takeRight(60).mkString("\n")
  def ended: Boolean = run.isCompleted

  /** Why the harness did not run, when the machine cannot make namespaces (it said so and exited 77). */
  def skipped: Option[String] =
    if (run.isCompleted && run.value.flatMap(_.toOption).contains(77))
      Some(s"network namespaces cannot be made here: ${lines.find(_.startsWith("SKIPPED")).getOrElse("")}")
    else None

  /** Waits (at most `within`) for training's first checkpoint in `ckpt`. Returns why the harness could not run here
    * (the suite cancels), else asserts that the checkpoint came while the driver runs and that every host has an
    * executor.
    */
  def awaitTraining(ckpt: Path, within: FiniteDuration): Option[String] = {
    val deadline = System.nanoTime() + within.toNanos
    while (checkpoints(ckpt).isEmpty && !ended && System.nanoTime() < deadline) Thread.sleep(100)
    skipped.orElse {
      Assertions.assert(checkpoints(ckpt).nonEmpty && !ended, s"training wrote a checkpoint:\n$tail")
      val executors = line("EXECUTORS").getOrElse("")
      Assertions.assert((1 to n).forall(h => executors.contains(address(h))), s"an executor on each host:\n$tail")
      None
    }
  }

  /** The first line the driver printed that starts with `prefix`. */
  def line(prefix: String): Option[String] = lines.find(_.startsWith(prefix))

  /** Cuts host `host`'s link (both ends down: no FIN, no reset) and returns the epoch milliseconds of the cut. */
  def cut(host: Int): Long = {
    Files.createFile(control.resolve(s"cut-$host"))
    val done = control.resolve(s"cut-$host.done")
    while (!Files.exists(done) && !run.isCompleted) Thread.sleep(50)
    Assertions.assert(Files.exists(done), s"the harness cut host $host's link:\n$tail")
    Files.readString(done).trim.toLong
  }

  /** Sends `signal` (`KILL`, `STOP`) to the executor JVMs of host `host`; returns the epoch milliseconds it was sent.
    */
  def signalExecutor(host: Int, signal: String): Long = {
    val pids = Seq("ip", "netns", "pids", s"spx-$tag-$host").!!.split("\\s+").filter(_.nonEmpty)
    val executors = pids.filter { pid =>
      Try(Files.readString(Paths.get(s"/proc/$pid/cmdline"))).toOption
        .exists(_.contains("CoarseGrainedExecutorBackend"))
    }
    Assertions.assert(executors.nonEmpty, s"an executor JVM on host $host:\n$tail")
    Assertions.assert(Seq("kill", s"-$signal").++(executors).! == 0, s"kill -$signal ${executors.mkString(" ")}")
    System.currentTimeMillis()
  }

  /** The harness's exit code, once the driver has ended (within `wait`). */
  def exitCode(wait: FiniteDuration): Option[Int] = Try(Await.result(run, wait)).toOption

  /** However the suite ends, the harness ends too: SIGTERM, on which it removes the namespaces and all in them. */
  override def close(): Unit = harness.destroy()
}

object EmulatedHosts {
  private def prop(name: String) =
    sys.props.getOrElse(name, Assertions.fail(s"system property $name is set by build.sbt"))

  /** The checkpoints written into `dir` so far. */
  def checkpoints(dir: Path): Seq[String] = Option(dir.toFile.list()).toSeq.flatten.filter(_.matches("ckpt-\\d+"))
}
