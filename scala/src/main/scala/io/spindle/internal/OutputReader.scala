package io.spindle.internal

import org.apache.spark.sql.catalyst.expressions.UnsafeArrayData
import org.apache.spark.sql.catalyst.util.GenericArrayData
import org.apache.spark.sql.types.{IntegerType, LongType}
import org.apache.spark.unsafe.Platform
import org.apache.spark.unsafe.types.UTF8String

import io.spindle.SpindleModelException

/** Reads output tensors from TensorFlow's memory into Spark values of the output's `valueType`. String outputs come as
  * an (address, length) pair of uint64 per element, pointing into TensorFlow's tensor.
  */
object OutputReader {

  /** Bytes per element at an output's address. */
  private def stride(dtype: TensorType): Int = if (dtype == TensorType.TString) 16 else dtype.bytes

  /** The value of row `row` of output `out` at `address` with `perRow` elements per row. */
  def read(out: OutputPlan, address: Long, perRow: Int, row: Int): Any =
    readAt(out, out.scalar, address + row.toLong * perRow * stride(out.dtype), perRow, row)

  /** `count` values at `at` (one when `scalar`) of row `row`, which only names the row in errors. */
  private def readAt(out: OutputPlan, scalar: Boolean, at: Long, count: Int, row: Int): Any = {
    val dtype = out.dtype
    if (dtype == TensorType.TString) {
      def string(i: Int): Any = {
        val (address, length) = (Platform.getLong(null, at + 16L * i), Platform.getLong(null, at + 16L * i + 8))
        if (out.binary) {
          val bytes = new Array[Byte](length.toInt)
          Platform.copyMemory(null, address, bytes, Platform.BYTE_ARRAY_OFFSET, length)
          bytes
        } else UTF8String.fromAddress(null, address, length.toInt)
      }
      if (scalar) string(0) else new GenericArrayData(Array.tabulate[Any](count)(string))
    } else readNumbers(dtype, out.output, scalar, at, count, row)
  }

  private def readNumbers(dtype: TensorType, name: String, scalar: Boolean, at: Long, count: Int, row: Int): Any =
    if (scalar) value(dtype, name, at, row)
    else if (dtype.sameLayout.isDefined) copied(dtype, at, count)
    else {
      // Each value widens (uint8 to int, half to float, ...): build the Spark array value by value.
      def element(i: Int): Any = value(dtype, name, at + i.toLong * dtype.bytes, row)
      dtype.sparkType match {
        case IntegerType => UnsafeArrayData.fromPrimitiveArray(Array.tabulate(count)(element(_).asInstanceOf[Int]))
        case LongType    => UnsafeArrayData.fromPrimitiveArray(Array.tabulate(count)(element(_).asInstanceOf[Long]))
        case _           => UnsafeArrayData.fromPrimitiveArray(Array.tabulate(count)(element(_).asInstanceOf[Float]))
      }
    }

  /** Row `row` of a nested output: arrays nested one level per dimension in `dims` (after the batch), row-major. */
  def readNested(out: OutputPlan, address: Long, dims: Array[Int], perRow: Int, row: Int): Any = {
    val size = stride(out.dtype)
    def level(at: Long, d: Int): Any =
      if (d == dims.length - 1) readAt(out, scalar = false, at, dims(d), row)
      else {
        val step = dims.drop(d + 1).map(_.toLong).product * size
        new GenericArrayData(Array.tabulate[Any](dims(d))(i => level(at + i * step, d + 1)))
      }
    level(address + row.toLong * perRow * size, 0)
  }

  private def value(dtype: TensorType, name: String, at: Long, row: Int): Any = dtype match {
    case TensorType.Float32  => Platform.getFloat(null, at)
    case TensorType.Float64  => Platform.getDouble(null, at)
    case TensorType.Int32    => Platform.getInt(null, at)
    case TensorType.Int64    => Platform.getLong(null, at)
    case TensorType.Bool     => Platform.getByte(null, at) != 0
    case TensorType.Int8     => Platform.getByte(null, at)
    case TensorType.Int16    => Platform.getShort(null, at)
    case TensorType.UInt8    => Platform.getByte(null, at) & 0xff
    case TensorType.UInt16   => Platform.getShort(null, at) & 0xffff
    case TensorType.UInt32   => Platform.getInt(null, at) & 0xffffffffL
    case TensorType.Float16  => HalfFloats.fromFloat16(Platform.getShort(null, at))
    case TensorType.BFloat16 => HalfFloats.fromBFloat16(Platform.getShort(null, at))
    case TensorType.TString  => throw new IllegalStateException("strings are read by readAt")
    case TensorType.UInt64 =>
      val v = Platform.getLong(null, at)
      if (v < 0)
        throw new SpindleModelException(
          s"output '$name', row $row of its batch: uint64 value ${java.lang.Long.toUnsignedString(v)} does not fit a Spark long"
        )
      v
  }

  // Build the UnsafeArrayData bytes directly: 8-byte length, null bits (all clear), then the values as they lie.
  private def copied(dtype: TensorType, at: Long, perRow: Int): UnsafeArrayData = {
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
