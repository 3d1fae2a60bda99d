package io.spindle.internal

import scala.collection.mutable

import org.apache.spark.TaskContext
import org.apache.spark.sql.vectorized.{ColumnVector, ColumnarBatch}

/** Scores one partition a column batch at a time: each batch's input vectors go into the ring of slots (copied a run of
  * rows at a time where they lie as the tensors want them, [[BatchWriter.fillColumns]]), and the batch handed on is the
  * input's own vectors of the `passed` columns (their ordinals) with the output vectors after them. Nothing is turned
  * into rows, so a plan that reads only some of the columns (Spark's generated code over column batches reads a column
  * only when it is used) never touches the others.
  *
  * Pipelining is within a batch (a column batch holds thousands of rows; a slot `batchSize`): every free slot is filled
  * and submitted before the oldest is awaited, so TensorFlow runs one slot while the JVM fills the next and copies the
  * outputs of the last. Batches themselves go one at a time, as the input's vectors are reused for the next one.
  *
  * Owns its native feeder and output vectors: `close()` releases both, idempotently.
  */
final class ColumnarInference(input: Iterator[ColumnarBatch], scoring: Scoring, passed: Seq[Int])
    extends Iterator[ColumnarBatch]
    with AutoCloseable {

  private val partition = Option(TaskContext.get()).map(_.partitionId()).getOrElse(0)
  private val outputs = new ColumnOutputs(scoring.plan.outputs)
  private val free = mutable.Queue.range(0, scoring.numSlots)
  private var feeder: Feeder = _
  private var writer: BatchWriter = _
  private var rowNumber = 0L

  override def hasNext: Boolean = {
    val more = input.hasNext
    if (!more) close()
    more
  }

  override def next(): ColumnarBatch = {
    val batch = input.next()
    val rows = batch.numRows()
    outputs.reset(rows)
    if (rows > 0 && feeder == null) {
      val (f, w) = scoring.open(batch.getRow(0), partition)
      feeder = f
      writer = w
    }
    val inFlight = mutable.Queue.empty[(Int, Int, Long)] // slot, rows, the first's row number
    var from = 0
    while (from < rows || inFlight.nonEmpty) {
      while (free.nonEmpty && from < rows) {
        val slot = free.dequeue()
        val base = feeder.layout.getBaseAddress + slot * feeder.layout.getSlotStride
        val n = writer.fillColumns(base, batch, from, scoring.batchSize, rowNumber)
        feeder.submit(slot, n)
        inFlight.enqueue((slot, n, rowNumber))
        from += n
        rowNumber += n
      }
      val (slot, n, first) = inFlight.dequeue()
      outputs.append(scoring.outputsOf(n, first, feeder.awaitSlot(slot), partition), n)
      feeder.releaseSlot(slot)
      free.enqueue(slot)
    }
    val columns: Array[ColumnVector] = passed.map(batch.column).toArray ++ outputs.vectors
    new ColumnarBatch(columns, rows)
  }

  override def close(): Unit = {
    if (feeder != null) feeder.close()
    outputs.close()
  }
}
