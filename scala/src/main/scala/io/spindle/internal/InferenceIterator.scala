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

import io.spindle.SpindleModelException
import io.spindle.jni.NativeRuntime
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
    numSlots: Int
) extends Iterator[InternalRow]
    with AutoCloseable {

  private val rows = input.buffered
  private var feeder = 0L
  private var layout: FeederLayout = _
  private var writer: BatchWriter = _
  private val free = mutable.Queue.range(0, numSlots)
  private val inFlight = mutable.Queue.empty[(Int, Array[InternalRow])]
  private val arenas = Array.fill(numSlots)(new RowArena(plan.schema.length - plan.outputs.length))
  private var rowNumber = 0L
  private var closed = false

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
        if (out.nested) OutputReader.readNested(out.dtype, out.output, addresses(o), dims(o), perRow(o), cursor)
        else OutputReader.read(out.dtype, out.output, out.scalar, addresses(o), perRow(o), cursor)
      )
      o += 1
    }
    val row = projection(joined(batch(cursor), values))
    cursor += 1
    row
  }

  private def advance(): Unit = {
    if (slot >= 0) {
      NativeRuntime.releaseSlot(feeder, slot)
      free.enqueue(slot)
      slot = -1
      batch = Array.empty
      cursor = 0
    }
    fillFreeSlots()
    if (inFlight.nonEmpty) {
      val (s, rows) = inFlight.dequeue()
      val outputs = BatchOutputs.parseFrom(NativeRuntime.awaitSlot(feeder, s))
      slot = s
      batch = rows
      perRow = checkOutputs(rows.length, outputs)
      dims = outputs.getOutputsList.asScala.map(_.getShapeList.asScala.tail.map(_.intValue).toArray).toArray
      addresses = outputs.getOutputsList.asScala.map(_.getAddress).toArray
    }
  }

  private def fillFreeSlots(): Unit =
    while (free.nonEmpty && rows.hasNext) {
      if (feeder == 0) open(rows.head)
      val slot = free.dequeue()
      val base = layout.getBaseAddress + slot * layout.getSlotStride
      val batch = new mutable.ArrayBuffer[InternalRow](batchSize)
      val arena = arenas(slot)
      arena.reset()
      while (batch.size < batchSize && rows.hasNext) {
        val row = rows.next()
        writer.write(row, base, batch.size, rowNumber)
        batch += arena.add(row)
        rowNumber += 1
      }
      NativeRuntime.submit(feeder, slot, batch.size)
      inFlight.enqueue(slot -> batch.toArray)
    }

  // Unknown inner dimensions are fixed by the partition's first row; every later row is checked against it.
  private def open(first: InternalRow): Unit = {
    val shapes = plan.inputs.map(in => RowShapes.of(in, Some(first)))
    val rowSize = first match {
      case u: UnsafeRow => u.getSizeInBytes.toLong
      case _            => 8L * first.numFields
    }
    MemoryBudget.forInference(plan.inputs, shapes, batchSize, numSlots, rowSize).check()
    val task = Option(TaskContext.get())
    val partition = task.map(_.partitionId()).getOrElse(0)
    val config = FeederConfig
      .newBuilder()
      .setSignature(signature)
      .setBatchSize(batchSize)
      .setNumSlots(numSlots)
      .setLabel(task.map(t => s"stage ${t.stageId()} partition $partition task ${t.taskAttemptId()}").getOrElse(""))
      .addAllOutputs(plan.outputs.map(_.output).asJava)
      .addAllInputs(BatchWriter.layouts(plan.inputs, shapes).asJava)
    feeder = NativeRuntime.openFeeder(model.nativeHandle, config.build().toByteArray)
    layout = FeederLayout.parseFrom(NativeRuntime.feederLayout(feeder))
    writer = new BatchWriter(plan.inputs, shapes, layout, partition)
  }

  private def checkOutputs(rows: Int, outputs: BatchOutputs): Array[Int] =
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
        n.toInt
      }
      .toArray

  override def close(): Unit = if (!closed) {
    closed = true
    val f = feeder
    feeder = 0
    if (f != 0) NativeRuntime.closeFeeder(f)
  }
}
