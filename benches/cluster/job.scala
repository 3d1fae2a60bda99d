// benches/cluster.sh feeds this to bin/spark-shell on the standalone cluster. BENCH_PREPARE=1: writes the data
// (rows x 784 float32 and a label, 2 Parquet files) and exits; otherwise waits for both executors, then times
// BENCH_CASE (below).
import io.spindle.{SpindleEstimator, SpindleModel}
import org.apache.spark.sql.functions.{array, rand}

val rows = sys.env("BENCH_ROWS").toInt
val data = sys.env("BENCH_DATA")
if (sys.env.contains("BENCH_PREPARE")) {
  spark
    .range(rows)
    .select(array((0 until 784).map(i => rand(i).cast("float")): _*).as("features"), (rand(999) * 10).cast("long").as("label"))
    .repartition(2)
    .write
    .parquet(data)
  System.exit(0)
}
// "With executors up": both registered (the driver's block manager is listed too), and done starting: a registered
// executor still fetches the --jars (192 MB of libtensorflow) before it runs a task, which a first small job waits for.
val deadline = System.currentTimeMillis + 120000
while (sc.getExecutorMemoryStatus.size < 3 && System.currentTimeMillis < deadline) Thread.sleep(50)
val readyStarted = System.currentTimeMillis
sc.parallelize(0 until 4, 4).count()
println(f"BENCH cluster executors-ready ${(System.currentTimeMillis - readyStarted) / 1e3}%.3f")
val df = spark.read.parquet(data)
// BENCH_CASE names what is timed, twice: on the fresh executors, then again on the same, now warm, ones.
//   floor: Spark's own floor under fit, no Spindle: the same barrier stage shape over the same rows (every row read
//          as fit's feeder reads them, a count per partition back through a shuffle);
//   fit:   SpindleEstimator.fit, 2 workers, 1 epoch, batch 128 per worker;
//   scan:  Spark's own floor under transform: every row read, written nowhere (the noop sink);
//   score: SpindleModel.transform of every row (mnist_mlp's probabilities) into the noop sink.
def timed(run: String)(body: => String): Unit = {
  val called = System.currentTimeMillis
  val extra = body
  println(f"BENCH cluster ${sys.env("BENCH_CASE")} $run ${(System.currentTimeMillis - called) / 1e3}%.3f $extra")
}
for (run <- Seq("fresh", "warm")) sys.env("BENCH_CASE") match {
  case "floor" =>
    timed(run) {
      val counts = df.queryExecution.toRdd
        .barrier()
        .mapPartitions { it => var n = 0L; while (it.hasNext) { it.next(); n += 1 }; Iterator(n) }
        .repartition(1)
        .collect()
      s"rows ${counts.sum}"
    }
  case "scan" => timed(run) { df.write.format("noop").mode("overwrite").save(); "" }
  case "score" =>
    timed(run) {
      SpindleModel
        .fromSavedModel(sys.env("BENCH_MODEL"))
        .setOutputCols(Map("probabilities" -> "probabilities"))
        .transform(df)
        .write
        .format("noop")
        .mode("overwrite")
        .save()
      ""
    }
  case "fit" =>
    val called = System.currentTimeMillis
    timed(run) {
      val s = new SpindleEstimator()
        .setModelPath(sys.env("BENCH_MODEL"))
        .setInputCols(Map("features" -> "features", "labels" -> "label"))
        .setNumWorkers(2)
        .setEpochs(1)
        .setBatchSize(128)
        .fit(df)
        .summary
      val stepSum = s.steps.map(x => x.examples / x.examplesPerSecond).sum
      f"step-sum $stepSum%.3f first-step ${(s.firstStepDoneMillis - called) / 1e3}%.3f steps ${s.steps.size}"
    }
}
System.exit(0)
