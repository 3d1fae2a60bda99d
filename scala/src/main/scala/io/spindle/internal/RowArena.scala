package io.spindle.internal

import org.apache.spark.sql.catalyst.InternalRow
import org.apache.spark.sql.catalyst.expressions.UnsafeRow
import org.apache.spark.unsafe.Platform

/** Keeps one batch of input rows alive until their output rows are built, without a heap allocation per row: UnsafeRows
  * are copied back to back into one reused byte array and re-pointed by reused row objects. Profiling showed
  * `UnsafeRow.copy` (an allocation per row) as the JVM's largest cost in `transform`.
  */
final class RowArena(numFields: Int) {
  private var bytes = new Array[Byte](1 << 16)
  private var used = 0
  private var rows = new Array[UnsafeRow](0)
  private var count = 0

  /** Forgets the previous batch; its rows must no longer be in use. */
  def reset(): Unit = {
    used = 0
    count = 0
  }

  /** A stable copy of `row`, valid until the next `reset`. */
  def add(row: InternalRow): InternalRow = row match {
    case u: UnsafeRow =>
      val size = u.getSizeInBytes
      // A full array stays referenced by the rows already in it; later rows go to a fresh, larger one.
      if (used + size > bytes.length) {
        bytes = new Array[Byte](math.max(bytes.length * 2, size))
        used = 0
      }
      if (count == rows.length) rows = java.util.Arrays.copyOf(rows, math.max(16, count * 2))
      if (rows(count) == null) rows(count) = new UnsafeRow(numFields)
      u.writeToMemory(bytes, Platform.BYTE_ARRAY_OFFSET + used)
      rows(count).pointTo(bytes, Platform.BYTE_ARRAY_OFFSET + used, size)
      used += size
      count += 1
      rows(count - 1)
    case other => other.copy()
  }
}
