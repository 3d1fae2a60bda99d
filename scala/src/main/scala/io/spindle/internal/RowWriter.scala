package io.spindle.internal

import org.apache.spark.sql.catalyst.InternalRow
import org.apache.spark.sql.catalyst.expressions.{SpecializedGetters, UnsafeArrayData, UnsafeRow}
import org.apache.spark.sql.catalyst.util.ArrayData
import org.apache.spark.sql.types._
import org.apache.spark.unsafe.Platform

import io.spindle.SpindleInputException

/** Writes one input column of a row straight into batch memory at an absolute address.
  *
  * Arrays whose Spark element type lies in memory as the tensor dtype does are copied in one `Platform.copyMemory` from
  * the row's own bytes; other types convert value by value in a tight loop (half precision rounds to nearest even; an
  * integer out of the dtype's range is an error naming it). Either way no JVM heap array is made and no JNI call
  * happens per value.
  *
  * A packed input (`packedInputCols`) takes one value from each of its columns, converted from that column's own type,
  * value `i` at `address + i * size`: any `InternalRow` will do, an `UnsafeRow` or a columnar batch's row.
  *
  * Strings and ragged rows put their bytes in the batch's arena of `arenaBytes` for this input, one after another from
  * [[startBatch]], and an (offset, length) pair of uint32 per string, or per ragged row, where a value would go.
  */
final class RowWriter(plan: InputPlan, val arenaBytes: Long, partition: Int) {
  private val dtype = plan.dtype
  private val elements = if (plan.ragged) -1 else plan.rowShape.product.toInt
  private val strings = dtype == TensorType.TString
  private val packed = plan.kind match {
    case ColumnKind.Packed(columns) => columns.toArray
    case _                          => Array.empty[PackedColumn]
  }
  private var arena = 0L
  private var used = 0L

  /** Starts a batch whose arena for this input is at `address`. */
  def startBatch(address: Long): Unit = {
    arena = address
    used = 0L
  }

  /** Whether `row`'s arena bytes fit what is left of this batch's; throws when they would not fit even an empty one. */
  def fits(row: InternalRow, rowNumber: Long): Boolean = {
    val n = need(row)
    if (n > arenaBytes)
      fail(
        rowNumber,
        s"the row needs $n bytes of strings or values, more than a batch holds for this input ($arenaBytes); " +
          s"set variableLengthBytes to at least $n"
      )
    used + n <= arenaBytes
  }

  /** The bytes `row` puts in the arena. */
  def need(row: InternalRow): Long =
    if (packed.nonEmpty || row.isNullAt(plan.ordinal)) 0L
    else if (strings) plan.kind match {
      case ColumnKind.Array(e) =>
        val a = row.getArray(plan.ordinal)
        (0 until a.numElements()).iterator.map(i => if (a.isNullAt(i)) 0L else stringBytes(a, i, e)).sum
      case ColumnKind.Scalar(t) => stringBytes(row, plan.ordinal, t)
      case _                    => 0L
    }
    else if (plan.ragged) raggedCount(row) * size
    else 0L

  private def stringBytes(g: SpecializedGetters, i: Int, t: DataType): Long =
    if (t == BinaryType) g.getBinary(i).length.toLong else g.getUTF8String(i).numBytes().toLong

  private def raggedCount(row: InternalRow): Long = plan.kind match {
    case ColumnKind.Vector => row.getStruct(plan.ordinal, 4).getInt(1).toLong
    case ColumnKind.Bytes  => RowWriter.binary(row, plan.ordinal)._3.toLong
    case _                 => row.getArray(plan.ordinal).numElements().toLong
  }
  private val size = dtype.bytes
  private val bulk = plan.kind match {
    case ColumnKind.Array(e)     => dtype.sameLayout.contains(e)
    case ColumnKind.Nested(_, e) => dtype.sameLayout.contains(e)
    case _                       => false
  }
  // For nested arrays: each dimension, and the elements one item of each level holds.
  private val dims = plan.rowShape.map(_.toInt).toArray
  private val below = dims.indices.map(d => dims.drop(d + 1).map(_.toLong).product).toArray

  // `column`: the one at fault, which for a packed input is one of its columns.
  private def fail(row: Long, why: String, column: String = plan.column): Nothing =
    throw new SpindleInputException(
      s"column '$column' (input '${plan.tensor}', ${dtype.name}), row $row of partition $partition: $why"
    )

  /** Writes `row`'s value for this input at `address` (after [[fits]] said it fits); `rowNumber` (within the partition)
    * only names the row in errors.
    */
  def write(row: InternalRow, address: Long, rowNumber: Long): Unit = {
    if (packed.nonEmpty) writePacked(row, address, rowNumber)
    else if (row.isNullAt(plan.ordinal)) fail(rowNumber, "value is null; every row needs a value")
    else if (plan.ragged) writeRagged(row, address, rowNumber)
    else if (strings) writeStrings(row, address, rowNumber)
    else writeValues(row, address, rowNumber)
  }

  // One value per column, each converted from its own type.
  private def writePacked(row: InternalRow, address: Long, rowNumber: Long): Unit = {
    var i = 0
    while (i < packed.length) {
      val c = packed(i)
      if (row.isNullAt(c.ordinal)) fail(rowNumber, "value is null; every row needs a value", c.name)
      putValue(row, c.ordinal, c.sparkType, address + i.toLong * size, rowNumber, c.name)
      i += 1
    }
  }

  // Values go to the arena; the row's entry says where and how many.
  private def writeRagged(row: InternalRow, address: Long, rowNumber: Long): Unit = {
    val count = raggedCount(row).toInt
    val at = arena + used
    plan.kind match {
      case ColumnKind.Vector   => writeVector(row.getStruct(plan.ordinal, 4), at, rowNumber, count)
      case ColumnKind.Array(e) => writeArray(row.getArray(plan.ordinal), e, at, rowNumber, count, "array")
      case ColumnKind.Bytes    => writeBytes(row, at, rowNumber, count)
      case other               => throw new IllegalStateException(s"unplanned ragged $other")
    }
    putEntry(address, count)
    used += count.toLong * size
  }

  private def writeStrings(row: InternalRow, address: Long, rowNumber: Long): Unit = plan.kind match {
    case ColumnKind.Scalar(t) => putString(row, plan.ordinal, t, address)
    case ColumnKind.Array(e) =>
      val a = row.getArray(plan.ordinal)
      if (a.numElements() != elements) fail(rowNumber, s"array has ${a.numElements()} strings, expected $elements")
      var i = 0
      while (i < elements) {
        if (a.isNullAt(i)) fail(rowNumber, s"array element $i is null")
        putString(a, i, e, address + 8L * i)
        i += 1
      }
    case other => throw new IllegalStateException(s"unplanned strings $other")
  }

  private def putString(g: SpecializedGetters, i: Int, t: DataType, address: Long): Unit = {
    val n =
      if (t == BinaryType) {
        val bytes = g.getBinary(i)
        Platform.copyMemory(bytes, Platform.BYTE_ARRAY_OFFSET, null, arena + used, bytes.length)
        bytes.length
      } else {
        val s = g.getUTF8String(i)
        Platform.copyMemory(s.getBaseObject, s.getBaseOffset, null, arena + used, s.numBytes())
        s.numBytes()
      }
    putEntry(address, n)
    used += n
  }

  private def putEntry(address: Long, length: Int): Unit = {
    Platform.putInt(null, address, used.toInt)
    Platform.putInt(null, address + 4, length)
  }

  private def writeValues(row: InternalRow, address: Long, rowNumber: Long): Unit = {
    plan.kind match {
      case ColumnKind.Scalar(t)    => putValue(row, plan.ordinal, t, address, rowNumber)
      case ColumnKind.Array(e)     => writeArray(row.getArray(plan.ordinal), e, address, rowNumber, elements, "array")
      case ColumnKind.Nested(_, e) => writeNested(row.getArray(plan.ordinal), 0, e, address, rowNumber)
      case ColumnKind.Vector       => writeVector(row.getStruct(plan.ordinal, 4), address, rowNumber, elements)
      case ColumnKind.Image(rgb)   => writeImage(row.getStruct(plan.ordinal, 6), rgb, address, rowNumber)
      case ColumnKind.Bytes        => writeBytes(row, address, rowNumber, elements)
      case ColumnKind.Examples(_)  => throw new IllegalStateException("a tf.Example input is written by its features")
      case ColumnKind.Packed(_)    => throw new IllegalStateException("a packed input is written by writePacked")
    }
  }

  // Spark's image struct: origin, height, width, nChannels, mode, data (row-major, BGR bytes).
  private def writeImage(image: InternalRow, rgb: Boolean, address: Long, rowNumber: Long): Unit = {
    val (h, w, c) = (image.getInt(1), image.getInt(2), image.getInt(3))
    if (h != dims(0) || w != dims(1) || c != dims(2))
      fail(rowNumber, s"image ${image.getUTF8String(0)} is ${h}x${w}x$c, expected ${dims.mkString("x")}")
    val (base, offset, length) = RowWriter.binary(image, 5)
    if (length != h.toLong * w * c) fail(rowNumber, s"image ${image.getUTF8String(0)} holds $length bytes")
    if (!rgb || c < 3) Platform.copyMemory(base, offset, null, address, length)
    else {
      var p = 0
      while (p < length) {
        Platform.putByte(null, address + p, Platform.getByte(base, offset + p + 2))
        Platform.putByte(null, address + p + 1, Platform.getByte(base, offset + p + 1))
        Platform.putByte(null, address + p + 2, Platform.getByte(base, offset + p))
        var k = 3
        while (k < c) { Platform.putByte(null, address + p + k, Platform.getByte(base, offset + p + k)); k += 1 }
        p += c
      }
    }
  }

  // A binary column's bytes as uint8 values: `expected` of them, copied as they lie in the row.
  private def writeBytes(row: InternalRow, address: Long, rowNumber: Long, expected: Int): Unit = {
    val (base, offset, length) = RowWriter.binary(row, plan.ordinal)
    if (length != expected)
      fail(rowNumber, s"the value holds $length bytes, expected $expected (${plan.rowShape.mkString("x")} uint8)")
    Platform.copyMemory(base, offset, null, address, length)
  }

  /** Writes the arrays of nesting `level` (0: the outermost) at `address`, row-major. */
  private def writeNested(array: ArrayData, level: Int, e: DataType, address: Long, rowNumber: Long): Unit = {
    val where = s"array at depth ${level + 1}"
    if (level == dims.length - 1) writeArray(array, e, address, rowNumber, dims(level), where)
    else {
      val n = array.numElements()
      if (n != dims(level)) fail(rowNumber, s"$where has $n elements, expected ${dims(level)}")
      var i = 0
      while (i < n) {
        if (array.isNullAt(i)) fail(rowNumber, s"$where: element $i is null")
        writeNested(array.getArray(i), level + 1, e, address + i * below(level) * size, rowNumber)
        i += 1
      }
    }
  }

  private def writeArray(
      array: ArrayData,
      elementType: DataType,
      address: Long,
      rowNumber: Long,
      expected: Int,
      where: String
  ): Unit = {
    val n = array.numElements()
    if (n != expected) fail(rowNumber, s"$where has $n elements, expected $expected")
    array match {
      case u: UnsafeArrayData if bulk =>
        if (hasNull(u)) fail(rowNumber, "array holds a null element")
        val header = UnsafeArrayData.calculateHeaderPortionInBytes(n)
        Platform.copyMemory(u.getBaseObject, u.getBaseOffset + header, null, address, n.toLong * size)
      case _ =>
        var i = 0
        while (i < n) {
          if (array.isNullAt(i)) fail(rowNumber, s"array element $i is null")
          putValue(array, i, elementType, address + i.toLong * size, rowNumber)
          i += 1
        }
    }
  }

  // The null bits of an UnsafeArrayData sit in whole words after its 8-byte length: check a word at a time.
  private def hasNull(u: UnsafeArrayData): Boolean = {
    val words = (u.numElements() + 63) / 64
    var w = 0
    while (w < words) {
      if (Platform.getLong(u.getBaseObject, u.getBaseOffset + 8 + 8L * w) != 0) return true
      w += 1
    }
    false
  }

  // Spark ML vectors are a struct (type: 0 sparse / 1 dense, size, indices, values) of doubles.
  private def writeVector(v: InternalRow, address: Long, rowNumber: Long, expected: Int): Unit = {
    val values = v.getArray(3)
    if (v.getByte(0) == 1) writeArray(values, DoubleType, address, rowNumber, expected, "vector")
    else {
      val n = v.getInt(1)
      if (n != expected) fail(rowNumber, s"vector has size $n, expected $expected")
      Platform.setMemory(address, 0.toByte, n.toLong * size)
      val indices = v.getArray(2)
      var i = 0
      while (i < indices.numElements()) {
        putDouble(values.getDouble(i), address + indices.getInt(i).toLong * size)
        i += 1
      }
    }
  }

  /** Writes value `i` of `g` (a row's column or an array's element: both are Spark's `SpecializedGetters`); a boolean
    * into a number dtype (only a packed input plans one) is 1 or 0. `column` names the value's column in errors.
    */
  private def putValue(
      g: SpecializedGetters,
      i: Int,
      t: DataType,
      address: Long,
      rowNumber: Long,
      column: String = plan.column
  ): Unit = t match {
    case FloatType                               => putDouble(g.getFloat(i), address)
    case DoubleType                              => putDouble(g.getDouble(i), address)
    case BooleanType if dtype == TensorType.Bool => Platform.putByte(null, address, if (g.getBoolean(i)) 1 else 0)
    case BooleanType                             => putLong(if (g.getBoolean(i)) 1L else 0L, address, rowNumber, column)
    case ByteType                                => putLong(g.getByte(i), address, rowNumber, column)
    case ShortType                               => putLong(g.getShort(i), address, rowNumber, column)
    case IntegerType                             => putLong(g.getInt(i), address, rowNumber, column)
    case LongType                                => putLong(g.getLong(i), address, rowNumber, column)
    case other                                   => throw new IllegalStateException(s"unplanned type $other")
  }

  private def putDouble(v: Double, address: Long): Unit = dtype match {
    case TensorType.Float32  => Platform.putFloat(null, address, v.toFloat)
    case TensorType.Float64  => Platform.putDouble(null, address, v)
    case TensorType.Float16  => Platform.putShort(null, address, HalfFloats.toFloat16(v.toFloat))
    case TensorType.BFloat16 => Platform.putShort(null, address, HalfFloats.toBFloat16(v.toFloat))
    case _                   => throw new IllegalStateException("float value planned into an integer tensor")
  }

  private val (min, max) = dtype.range.getOrElse((Long.MinValue, Long.MaxValue))

  private def putLong(v: Long, address: Long, rowNumber: Long, column: String): Unit =
    if (dtype == TensorType.Float32) Platform.putFloat(null, address, v.toFloat)
    else if (dtype.isFloat) putDouble(v.toDouble, address)
    else {
      if (v < min || v > max) fail(rowNumber, s"value $v does not fit ${dtype.name} ($min to $max)", column)
      dtype.bytes match {
        case 1 => Platform.putByte(null, address, v.toByte)
        case 2 => Platform.putShort(null, address, v.toShort)
        case 4 => Platform.putInt(null, address, v.toInt)
        case _ => Platform.putLong(null, address, v)
      }
    }
}

object RowWriter {

  /** The bytes of binary field `i` where `row` holds them: base object, offset and length. An UnsafeRow's
    * variable-length field is an offset and a size in one word, read without the copy `getBinary` makes.
    */
  def binary(row: InternalRow, i: Int): (AnyRef, Long, Int) = row match {
    case u: UnsafeRow =>
      val word = u.getLong(i)
      (u.getBaseObject, u.getBaseOffset + (word >>> 32), (word & 0xffffffffL).toInt)
    case other =>
      val data = other.getBinary(i)
      (data, Platform.BYTE_ARRAY_OFFSET.toLong, data.length)
  }
}
