package io.spindle.run

import java.util.UUID

import scala.jdk.CollectionConverters._
import scala.util.control.NonFatal

import org.apache.spark.{HashPartitioner, Partitioner, SparkException}
import org.apache.spark.rdd.RDD
import org.apache.spark.sql.{DataFrame, SparkSession, SpindleSqlShim}
import org.apache.spark.sql.catalyst.InternalRow
import org.slf4j.LoggerFactory

import io.spindle.{NativeLoader, SpindleInputException}
import io.spindle.internal.{Channel, InputPlan, Plan, Slots}
import io.spindle.proto.{SignatureInfo, TensorSpec}

/** The JVM side of Python's `spindle.run`: one barrier stage of a process per TF_CONFIG task (chief, workers, parameter
  * servers, evaluator), the data's partitions fed to the readers through the runtime's script feed. Returns what rank
  * 0's function returned (pickled, opaque here), or throws the first failure: a process's traceback
  * ([[io.spindle.SpindleWorkerException]]), a rank that never started, or Spark's own error.
  */
object SpindleRun {
  private val log = LoggerFactory.getLogger(getClass)

  def run(spark: SparkSession, data: DataFrame, specJson: String): Array[Byte] = {
    val spec = RunSpec.parse(specJson)
    val sc = spark.sparkContext
    val tasks = spec.roles.size
    Slots.require(sc, tasks, Slots.FirstAttemptGraceMs, Slots.DefaultWaitSeconds * 1000L)
    val (rdd, inputs, steps) = Option(data) match {
      case Some(df) if spec.inputs.nonEmpty => prepare(df, spec)
      case _ => (sc.parallelize(Seq.empty[Int], tasks).mapPartitions(_ => Iterator[InternalRow]()), Nil, -1L)
    }
    val group = s"spindle-run-${UUID.randomUUID()}"
    val coordinator = new Coordinator(sc, spec, group, Channel.sparkEncrypts(sc.getConf))
    val (previous, description) =
      (sc.getLocalProperty("spark.jobGroup.id"), sc.getLocalProperty("spark.job.description"))
    sc.setJobGroup(group, s"spindle.run: ${spec.roles.map { case (r, i) => s"$r $i" }.mkString(", ")}")
    try {
      log.info(
        s"spindle.run: $tasks processes (${spec.roles.map(_._1).distinct.mkString(", ")}), driver at ${coordinator.address}"
      )
      val results =
        try
          rdd
            .barrier()
            .mapPartitions(
              new RunTask(RunJob(spec, inputs, steps, coordinator.address, coordinator.secret, coordinator.encrypt))
            )
            .collect()
        catch {
          case e: SparkException => throw coordinator.failure.getOrElse(e)
        }
      coordinator.failure.foreach(e => throw e)
      results.headOption.getOrElse(Array.emptyByteArray)
    } finally {
      coordinator.close()
      if (previous == null) sc.clearJobGroup()
      else sc.setJobGroup(previous, sc.getLocalProperty("spark.job.description"))
    }
  }

  /** The rows each task reads, the plan of their columns, and the batches every reader feeds per epoch. */
  private def prepare(df: DataFrame, spec: RunSpec): (RDD[InternalRow], Seq[InputPlan], Long) = {
    val columns = spec.inputs.map(_.column)
    val missing = columns.filterNot(df.columns.contains)
    if (missing.nonEmpty)
      throw new SpindleInputException(
        s"spindle.run: no column ${missing.mkString("'", "', '", "'")} in the data; columns: ${df.columns.mkString(", ")}"
      )
    val selected = df.select(columns.map(df.col): _*)
    val signature = SignatureInfo.newBuilder().setName("spindle.data")
    spec.inputs.foreach { in =>
      signature.addInputs(
        TensorSpec
          .newBuilder()
          .setName(in.column)
          .setDtype(in.dtype.proto)
          .addAllShape((-1L +: in.shape).map(Long.box).asJava)
      )
    }
    val inputs = Plan.inputsOf(selected.schema, signature.build(), Map.empty)
    val readers = spec.readers
    val tasks = spec.roles.size
    val rdd =
      if (readers.size == tasks) SpindleSqlShim.internalRows(selected, tasks)
      else {
        // Only some tasks read (a parameter-server cluster's chief): rows go round-robin to them alone; the barrier stage
        // takes every partition of one shuffle, the others empty.
        val copied = SpindleSqlShim.internalRows(selected).mapPartitionsWithIndex { (p, it) =>
          var k = p
          it.map { r => k += 1; (readers(k % readers.size), r.copy()) }
        }
        copied.partitionBy(new RankPartitioner(tasks)).values
      }
    val steps =
      if (readers.size < 2) -1L
      else {
        val counts = rdd.mapPartitionsWithIndex((p, it) => Iterator(p -> it.size.toLong)).collect().toMap
        val batches = readers.map(r => r -> (counts(r) + spec.batchSize - 1) / spec.batchSize)
        for ((r, 0L) <- batches.find(_._2 == 0L))
          throw new SpindleInputException(s"spindle.run: reader rank $r gets no rows; give the data more rows")
        val least = batches.map(_._2).min
        log.info(s"spindle.run: rows per reader ${readers.map(counts).mkString(", ")}; $least batches each per epoch")
        least
      }
    (rdd, inputs, steps)
  }
}

/** Sends key `rank` to partition `rank`. */
private final class RankPartitioner(override val numPartitions: Int) extends Partitioner {
  override def getPartition(key: Any): Int = key.asInstanceOf[Int]
}
