package io.spindle.internal

import scala.jdk.CollectionConverters._

import org.apache.spark.sql.catalyst.InternalRow

import io.spindle.proto.{FeederLayout, InputLayout}

/** Writes whole rows into a batch the runtime laid out (a feeder slot or a trainer window): each input's value goes to
  * its offset, at row `n` of the batch.
  */
final class BatchWriter(inputs: Seq[InputPlan], shapes: Seq[Seq[Long]], layout: FeederLayout, partition: Int) {
  private val writers =
    inputs.zip(shapes).map { case (in, shape) => new RowWriter(in, shape.product.toInt, partition) }.toArray
  private val offsets = layout.getInputOffsetsList.asScala.map(_.longValue).toArray
  private val rowBytes = layout.getRowBytesList.asScala.map(_.longValue).toArray

  /** Writes `row` as row `n` of the batch at `base`; `rowNumber` (within the partition) names the row in errors. */
  def write(row: InternalRow, base: Long, n: Int, rowNumber: Long): Unit = {
    var i = 0
    while (i < writers.length) {
      writers(i).write(row, base + offsets(i) + n * rowBytes(i), rowNumber)
      i += 1
    }
  }
}

object BatchWriter {

  /** How the runtime is to lay the inputs out: name, dtype and this partition's row shape of each. */
  def layouts(inputs: Seq[InputPlan], shapes: Seq[Seq[Long]]): Seq[InputLayout] =
    inputs.zip(shapes).map { case (in, shape) =>
      InputLayout
        .newBuilder()
        .setName(in.tensor)
        .setDtype(in.dtype.proto)
        .addAllRowShape(shape.map(Long.box).asJava)
        .build()
    }
}
