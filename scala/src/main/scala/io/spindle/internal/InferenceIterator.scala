package io.spindle.internal

import scala.collection.mutable

import org.apache.spark.TaskContext
import org.apache.spark.sql.catalyst.InternalRow
import org.apache.spark.sql.catalyst.expressions.{BoundReference, GenericInternalRow, JoinedRow, UnsafeProjection}

/** Scores one partition: rows go into a ring of memory-mapped slots, TensorFlow runs each full slot on the feeder's
  * native thread, and output rows are the input rows' `passed` columns (their ordinals) joined with the output columns.
  *
  * Pipelining: every free slot is filled and submitted before the oldest result is awaited, so TensorFlow runs slot B
  * while the JVM hands out the rows of slot A; A is refilled as soon as its last row is out. Memory is bounded by
  * `numSlots` batches (slots plus the input-row copies needed to build the output rows).
  *
  * Owns its native feeder: `close()` releases it, idempotently, and the task's completion listener calls it.
  */
final class InferenceIterator(input: Iterator[InternalRow], scoring: Scoring, passed: Seq[Int])
    extends Iterator[InternalRow]
    with AutoCloseable {

  private val plan = scoring.plan
  private val rows = input.buffered
  private var feeder: Feeder = _
  private var writer: BatchWriter = _
  private val free = mutable.Queue.range(0, scoring.numSlots)
  // Each submitted slot, with its rows and the partition row number of the first.
  private val inFlight = mutable.Queue.empty[(Int, Array[InternalRow], Long)]
  private val copiesOf = Array.fill(scoring.numSlots)(new RowArena(plan.schema.length - plan.outputs.length))
  private var rowNumber = 0L
  private val partition = Option(TaskContext.get()).map(_.partitionId()).getOrElse(0)

  // The batch being returned: its slot stays held (its outputs live in TensorFlow's memory) until its last
  // row has been handed out, while the next slot runs.
  private var slot = -1
  private var batch: Array[InternalRow] = Array.empty
  private var cursor = 0
  private var outputs: SlotOutputs = _
  private val values = new GenericInternalRow(plan.outputs.length)
  private val joined = new JoinedRow()
  // An output row: the passed columns of the input row, then the outputs (after the input's columns in `joined`).
  private val projection = UnsafeProjection.create(
    (passed ++ (plan.schema.length - plan.outputs.length until plan.schema.length)).map { i =>
      BoundReference(i, plan.schema(i).dataType, plan.schema(i).nullable)
    }
  )

  override def hasNext: Boolean = cursor < batch.length || {
    advance()
    val more = cursor < batch.length
    if (!more) close()
    more
  }

  /** The next output row. Like Spark's own operators, it reuses one row object: copy it to keep it. */
  override def next(): InternalRow = {
    if (!hasNext) throw new NoSuchElementException("no more rows")
    var o = 0
    while (o < plan.outputs.length) {
      values.update(o, outputs.value(o, cursor))
      o += 1
    }
    val row = projection(joined(batch(cursor), values))
    cursor += 1
    row
  }

  private def advance(): Unit = {
    if (slot >= 0) {
      feeder.releaseSlot(slot)
      free.enqueue(slot)
      slot = -1
      batch = Array.empty
      cursor = 0
    }
    fillFreeSlots()
    if (inFlight.nonEmpty) {
      val (s, rows, firstRow) = inFlight.dequeue()
      outputs = scoring.outputsOf(rows.length, firstRow, feeder.awaitSlot(s), partition)
      slot = s
      batch = rows
    }
  }

  private def fillFreeSlots(): Unit =
    while (free.nonEmpty && rows.hasNext) {
      if (feeder == null) {
        val (f, w) = scoring.open(rows.head, partition)
        feeder = f
        writer = w
      }
      val slot = free.dequeue()
      val batch = new mutable.ArrayBuffer[InternalRow](scoring.batchSize)
      val copies = copiesOf(slot)
      copies.reset()
      writer.start(feeder.layout.getBaseAddress + slot * feeder.layout.getSlotStride)
      val firstRow = rowNumber
      // An empty slot takes any row that fits an arena at all (fits throws for one that does not).
      while (batch.size < scoring.batchSize && rows.hasNext && writer.fits(rows.head, rowNumber)) {
        val row = rows.next()
        writer.write(row, batch.size, rowNumber)
        batch += copies.add(row)
        rowNumber += 1
      }
      feeder.submit(slot, batch.size)
      inFlight.enqueue((slot, batch.toArray, firstRow))
    }

  // The feeder's own close is idempotent: the completion listener may call this after the last row did.
  override def close(): Unit = if (feeder != null) feeder.close()
}
