package io.spindle.internal

import java.lang.management.ManagementFactory

import org.apache.spark.{SparkConf, SparkEnv}

import io.spindle.SpindleInputException

/** What one task's batches need, checked against what the executor can give before anything is allocated, so that a
  * large `batchSize` fails with a clear error instead of an `OutOfMemoryError` that stops the SparkContext, or mapped
  * slots that grow until the kernel kills the JVM.
  *
  * Native memory (the slots or windows: `numSlots` x `batchSize` x bytes per row) is checked against
  * `spark.executor.memoryOverhead` when set, else half of the machine's physical memory, shared by the tasks an
  * executor runs at once. The JVM's row copies (inference keeps each batch's input rows until its output rows are
  * built) are checked against half of the heap (`-Xmx`), shared the same way.
  */
final case class MemoryBudget(
    batchSize: Int,
    numSlots: Int,
    rowBytes: Long,
    heapRowBytes: Long,
    nativeBudget: Long,
    heapBudget: Long
) {

  /** Throws a [[SpindleInputException]] naming the sizes when the batches do not fit. */
  def check(): Unit = {
    val native = BigInt(numSlots) * batchSize * rowBytes
    val heap = BigInt(numSlots) * batchSize * heapRowBytes
    def fail(what: String, need: BigInt, perRow: Long, budget: Long, where: String) =
      throw new SpindleInputException(
        s"batchSize=$batchSize x numSlots=$numSlots x $perRow bytes per row needs ${MemoryBudget.text(need)} of " +
          s"$what per task, over its budget of ${MemoryBudget.text(BigInt(budget))} ($where); lower batchSize or " +
          s"numSlots, or give the executors more memory"
      )
    if (native > nativeBudget)
      fail("native memory (batch slots)", native, rowBytes, nativeBudget, MemoryBudget.nativeSource)
    if (heap > heapBudget) fail("JVM heap (row copies)", heap, heapRowBytes, heapBudget, "half of -Xmx per task")
  }
}

object MemoryBudget {

  /** A training worker: its windows are native; rows go straight into them, with no copy kept on the heap. */
  def forTraining(inputs: Seq[InputPlan], arenaBytes: Seq[Long], batchSize: Int, numSlots: Int): MemoryBudget =
    of(inputs, arenaBytes, batchSize, numSlots, heapRowBytes = 0L)

  /** An inference task: its slots are native, and each slot's input rows are kept on the heap (about `rowSize` bytes
    * each, the size of the partition's first row) until their output rows are built.
    */
  def forInference(
      inputs: Seq[InputPlan],
      arenaBytes: Seq[Long],
      batchSize: Int,
      numSlots: Int,
      rowSize: Long
  ): MemoryBudget = of(inputs, arenaBytes, batchSize, numSlots, rowSize)

  private def of(inputs: Seq[InputPlan], arenaBytes: Seq[Long], batchSize: Int, numSlots: Int, heapRowBytes: Long) = {
    val rowBytes = BatchWriter.bytesPerRow(inputs, arenaBytes, batchSize)
    val tasks = concurrentTasks(conf)
    MemoryBudget(
      batchSize,
      numSlots,
      rowBytes,
      heapRowBytes,
      nativeMemory / tasks,
      Runtime.getRuntime.maxMemory / 2 / tasks
    )
  }

  private def conf: SparkConf = Option(SparkEnv.get).map(_.conf).getOrElse(new SparkConf(false))

  private def nativeSource: String =
    if (conf.contains("spark.executor.memoryOverhead")) "spark.executor.memoryOverhead per task"
    else "half of physical memory per task; spark.executor.memoryOverhead sets it"

  private def nativeMemory: Long =
    if (conf.contains("spark.executor.memoryOverhead")) conf.getSizeAsMb("spark.executor.memoryOverhead") << 20
    else
      ManagementFactory.getOperatingSystemMXBean match {
        case os: com.sun.management.OperatingSystemMXBean => os.getTotalMemorySize / 2
        case _                                            => Runtime.getRuntime.maxMemory
      }

  /** Tasks an executor runs at once: its cores (`spark.executor.cores`, N of `local[N]`, else the machine's) over
    * `spark.task.cpus`.
    */
  def concurrentTasks(conf: SparkConf): Int = {
    val taskCpus = conf.getInt("spark.task.cpus", 1)
    val localCores = "local\\[(\\d+).*".r.findFirstMatchIn(conf.get("spark.master", "")).map(_.group(1).toInt)
    val executorCores = conf
      .getOption("spark.executor.cores")
      .map(_.toInt)
      .orElse(localCores)
      .getOrElse(Runtime.getRuntime.availableProcessors)
    math.max(1, executorCores / taskCpus)
  }

  private def text(bytes: BigInt): String =
    if (bytes >= (BigInt(1) << 30)) f"${(bytes.toDouble / (1L << 30))}%.1f GiB"
    else f"${(bytes.toDouble / (1L << 20))}%.1f MiB"
}
