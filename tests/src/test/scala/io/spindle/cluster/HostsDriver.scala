package io.spindle.cluster

import org.apache.spark.sql.{DataFrame, Row, SparkSession}

import io.spindle.{SpindleClusterException, SpindleEstimator, SpindleException, TrainingSummary}
import io.spindle.examples.Digits

/** The driver of the suites on emulated hosts ([[EmulatedHosts]]), started by `spark-submit` inside host 1's namespace.
  * Waits until `WORKERS` executors have registered and prints `EXECUTORS <hosts>`. With `EXACT` true, first trains 8
  * steps on `WORKERS` workers of batch 4 and on one worker of batch 4 x `WORKERS` over the same rows and prints `EXACT
  * steps <n> <n> loss-rel <r> weight-rel <r>` (their largest relative differences). Then trains the digits on `WORKERS`
  * workers (batch 16, `minWorkers` `MIN_WORKERS`, a checkpoint every 50 steps, `heartbeatTimeout` 10 s) for `EPOCHS`
  * epochs and prints one line: `FIT DONE workers <n> changes <from>-><to>@<millis>,... resumed <paths> firstLoss <l>
  * lastLoss <l>` (the loss means of the first and last epochs), or `FIT FAILED <exception>: <message>`.
  *
  * {{{HostsDriver DIGITS_CSV MODEL_INIT EXPORT_DIR CHECKPOINT_DIR WORKERS MIN_WORKERS EPOCHS EXACT}}}
  */
object HostsDriver {
  def main(args: Array[String]): Unit = {
    val Array(digitsCsv, modelInit, exportDir, checkpointDir, workersArg, minWorkers, epochs, exact) = args
    val workers = workersArg.toInt
    val spark = SparkSession.builder().appName("spindle-hosts").getOrCreate()
    val sc = spark.sparkContext
    val deadline = System.currentTimeMillis() + 240000
    while (sc.getExecutorMemoryStatus.size < workers + 1 && System.currentTimeMillis() < deadline) Thread.sleep(200)
    println(s"EXECUTORS ${sc.getExecutorMemoryStatus.keys.map(_.split(':')(0)).toSeq.sorted.mkString(" ")}")
    val digits = Digits.load(spark, digitsCsv)
    def estimator(exportPath: String) = new SpindleEstimator()
      .setModelPath(modelInit)
      .setInputCols(Map("features" -> "features", "labels" -> "label"))
      .setExportPath(exportPath)
    if (exact.toBoolean) println(exactness(spark, digits, workers, n => estimator(s"$exportDir-exact-$n")))
    val line =
      try {
        val summary = estimator(exportDir)
          .setNumWorkers(workers)
          .setMinWorkers(minWorkers.toInt)
          .setEpochs(epochs.toInt)
          .setBatchSize(16)
          .setHeartbeatTimeout(10)
          .setCheckpointDir(checkpointDir)
          .setCheckpointEverySteps(50)
          .fit(Digits.training(digits))
          .summary
        val changes = summary.workerChanges.map(c => s"${c.from}->${c.to}@${c.atMillis}").mkString(",")
        s"FIT DONE workers ${summary.numWorkers} changes $changes " +
          s"resumed ${summary.workerChanges.map(_.resumedFrom).mkString(",")} " +
          s"firstLoss ${summary.epochs.head.loss} lastLoss ${summary.epochs.last.loss}"
      } catch {
        case e: SpindleClusterException => s"FIT FAILED SpindleClusterException: ${e.getMessage}"
        case e: SpindleException        => s"FIT FAILED ${e.getClass.getSimpleName}: ${e.getMessage}"
        case e: Throwable               => s"FIT FAILED with no Spindle exception: $e"
      }
    println(line.replace('\n', ' '))
    System.out.flush()
    // Stopping the context would wait on an executor that cannot be reached: the suite has what it needs.
    Runtime.getRuntime.halt(0)
  }

  /** `workers` workers with batch b against one worker with batch `workers` x b, over the same 8 steps of rows: worker
    * w gets the w-th b rows of each one-worker batch.
    */
  private def exactness(
      spark: SparkSession,
      digits: DataFrame,
      workers: Int,
      estimator: Int => SpindleEstimator
  ): String = {
    val b = 4
    val rows = Digits.training(digits).orderBy("index").limit(8 * workers * b).collect().toSeq
    val chunks = rows.grouped(b).toSeq.zipWithIndex
    val shards = (0 until workers).flatMap(w => chunks.filter(_._2 % workers == w).flatMap(_._1))
    def frame(rs: Seq[Row], partitions: Int) =
      spark.createDataFrame(spark.sparkContext.parallelize(rs, partitions), digits.schema)
    def fit(n: Int, rs: Seq[Row]): TrainingSummary = estimator(n)
      .setNumWorkers(n)
      .setBatchSize(b * workers / n)
      .setShuffle(false)
      .fit(frame(rs, n))
      .summary
    val (many, one) = (fit(workers, shards), fit(1, rows))
    val lossRel = many.steps.zip(one.steps).map { case (x, y) => math.abs(x.loss - y.loss) / math.abs(y.loss) }.max
    val weightRel = (for ((name, x) <- many.variables; y = one.variables(name); i <- x.indices)
      yield math.abs(x(i) - y(i)) / math.max(math.max(math.abs(x(i)), math.abs(y(i))), 1e-3)).max
    s"EXACT steps ${many.steps.size} ${one.steps.size} loss-rel $lossRel weight-rel $weightRel"
  }
}
