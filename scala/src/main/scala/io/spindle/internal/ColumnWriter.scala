package io.spindle.internal

import scala.util.Try

import org.apache.spark.sql.execution.vectorized.{OffHeapColumnVector, OnHeapColumnVector, WritableColumnVector}
import org.apache.spark.sql.types._
import org.apache.spark.sql.vectorized.{ColumnVector, ColumnarBatch}
import org.apache.spark.unsafe.Platform

/** Writes one input's values for a run of rows straight from a column batch's vectors, where they already lie in memory
  * as the tensor wants them: a scalar column of the dtype's own layout, or fixed-length arrays of it (the vectorized
  * Parquet reader's offsets and child vector), as one `Platform.copyMemory` from the vector to the batch; or packed
  * scalar columns of that layout ([[ColumnKind.Packed]]), each column's run scattered to its place in the rows.
  *
  * Everything else (another kind or layout, a vector that is not Spark's own, a run holding a null or an array of the
  * wrong length) is refused with `false`, and [[BatchWriter]] writes that run through [[RowWriter]] over the batch's
  * rows: one row path, which also phrases every error, so both paths fail alike.
  */
final class ColumnWriter(plan: InputPlan) {
  private val size = plan.dtype.bytes.toLong
  private val elements = plan.rowShape.product.toInt
  private val elementType: Option[DataType] = plan.kind match {
    case ColumnKind.Scalar(t) if plan.dtype.sameLayout.contains(t)                => Some(t)
    case ColumnKind.Array(e) if !plan.ragged && plan.dtype.sameLayout.contains(e) => Some(e)
    case ColumnKind.Packed(cs) if cs.forall(c => plan.dtype.sameLayout.contains(c.sparkType)) =>
      plan.dtype.sameLayout
    case _ => None
  }

  /** Whether this input can be copied from vectors at all. */
  def supported: Boolean = elementType.isDefined

  /** Copies rows `[from, from + n)` of the input's vector in `batch` to `address`, row after row; false when the run is
    * the row path's.
    */
  def write(batch: ColumnarBatch, from: Int, n: Int, address: Long): Boolean = plan.kind match {
    case ColumnKind.Packed(columns) =>
      elementType.exists { t =>
        val vectors = columns.map(c => batch.column(c.ordinal))
        val sources = vectors.map(ColumnWriter.values(_, t))
        sources.forall(_.isDefined) && !vectors.exists(ColumnWriter.hasNull(_, from, n)) && {
          sources.flatten.zipWithIndex.foreach { case ((base, offset), c) =>
            scatter(base, offset + from * size, n, address + c * size, columns.size * size)
          }
          true
        }
      }
    case _ => write(batch.column(plan.ordinal), from, n, address)
  }

  // `n` values of `size` bytes from `base` + `offset`, one every `stride` bytes from `address`.
  private def scatter(base: AnyRef, offset: Long, n: Int, address: Long, stride: Long): Unit = {
    var (from, to, r) = (offset, address, 0)
    while (r < n) {
      size match {
        case 1 => Platform.putByte(null, to, Platform.getByte(base, from))
        case 2 => Platform.putShort(null, to, Platform.getShort(base, from))
        case 4 => Platform.putInt(null, to, Platform.getInt(base, from))
        case _ => Platform.putLong(null, to, Platform.getLong(base, from))
      }
      from += size
      to += stride
      r += 1
    }
  }

  /** Copies rows `[from, from + n)` of `v` to `address`, row after row; false when the run is the row path's. */
  def write(v: ColumnVector, from: Int, n: Int, address: Long): Boolean = (plan.kind, elementType) match {
    case (ColumnKind.Scalar(_), Some(t)) => !ColumnWriter.hasNull(v, from, n) && copy(v, t, from.toLong, n, address)
    case (ColumnKind.Array(_), Some(t)) =>
      v match {
        case w: WritableColumnVector if !ColumnWriter.hasNull(v, from, n) && contiguous(w, from, n) =>
          val start = w.getArrayOffset(from)
          val values = w.arrayData()
          !ColumnWriter.hasNull(values, start, n * elements) && copy(values, t, start.toLong, n * elements, address)
        case _ => false
      }
    case _ => false
  }

  // Every row holds `elements` values and each row's follow the last's: the run's values are one block.
  private def contiguous(w: WritableColumnVector, from: Int, n: Int): Boolean = {
    val start = w.getArrayOffset(from).toLong
    var r = 0
    while (r < n) {
      if (w.getArrayLength(from + r) != elements || w.getArrayOffset(from + r) != start + r.toLong * elements)
        return false
      r += 1
    }
    true
  }

  private def copy(v: ColumnVector, t: DataType, first: Long, count: Int, address: Long): Boolean =
    ColumnWriter.values(v, t) match {
      case Some((base, offset)) =>
        Platform.copyMemory(base, offset + first * size, null, address, count * size)
        true
      case None => false
    }
}

object ColumnWriter {

  /** Whether any of rows `[from, from + n)` of `v` is null. */
  def hasNull(v: ColumnVector, from: Int, n: Int): Boolean = v.hasNull && (from until from + n).exists(v.isNullAt)

  /** Where a vector's values of type `t` lie: (base object, offset of value 0), for Spark's own vectors when they hold
    * the values themselves (not dictionary ids). Off-heap vectors give their address; on-heap ones keep a primitive
    * array in a private field, read once per call (a vector grows by replacing it).
    */
  def values(v: ColumnVector, t: DataType): Option[(AnyRef, Long)] = v match {
    case w: WritableColumnVector if w.hasDictionary => None
    case o: OffHeapColumnVector                     => Some((null, o.valuesNativeAddress()))
    case o: OnHeapColumnVector => onHeap.get(t).map { case (field, offset) => (field.get(o), offset) }
    case _                     => None
  }

  // Field names of OnHeapColumnVector, stable since Spark 2.3; a Spark without them leaves every run to the row path.
  private lazy val onHeap: Map[DataType, (java.lang.reflect.Field, Long)] = Seq(
    (BooleanType, "byteData", Platform.BYTE_ARRAY_OFFSET),
    (ByteType, "byteData", Platform.BYTE_ARRAY_OFFSET),
    (ShortType, "shortData", Platform.SHORT_ARRAY_OFFSET),
    (IntegerType, "intData", Platform.INT_ARRAY_OFFSET),
    (LongType, "longData", Platform.LONG_ARRAY_OFFSET),
    (FloatType, "floatData", Platform.FLOAT_ARRAY_OFFSET),
    (DoubleType, "doubleData", Platform.DOUBLE_ARRAY_OFFSET)
  ).flatMap { case (t, name, offset) =>
    Try {
      val field = classOf[OnHeapColumnVector].getDeclaredField(name)
      field.setAccessible(true)
      t -> (field, offset.toLong)
    }.toOption
  }.toMap
}
