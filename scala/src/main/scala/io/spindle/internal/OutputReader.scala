package io.spindle.internal

import org.apache.spark.sql.catalyst.expressions.UnsafeArrayData
import org.apache.spark.unsafe.Platform

/** Reads output tensors from TensorFlow's memory into Spark values. */
object OutputReader {

  /** The value of row `row` of an output at `address` with `perRow` elements per row. */
  def read(dtype: TensorType, scalar: Boolean, address: Long, perRow: Int, row: Int): Any = {
    val at = address + row.toLong * perRow * dtype.bytes
    if (scalar) dtype match {
      case TensorType.Float32 => Platform.getFloat(null, at)
      case TensorType.Float64 => Platform.getDouble(null, at)
      case TensorType.Int32   => Platform.getInt(null, at)
      case TensorType.Int64   => Platform.getLong(null, at)
    }
    else {
      // Build the UnsafeArrayData bytes directly: 8-byte length, null bits (all clear), then the values.
      val header = UnsafeArrayData.calculateHeaderPortionInBytes(perRow)
      val valueBytes = perRow.toLong * dtype.bytes
      val total = header + ((valueBytes + 7) / 8) * 8
      val words = new Array[Long]((total / 8).toInt)
      words(0) = perRow
      Platform.copyMemory(null, at, words, Platform.LONG_ARRAY_OFFSET + header, valueBytes)
      val result = new UnsafeArrayData()
      result.pointTo(words, Platform.LONG_ARRAY_OFFSET, total.toInt)
      result
    }
  }
}
