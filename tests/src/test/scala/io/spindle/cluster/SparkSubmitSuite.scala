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

  test("spark-submit --jars runs the digits example on executor JVMs") {
    val sparkJars = new File(sys.env("SPARK_HOME"), "jars").getPath + "/*"
    val opens = ManagementFactory.getRuntimeMXBean.getInputArguments.asScala.filter(_.startsWith("--add-opens"))
    val command = Seq(new File(sys.props("java.home"), "bin/java").getPath, "-Xmx1g") ++ opens ++ Seq(
      "-cp",
      sparkJars,
      "org.apache.spark.deploy.SparkSubmit",
      "--master",
      "local-cluster[2,1,1536]",
      "--conf",
      "spark.ui.enabled=false",
      "--jars",
      Seq(prop("spindle.assembly"), prop("spindle.tensorflowJar")).mkString(","),
      "--class",
      "io.spindle.examples.DigitsInference",
      prop("spindle.examplesJar"),
      digitsCsv.toString,
      fixture("digits_mlp_trained")
    )
    val out = new StringBuilder
    val err = new StringBuilder
    val rc = Process(command).!(ProcessLogger(l => out.append(l).append('\n'), l => err.append(l).append('\n')))
    assert(rc == 0, s"spark-submit failed ($rc):\n${err.takeRight(4000)}")
    val accuracy = "held-out accuracy: ([0-9.]+)".r.findFirstMatchIn(out).map(_.group(1).toDouble)
    assert(accuracy.exists(_ >= 0.95), s"example output:\n$out")
  }
}
