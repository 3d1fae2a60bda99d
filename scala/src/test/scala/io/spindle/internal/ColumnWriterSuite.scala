package io.spindle.internal

import org.apache.spark.sql.execution.vectorized.{OffHeapColumnVector, OnHeapColumnVector, WritableColumnVector}
import org.apache.spark.sql.types._
import org.apache.spark.unsafe.Platform
import org.scalatest.funsuite.AnyFunSuite

/** Which runs [[ColumnWriter]] copies from Spark's vectors itself (and that the copy is the values, row-major), and
  * which it leaves to the row path: every refusal is one the row path then reports or converts.
  */
class ColumnWriterSuite extends AnyFunSuite {

  private def floats(n: Int): Long = Platform.allocateMemory(4L * n)

  private def read(address: Long, n: Int): Seq[Float] = (0 until n).map(i => Platform.getFloat(null, address + 4L * i))

  private def arrays(v: WritableColumnVector, rows: Seq[Seq[Float]]): WritableColumnVector = {
    rows.foreach { r =>
      v.appendArray(r.size)
      r.foreach(x => v.arrayData().appendFloat(x))
    }
    v
  }

  private val arrayPlan = InputPlan("x", "c", 0, ColumnKind.Array(FloatType), TensorType.Float32, Seq(3L))
  private val rows = Seq.tabulate(5)(i => Seq.tabulate(3)(k => i * 10f + k))

  test("fixed-length float arrays copy from on-heap and off-heap vectors as one row-major block") {
    for (
      vector <- Seq(new OnHeapColumnVector(8, ArrayType(FloatType)), new OffHeapColumnVector(8, ArrayType(FloatType)))
    ) {
      val v = arrays(vector, rows)
      val out = floats(9)
      try {
        assert(new ColumnWriter(arrayPlan).write(v, 1, 3, out), vector.getClass.getSimpleName)
        assert(read(out, 9) == rows.slice(1, 4).flatten)
      } finally { Platform.freeMemory(out); v.close() }
    }
  }

  test("scalar columns of the dtype's layout copy; other types are the row path's") {
    val v = new OnHeapColumnVector(8, LongType)
    (0 until 6).foreach(i => v.appendLong(i * 1000L))
    val out = Platform.allocateMemory(8L * 4)
    try {
      val plan = InputPlan("x", "c", 0, ColumnKind.Scalar(LongType), TensorType.Int64, Seq.empty)
      assert(new ColumnWriter(plan).write(v, 2, 4, out))
      assert((0 until 4).map(i => Platform.getLong(null, out + 8L * i)) == Seq(2000L, 3000L, 4000L, 5000L))
      val converted = InputPlan("x", "c", 0, ColumnKind.Scalar(LongType), TensorType.Float32, Seq.empty)
      assert(!new ColumnWriter(converted).supported)
    } finally { Platform.freeMemory(out); v.close() }
  }

  test("a null row, a null element, or a wrong length leave the run to the row path") {
    val out = floats(9)
    def refused(v: WritableColumnVector): Boolean = try !new ColumnWriter(arrayPlan).write(v, 0, 3, out)
    finally v.close()
    try {
      val nullRow = arrays(new OnHeapColumnVector(8, ArrayType(FloatType)), rows.take(1))
      nullRow.appendNull()
      arrays(nullRow, rows.take(1))
      assert(refused(nullRow))
      val nullElement = arrays(new OnHeapColumnVector(8, ArrayType(FloatType)), rows.take(3))
      nullElement.arrayData().putNull(4)
      assert(refused(nullElement))
      assert(refused(arrays(new OnHeapColumnVector(8, ArrayType(FloatType)), Seq(Seq(1f, 2f, 3f), Seq(1f), Seq(1f)))))
    } finally Platform.freeMemory(out)
  }
}
