package io.spindle.internal

import scala.jdk.CollectionConverters._

import org.apache.spark.TaskContext
import org.apache.spark.sql.catalyst.InternalRow
import org.apache.spark.sql.catalyst.expressions.UnsafeRow

import io.spindle.{SpindleInputException, SpindleModelException}
import io.spindle.proto.{BatchOutputs, FeederConfig}

/** What one task needs to score its partition, row by row ([[InferenceIterator]]) or a column batch at a time
  * ([[ColumnarInference]]): the model, the plan and the feeder's settings.
  */
final case class Scoring(
    model: LoadedModel,
    plan: Plan,
    signature: String,
    batchSize: Int,
    numSlots: Int,
    variableLengthBytes: Long,
    padValue: Double
) {

  /** Opens the task's feeder, its arenas sized from the partition's first row unless variableLengthBytes is set, after
    * checking the memory budget; returns it with a writer into its slots.
    */
  def open(first: InternalRow, partition: Int): (Feeder, BatchWriter) = {
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
    val feeder = Feeder.open(model, config.build())
    (feeder, new BatchWriter(plan.inputs, arenaBytes, feeder.layout, partition))
  }

  /** A slot's outputs, checked against the plan (`rows` rows, the first being `firstRow` of the partition). */
  def outputsOf(rows: Int, firstRow: Long, outputs: BatchOutputs, partition: Int): SlotOutputs = {
    val perRow = plan.outputs
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
    new SlotOutputs(plan.outputs.toArray, outputs, perRow)
  }
}

/** A run slot's outputs in TensorFlow's memory (valid until the slot is released), read a row's value at a time. */
final class SlotOutputs(outputs: Array[OutputPlan], tensors: BatchOutputs, val perRow: Array[Int]) {

  /** Where each output's values lie, row after row. */
  val addresses: Array[Long] = tensors.getOutputsList.asScala.map(_.getAddress).toArray
  // Each output's dimensions after the batch, for nested outputs.
  private val dims = tensors.getOutputsList.asScala.map(_.getShapeList.asScala.tail.map(_.intValue).toArray).toArray

  /** Output `o` of row `row` of the slot, as a Spark value of its column's type. */
  def value(o: Int, row: Int): Any =
    if (outputs(o).nested) OutputReader.readNested(outputs(o), addresses(o), dims(o), perRow(o), row)
    else OutputReader.read(outputs(o), addresses(o), perRow(o), row)
}
