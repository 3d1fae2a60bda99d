package io.spindle.cluster

import java.nio.file.{Files, Path, Paths}

import scala.concurrent.{Await, Future}
import scala.concurrent.ExecutionContext.Implicits.global
import scala.concurrent.duration._
import scala.jdk.CollectionConverters._
import scala.sys.process._
import scala.util.Try

import io.spindle.SpindleTestBase

/** A host lost mid-training, on a standalone cluster of two emulated hosts: network namespaces joined by a veth pair
  * (`tests/netns/two-hosts.sh`, which makes them and removes them at any exit). Host A runs the master, the driver
  * ([[LostHostDriver]], through the distribution's `spark-submit`) and worker A; host B runs worker B. Once training
  * has written a checkpoint, the link is cut: no FIN, no reset, the peer just goes silent. `fit` must end within 120 s
  * of the cut with a `SpindleClusterException` that names the lost rank, its host and the missing task slots, rather
  * than leave the retried stage waiting for slots that no longer exist.
  *
  * Where the machine does not let a test make network namespaces (not root), the suite says why and is canceled, which
  * the CI summary counts as skipped.
  */
class LostHostSuite extends SpindleTestBase {
  override protected def startsSpark: Boolean = false

  private def prop(name: String) = sys.props.getOrElse(name, fail(s"system property $name is set by build.sbt"))

  /** The pyspark distribution of this build's Spark (ci/setup-spark.sh), whose bin/ starts the master and workers. */
  private lazy val home: Path = {
    val file = repoRoot.resolve(s"target/spark-dist/${org.apache.spark.SPARK_VERSION}/home")
    assert(Files.isRegularFile(file), s"no Spark ${org.apache.spark.SPARK_VERSION} distribution: run ci/setup-spark.sh")
    Paths.get(Files.readString(file).trim)
  }

  private def checkpoints(dir: Path): Seq[String] =
    Option(dir.toFile.list()).toSeq.flatten.filter(_.matches("ckpt-\\d+"))

  test("a host cut off mid-fit: fit fails within 120 s naming the lost rank, its host and the missing slots") {
    val control = tempDir("spindle-two-hosts")
    val ckpt = tempDir("spindle-ckpt")
    val conf = Seq(
      "spark.master" -> "$SPINDLE_MASTER",
      "spark.driver.host" -> "$SPINDLE_HOST_A",
      "spark.driver.bindAddress" -> "$SPINDLE_HOST_A",
      "spark.ui.enabled" -> "false",
      "spark.executor.cores" -> "1",
      "spark.executor.memory" -> "1g",
      "spark.executorEnv.TF_CPP_MIN_LOG_LEVEL" -> "2",
      "spark.executor.extraClassPath" -> prop("spindle.testClasses")
    ).flatMap { case (k, v) => Seq("--conf", '"' + s"$k=$v" + '"') }
    // The driver runs inside host A's namespace, where only the harness's variables say where the master is.
    val submit = (Seq(s"$home/bin/spark-submit") ++ conf ++ Seq(
      "--jars",
      Seq(prop("spindle.assembly"), prop("spindle.tensorflowJar")).mkString(","),
      // The driver class is a test class, on the application class path, which must then see Spindle there too.
      "--driver-class-path",
      Seq("spindle.testClasses", "spindle.assembly", "spindle.tensorflowJar", "spindle.examplesJar")
        .map(prop)
        .mkString(":"),
      "--class",
      LostHostDriver.getClass.getName.stripSuffix("$"),
      prop("spindle.examplesJar"),
      digitsCsv.toString,
      fixture("digits_mlp_init"),
      tempDir("spindle-export").resolve("model").toString,
      ckpt.toUri.toString
    )).mkString(" ")
    val output = new java.util.concurrent.ConcurrentLinkedQueue[String]()
    val command = Seq(
      "bash",
      repoRoot.resolve("tests/netns/two-hosts.sh").toString,
      "run",
      home.toString,
      control.toString,
      "--",
      "bash",
      "-c",
      submit
    )
    val env = Seq("JAVA_HOME" -> sys.props("java.home"), "TF_CPP_MIN_LOG_LEVEL" -> "2", "TWO_HOSTS_TIMEOUT" -> "420")
    val harness = Process(command, None, env: _*).run(ProcessLogger(l => output.add(l), l => output.add(l)))
    val run = Future(harness.exitValue())
    // However the test ends, the harness ends too: SIGTERM, on which it removes the namespaces and all in them.
    try {
      def printed = output.asScala.mkString("\n")
      def tail = output.asScala.toSeq.takeRight(60).mkString("\n")

      // Training on both hosts: wait for its first checkpoint, or for the harness to say it cannot run here.
      val deadline = System.nanoTime() + 300.seconds.toNanos
      while (checkpoints(ckpt).isEmpty && !run.isCompleted && System.nanoTime() < deadline) Thread.sleep(100)
      if (run.isCompleted && run.value.flatMap(_.toOption).contains(77))
        cancel(s"network namespaces cannot be made here: ${output.asScala.find(_.startsWith("SKIPPED")).getOrElse("")}")
      assert(checkpoints(ckpt).nonEmpty && !run.isCompleted, s"training wrote a checkpoint before it ended:\n$tail")
      val executors = output.asScala.find(_.startsWith("EXECUTORS")).getOrElse("")
      assert(
        executors.contains("10.213.78.1") && executors.contains("10.213.78.2"),
        s"an executor on each host:\n$tail"
      )

      Files.createFile(control.resolve("cut"))
      val cutDone = control.resolve("cut.done")
      while (!Files.exists(cutDone) && !run.isCompleted) Thread.sleep(50)
      assert(Files.exists(cutDone), s"the harness cut the link:\n$tail")
      // Twice the bound, to tell a slow end from a hang in the report.
      val rc = Try(Await.result(run, 240.seconds)).getOrElse(fail(s"fit had not ended 240 s after the cut:\n$tail"))
      val seconds = (System.currentTimeMillis() - Files.readString(cutDone).trim.toLong) / 1000.0
      info(f"fit ended $seconds%.1f s after the cut")
      val result =
        output.asScala.find(_.startsWith("FIT ")).getOrElse(fail(s"the driver printed no result ($rc):\n$tail"))
      info(result)
      assert(result.startsWith("FIT FAILED SpindleClusterException:"), result)
      assert(result.contains("rank ") && result.contains("on host 10.213.78.2"), result)
      assert(result.contains("missing"), result)
      // The driver halts as soon as fit has thrown: the harness ends when fit does.
      assert(seconds < 120, s"fit failed $seconds s after the cut:\n$printed")
    } finally harness.destroy()
  }
}
