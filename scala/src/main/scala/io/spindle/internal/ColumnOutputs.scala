package io.spindle.internal

import org.apache.spark.sql.catalyst.util.ArrayData
import org.apache.spark.sql.execution.vectorized.{OnHeapColumnVector, WritableColumnVector}
import org.apache.spark.sql.types._
import org.apache.spark.unsafe.types.UTF8String

/** The output columns of a column batch: one on-heap vector per output, refilled for each batch (a batch handed on is
  * used before the next is asked for, as with Spark's own readers). Values are appended a slot's rows at a time, in row
  * order, from what TensorFlow returned.
  */
final class ColumnOutputs(outputs: Seq[OutputPlan]) extends AutoCloseable {
  private val types = outputs.map(_.sparkType).toArray
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

  /** Appends the `rows` rows of a run slot's outputs. */
  def append(slot: SlotOutputs, rows: Int): Unit = {
    var o = 0
    while (o < columns.length) {
      var r = 0
      while (r < rows) {
        ColumnOutputs.append(columns(o), types(o), slot.value(o, r))
        r += 1
      }
      o += 1
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
