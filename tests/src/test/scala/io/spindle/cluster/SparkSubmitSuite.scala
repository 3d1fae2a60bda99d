package io.spindle.cluster

import java.io.File
import java.lang.management.ManagementFactory
import java.nio.file.{Files, Path}

import scala.jdk.CollectionConverters._
import scala.sys.process._

import io.spindle.SpindleTestBase

/** The main example submitted the way users submit jobs: `spark-submit --jars <assembly>,<tensorflow jar>` (Spark's
  * SparkSubmit entry point, which bin/spark-submit launches) onto a local-cluster whose executors are separate JVMs.
  */
class SparkSubmitSuite extends SpindleTestBase {
  override protected def startsSpark: Boolean = false

  private def prop(name: String) = sys.props.getOrElse(name, fail(s"system property $name is set by build.sbt"))

  /** Runs `spark-submit` of an example on a local-cluster and returns its stdout; fails on a non-zero exit. */
  private def submit(tensorflowJar: String, conf: Seq[String], mainClass: String, args: String*): String = {
    val sparkJars = new File(sys.env("SPARK_HOME"), "jars").getPath + "/*"
    val opens = ManagementFactory.getRuntimeMXBean.getInputArguments.asScala.filter(_.startsWith("--add-opens"))
    val command = Seq(new File(sys.props("java.home"), "bin/java").getPath, "-Xmx1g") ++ opens ++ Seq(
      "-cp",
      sparkJars,
      "org.apache.spark.deploy.SparkSubmit",
      "--master",
      "local-cluster[2,1,1536]",
      "--conf",
      "spark.ui.enabled=false"
    ) ++ conf.flatMap(c => Seq("--conf", c)) ++ Seq(
      "--jars",
      Seq(prop("spindle.assembly"), tensorflowJar).mkString(","),
      "--class",
      mainClass,
      prop("spindle.examplesJar")
    ) ++ args
    val out = new StringBuilder
    val err = new StringBuilder
    val rc = Process(command).!(ProcessLogger(l => out.append(l).append('\n'), l => err.append(l).append('\n')))
    assert(rc == 0, s"spark-submit failed ($rc):\n${err.takeRight(4000)}")
    out.toString
  }

  private def accuracy(out: String) = "held-out accuracy: ([0-9.]+)".r.findFirstMatchIn(out).map(_.group(1).toDouble)

  test("spark-submit --jars runs the digits example on executor JVMs") {
    val out = submit(
      prop("spindle.tensorflowJar"),
      Nil,
      "io.spindle.examples.DigitsInference",
      digitsCsv.toString,
      fixture("digits_mlp_trained")
    )
    assert(accuracy(out).exists(_ >= 0.95), s"example output:\n$out")
  }

  test(
    "the GPU build of libtensorflow (tensorflow-core-native linux-x86_64-gpu) trains and scores on a CPU-only machine"
  ) {
    // Only the GPU jar is on the class path, and the variant setting makes the driver and the executors refuse any
    // other build: TensorFlow finds no CUDA driver here and runs every op on the CPU.
    // A cache of its own, so the check below sees this run's extraction; 1.26 GB, removed at the end.
    val cache = tempDir("spindle-gpu-cache")
    try {
      val variant = s"-Dspindle.tensorflow.variant=gpu -Dspindle.cache.dir=$cache"
      val out = submit(
        prop("spindle.tensorflowGpuJar"),
        Seq(s"spark.driver.extraJavaOptions=$variant", s"spark.executor.extraJavaOptions=$variant"),
        "io.spindle.examples.DigitsTraining",
        digitsCsv.toString,
        fixture("digits_mlp_init"),
        tempDir("spindle-gpu-export").resolve("model").toString
      )
      assert(accuracy(out).exists(_ >= 0.95), s"example output:\n$out")
      val extracted = Files.list(cache).iterator().asScala.map(_.getFileName.toString).toSeq
      assert(extracted.exists(_.startsWith("tensorflow-core-native-1.2.0-linux-x86_64-gpu")), extracted)
    } finally org.apache.commons.io.FileUtils.deleteDirectory(cache.toFile)
  }
}
