package io.spindle.cluster

import java.nio.file.Paths

import org.apache.spark.sql.DataFrame

import io.spindle.{SpindleEstimator, SpindleModel, SpindlePlugin}
import io.spindle.examples.{Digits, DigitsTraining}
import io.spindle.internal.ModelCache

/** SpindlePlugin on two executor JVMs (see [[ClusterSuite]]): the driver and each executor warm the model up when they
  * start, and the first fit takes those sessions instead of loading its own. A missing model in the list is skipped
  * with a warning, not fatal.
  */
class PluginSuite extends ClusterSuite {

  private def model = Paths.get(fixture("digits_mlp_init")).toString

  override protected def sparkConf: Map[String, String] = super.sparkConf ++ Map(
    "spark.plugins" -> classOf[SpindlePlugin].getName,
    SpindlePlugin.WarmModels -> s"$model,/nonexistent/spindle-model"
  )

  // The driver is this JVM, whose session cache earlier suites may have filled with the same model: a cached session
  // is used before any spare, so the cache starts empty, before the SparkContext (and the driver's warm-up) starts.
  override protected def beforeAll(): Unit = {
    ModelCache.clear()
    super.beforeAll()
  }

  private lazy val digits: DataFrame = Digits.load(spark, digitsCsv.toString).cache()

  /** Each executor's id and its loaded, untaken spare sessions, as "path intra-op inter-op". */
  private def executorSpares(): Map[String, Set[String]] =
    spark.sparkContext.parallelize(1 to 20, 20).mapPartitions(new ExecutorSpares).collect().toMap

  private def driverSpares =
    ModelCache.spareKeys.map(k => s"${k.localPath} ${k.intraOpThreads} ${k.interOpThreads}").toSet

  // Training's session (both pools on the task's core) and inference's (inter-op over the executor's concurrent
  // tasks: a local-cluster executor's conf names no cores, so the machine's cores count, 2 or more here).
  private val training = s"$model 1 1"
  private val inference = s"$model 1 ${Runtime.getRuntime.availableProcessors}"

  test("the driver and every executor warm the model up; the first fit and transform take those sessions") {
    val deadline = System.nanoTime() + 120e9.toLong
    var spares = executorSpares()
    while ((spares.size < 2 || spares.values.exists(_.size < 2)) && System.nanoTime() < deadline) {
      Thread.sleep(200)
      spares = executorSpares()
    }
    assert(spares.size == 2 && spares.values.forall(_ == Set(training, inference)), s"executors' spares: $spares")
    while (driverSpares.size < 2 && System.nanoTime() < deadline) Thread.sleep(100)
    assert(driverSpares == Set(training, inference))

    val fitted = new SpindleEstimator()
      .setModelPath(model)
      .setInputCols(Map("features" -> "features", "labels" -> "label"))
      .setExportPath(tempDir("spindle-export").resolve("model").toString)
      .setNumWorkers(2)
      .setEpochs(DigitsTraining.Epochs)
      .setBatchSize(DigitsTraining.BatchSize)
      .setSeed(1)
      .fit(Digits.training(digits))
    val losses = fitted.summary.lossHistory
    assert(losses.takeRight(20).sum < losses.take(20).sum / 5, "loss falls")
    assert(executorSpares().values.forall(_ == Set(inference)), "each worker took its executor's training spare")
    assert(driverSpares == Set(inference), "the driver read the signatures from its spare")

    // The untrained model scores every row on both executors through their inference spares.
    val scored = new SpindleModel()
      .setModelPath(model)
      .setInputCols(Map("features" -> "features"))
      .transform(digits.repartition(4))
    assert(scored.count() == digits.count())
    assert(executorSpares().values.forall(_.isEmpty), s"the scoring tasks took the inference spares")
  }
}

/** The executor's id and its spare sessions' model paths. A top-level class (see [[CountCorrectRows]]), loaded from the
  * executors' class path, where Spindle's classes are not (they come with the assembly, in the task's class loader): so
  * it reaches ModelCache through that loader.
  */
class ExecutorSpares extends (Iterator[Int] => Iterator[(String, Set[String])]) with Serializable {
  override def apply(rows: Iterator[Int]): Iterator[(String, Set[String])] = {
    val cache = Thread.currentThread.getContextClassLoader.loadClass("io.spindle.internal.ModelCache$")
    val module = cache.getField("MODULE$").get(null)
    val keys = cache.getMethod("spareKeys").invoke(module).asInstanceOf[Seq[AnyRef]]
    def field(k: AnyRef, name: String) = k.getClass.getMethod(name).invoke(k)
    val shown = keys.map(k => s"${field(k, "localPath")} ${field(k, "intraOpThreads")} ${field(k, "interOpThreads")}")
    Iterator(org.apache.spark.SparkEnv.get.executorId -> shown.toSet)
  }
}
