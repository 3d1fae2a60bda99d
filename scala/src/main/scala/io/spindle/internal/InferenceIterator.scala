package io.spindle.internal

import scala.collection.mutable
import scala.jdk.CollectionConverters._

import org.apache.spark.TaskContext

import org.apache.spark.sql.catalyst.InternalRow
import org.apache.spark.sql.catalyst.expressions.{
  BoundReference,
  GenericInternalRow,
  JoinedRow,
  UnsafeProjection,
  UnsafeRow
}

import io.spindle.{SpindleInputException, SpindleModelException}
import io.spindle.proto.{BatchOutputs, FeederConfig, FeederLayout}

/** Scores one partition: rows go into a ring of memory-mapped slots, TensorFlow runs each full slot on the feeder's
  * native thread, and output rows are the input rows joined with the output columns.
  *
  * Pipelining: every free slot is filled and submitted before the oldest result is awaited, so TensorFlow runs slot B
  * while the JVM hands out the rows of slot A; A is refilled as soon as its last row is out. Memory is bounded by
  * `numSlots` batches (slots plus the input-row copies needed to build the output rows).
  *
  * Owns its native feeder: `close()` releases it, idempotently, and the task's completion listener calls it.
  */
final class InferenceIterator(
    input: Iterator[InternalRow],
    model: LoadedModel,
    plan: Plan,
    signature: String,
    batchSize: Int,
    numSlots: Int,
    variableLengthBytes: Long,
    padValue: Double
) extends Iterator[InternalRow]
    with AutoCloseable {

  private val rows = input.buffered
  private var feeder: Feeder = _
  private var layout: FeederLayout = _
  private var writer: BatchWriter = _
  private val free = mutable.Queue.range(0, numSlots)
  // Each submitted slot, with its rows and the partition row number of the first.
  private val inFlight = mutable.Queue.empty[(Int, Array[InternalRow], Long)]
  private val copiesOf = Array.fill(numSlots)(new RowArena(plan.schema.length - plan.outputs.length))
  private var rowNumber = 0L
  private val partition = Option(TaskContext.get()).map(_.partitionId()).getOrElse(0)

  // The batch being returned: its slot stays held (its outputs live in TensorFlow's memory) until its last
  // row has been handed out, while the next slot runs.
  private var slot = -1
  private var batch: Array[InternalRow] = Array.empty
  private var cursor = 0
  private var addresses: Array[Long] = Array.empty
  private var perRow: Array[Int] = Array.empty
  // Each output's dimensions after the batch, for nested outputs.
  private var dims: Array[Array[Int]] = Array.empty
  private val values = new GenericInternalRow(plan.outputs.length)
  private val joined = new JoinedRow()
  private val projection = UnsafeProjection.create(plan.schema.fields.toSeq.zipWithIndex.map { case (f, i) =>
    BoundReference(i, f.dataType, f.nullable)
  })

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
    while (o < addresses.length) {
      val out = plan.outputs(o)
      values.update(
        o,
        if (out.nested) OutputReader.readNested(out, addresses(o), dims(o), perRow(o), cursor)
        else OutputReader.read(out, addresses(o), perRow(o), cursor)
      )
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
      val outputs = feeder.awaitSlot(s)
      slot = s
      batch = rows
      perRow = checkOutputs(rows.length, firstRow, outputs)
      dims = outputs.getOutputsList.asScala.map(_.getShapeList.asScala.tail.map(_.intValue).toArray).toArray
      addresses = outputs.getOutputsList.asScala.map(_.getAddress).toArray
    }
  }

  private def fillFreeSlots(): Unit =
    while (free.nonEmpty && rows.hasNext) {
      if (feeder == null) open(rows.head)
      val slot = free.dequeue()
      val base = layout.getBaseAddress + slot * layout.getSlotStride
      val batch = new mutable.ArrayBuffer[InternalRow](batchSize)
      val copies = copiesOf(slot)
      copies.reset()
      writer.start(base)
      val firstRow = rowNumber
      // An empty slot takes any row that fits an arena at all (fits throws for one that does not).
      while (batch.size < batchSize && rows.hasNext && writer.fits(rows.head, rowNumber)) {
        val row = rows.next()
        writer.write(row, batch.size, rowNumber)
        batch += copies.add(row)
        rowNumber += 1
      }
      feeder.submit(slot, batch.size)
      inFlight.enqueue((slot, batch.toArray, firstRow))
    }

  // Arenas for strings and ragged rows are sized from the partition's first row, unless variableLengthBytes is set.
  private def open(first: InternalRow): Unit = {
    val arenaBytes = BatchWriter.arenaBytes(plan.inputs, Some(first), batchSize, variableLengthBytes)
    val rowSize = first match {
      case u: UnsafeRow => u.getSizeInBytes.toLong
      case _            => 8L * first.numFields
    }
    MemoryBudget.forInference(plan.inputs, arenaBytes, batchSize, numSlots, rowSize).check()
    val task = Option(TaskContext.get())
    val config = FeederConfig
      .newBuilder()
      .setSignature(signature)
      .setBatchSize(batchSize)
      .setNumSlots(numSlots)
      .setLabel(task.map(t => s"stage ${t.stageId()} partition $partition task ${t.taskAttemptId()}").getOrElse(""))
      .addAllOutputs(plan.outputs.map(_.output).asJava)
      .addAllInputs(BatchWriter.layouts(plan.inputs, arenaBytes, padValue).asJava)
    feeder = Feeder.open(model, config.build())
    layout = feeder.layout
    writer = new BatchWriter(plan.inputs, arenaBytes, layout, partition)
  }

  private def checkOutputs(rows: Int, firstRow: Long, outputs: BatchOutputs): Array[Int] =
    plan.outputs
      .zip(outputs.getOutputsList.asScala)
      .map { case (out, t) =>
        val shape = t.getShapeList.asScala.map(_.longValue)
        if (shape.isEmpty || shape.head != rows)
          throw new SpindleModelException(
            s"output '${out.output}' has shape ${shape.mkString("[", ", ", "]")}, expected $rows rows first"
          )
        val n = shape.tail.product
        if (out.scalar && n != 1)
          throw new SpindleModelException(s"output '${out.output}' has $n values per row, expected one")
        if (out.dtype == TensorType.TString && !out.binary && t.getFirstNonUtf8 >= 0)
          throw new SpindleInputException(
            s"output '${out.output}' (string) for column '${out.column}' (${out.sparkType.simpleString}), row " +
              s"${firstRow + t.getFirstNonUtf8 / math.max(n, 1)} of partition $partition: the bytes are not UTF-8; " +
              s"ask for this output as binary (setBinaryOutputs)"
          )
        n.toInt
      }
      .toArray

  // The feeder's own close is idempotent: the completion listener may call this after the last row did.
  override def close(): Unit = if (feeder != null) feeder.close()
}
