package io.spindle.internal

import org.apache.spark.sql.catalyst.util.ArrayData
import org.apache.spark.sql.execution.vectorized.{OnHeapColumnVector, WritableColumnVector}
import org.apache.spark.sql.types._
import org.apache.spark.unsafe.Platform
import org.apache.spark.unsafe.types.UTF8String

/** The output columns of a column batch: one on-heap vector per output, refilled for each batch (a batch handed on is
  * used before the next is asked for, as with Spark's own readers). Values are appended a slot's rows at a time, in row
  * order, from what TensorFlow returned.
  */
final class ColumnOutputs(outputs: Seq[OutputPlan]) extends AutoCloseable {
  private val plans = outputs.toArray
  private val types = plans.map(_.sparkType)
  private var capacity = 0
  private var columns: Array[WritableColumnVector] = Array.empty

  /** The vectors, for a batch of up to the rows last given to [[reset]]. */
  def vectors: Array[WritableColumnVector] = columns

  /** Empties the vectors for a batch of `rows` rows. */
  def reset(rows: Int): Unit =
    if (rows > capacity) {
      close()
      capacity = rows
      columns = types.map(t => new OnHeapColumnVector(rows, t): WritableColumnVector)
    } else columns.foreach(_.reset())

  // Outputs of numbers laid out as their column's values (float32 to float, int64 to long...), one per row or a flat
  // array: copied in bulk from TensorFlow's memory.
  private val bulk = plans.map(o => !o.nested && o.dtype.sameLayout.contains(o.valueType)).toArray

  /** Appends the `rows` rows of a run slot's outputs. */
  def append(slot: SlotOutputs, rows: Int): Unit = {
    var o = 0
    while (o < columns.length) {
      if (!bulk(o) || !copy(columns(o), plans(o), slot.addresses(o), slot.perRow(o), rows)) {
        var r = 0
        while (r < rows) {
          ColumnOutputs.append(columns(o), types(o), slot.value(o, r))
          r += 1
        }
      }
      o += 1
    }
  }

  // `rows` rows of `perRow` values at `address` into `v`: its values, or its arrays' child and one entry per row.
  private def copy(v: WritableColumnVector, out: OutputPlan, address: Long, perRow: Int, rows: Int): Boolean = {
    val values = if (out.scalar) v else v.arrayData()
    val first = values.getElementsAppended
    val count = rows * perRow
    values.reserve(first + count)
    ColumnWriter.values(values, out.valueType).exists { case (base, offset) =>
      Platform.copyMemory(null, address, base, offset + first.toLong * out.dtype.bytes, count.toLong * out.dtype.bytes)
      values.addElementsAppended(count)
      if (!out.scalar) {
        val row = v.getElementsAppended
        v.reserve(row + rows)
        var r = 0
        while (r < rows) {
          v.putArray(row + r, first + r * perRow, perRow)
          r += 1
        }
        v.addElementsAppended(rows)
      }
      true
    }
  }

  override def close(): Unit = {
    columns.foreach(_.close())
    columns = Array.empty
    capacity = 0
  }
}

object ColumnOutputs {

  /** Appends `value`, a Spark value of type `t` (as [[OutputReader]] reads it), to `v`. */
  def append(v: WritableColumnVector, t: DataType, value: Any): Unit = t match {
    case FloatType   => v.appendFloat(value.asInstanceOf[Float])
    case DoubleType  => v.appendDouble(value.asInstanceOf[Double])
    case IntegerType => v.appendInt(value.asInstanceOf[Int])
    case LongType    => v.appendLong(value.asInstanceOf[Long])
    case BooleanType => v.appendBoolean(value.asInstanceOf[Boolean])
    case ByteType    => v.appendByte(value.asInstanceOf[Byte])
    case ShortType   => v.appendShort(value.asInstanceOf[Short])
    case BinaryType =>
      val bytes = value.asInstanceOf[Array[Byte]]
      v.appendByteArray(bytes, 0, bytes.length)
    case StringType =>
      val bytes = value.asInstanceOf[UTF8String].getBytes
      v.appendByteArray(bytes, 0, bytes.length)
    case ArrayType(e, _) =>
      val a = value.asInstanceOf[ArrayData]
      val n = a.numElements()
      v.appendArray(n)
      var i = 0
      while (i < n) {
        append(v.arrayData(), e, a.get(i, e))
        i += 1
      }
    case other => throw new IllegalStateException(s"no column vector for output type $other")
  }
}
