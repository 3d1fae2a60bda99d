package io.spindle.internal

import scala.collection.mutable.ArrayBuffer

import org.apache.spark.Partitioner
import org.apache.spark.rdd.RDD
import org.apache.spark.sql.catalyst.InternalRow
import org.slf4j.LoggerFactory

import io.spindle.WorkerChange

/** Elastic training: when workers are lost for good and at least `minWorkers` task slots remain, training goes on with
  * the survivors instead of failing. The survivors form a new ring (a new barrier stage of as many tasks), restore the
  * newest checkpoint and continue from its step. Choices (docs/choices.md):
  *   - each worker keeps its batch size, so the global batch shrinks with the workers (the learning rate is not
  *     rescaled, as Horovod's elastic mode leaves it to the user);
  *   - the rows keep their first workers' partitions: survivor `j` trains on the original partitions `j, j + k, j + 2k,
  *     ...` (k survivors), in that order, each in its own row order ([[regroup]]). So no row is lost, and in the epoch
  *     of the change a lost partition's first rows, those its worker had trained on before the checkpoint, are trained
  *     on once more.
  */
object Elastic {

  /** Thrown by [[RetryWatch]] when a retried training stage cannot start: `usable` task slots are left. */
  final class WorkersLost(message: String, val usable: Int) extends io.spindle.SpindleClusterException(message)

  /** Runs `attempt(workers)` from `numWorkers` down: after a [[WorkersLost]] that leaves at least `minWorkers` usable
    * slots (and fewer than the workers of the attempt, so the loop ends), again with that many. Returns the last
    * attempt's result and every change of the world size; `newest` names the checkpoint a new attempt resumes from.
    */
  def run[T](numWorkers: Int, minWorkers: Int, newest: () => Option[String])(
      attempt: Int => T
  ): (T, Seq[WorkerChange]) = {
    val log = LoggerFactory.getLogger(getClass)
    val changes = ArrayBuffer[WorkerChange]()
    var workers = numWorkers
    var result: Option[T] = None
    while (result.isEmpty) {
      try result = Some(attempt(workers))
      catch {
        case lost: WorkersLost if lost.usable >= minWorkers && lost.usable < workers =>
          val from = newest().getOrElse("")
          val resume = if (from.isEmpty) "from the start (no checkpoint yet)" else s"from $from"
          log.warn(s"going on with ${lost.usable} of $workers workers, $resume, after: ${lost.getMessage}")
          changes += WorkerChange(workers, lost.usable, from, lost.getMessage, System.currentTimeMillis())
          workers = lost.usable
      }
    }
    (result.get, changes.toSeq)
  }

  /** `rows` (one partition per original worker) in `to` partitions: partition `j` holds the original partitions `j, j +
    * to, j + 2 to, ...` in that order, each in its row order. A shuffle, since Spark refuses a barrier stage over a
    * narrow change of the partition count.
    */
  def regroup(rows: RDD[InternalRow], to: Int): RDD[InternalRow] =
    rows
      .mapPartitionsWithIndex((p, it) => it.zipWithIndex.map { case (r, i) => ((p, i.toLong), r.copy()) })
      .repartitionAndSortWithinPartitions(new Regrouping(to))
      .values

  /** Original partition `p` goes to survivor `p mod to`. */
  private final class Regrouping(to: Int) extends Partitioner {
    override def numPartitions: Int = to
    override def getPartition(key: Any): Int = key match {
      case (p: Int, _) => p % to
      case _           => 0
    }
    override def equals(other: Any): Boolean = other match {
      case r: Regrouping => r.numPartitions == to
      case _             => false
    }
    override def hashCode: Int = to
  }
}
