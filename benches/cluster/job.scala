// benches/cluster.sh feeds this to bin/spark-shell on the standalone cluster. BENCH_PREPARE=1: writes the data
// (rows x 784 float32 and a label, 2 Parquet files) and exits; otherwise waits for both executors, then times one fit.
import io.spindle.SpindleEstimator
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
// One block: the REPL would end an expression at each line break (and compile each line apart).
{
  val called = System.currentTimeMillis
  val fitted = new SpindleEstimator()
    .setModelPath(sys.env("BENCH_MODEL"))
    .setInputCols(Map("features" -> "features", "labels" -> "label"))
    .setNumWorkers(2)
    .setEpochs(1)
    .setBatchSize(128)
    .fit(df)
  val wall = (System.currentTimeMillis - called) / 1e3
  val s = fitted.summary
  val stepSum = s.steps.map(x => x.examples / x.examplesPerSecond).sum
  println(f"BENCH cluster partitions ${df.rdd.getNumPartitions} rows ${s.rowsPerWorker.sum} steps ${s.steps.size}")
  println(f"BENCH cluster fit-wall $wall%.3f step-sum $stepSum%.3f first-step ${(s.firstStepDoneMillis - called) / 1e3}%.3f")
}
System.exit(0)
