package io.spindle.cluster

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
}
