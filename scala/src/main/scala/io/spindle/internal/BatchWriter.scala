package io.spindle.internal

import java.nio.{ByteBuffer, ByteOrder}

import scala.jdk.CollectionConverters._

import com.google.protobuf.ByteString
import org.apache.spark.sql.catalyst.InternalRow
import org.apache.spark.sql.vectorized.ColumnarBatch

import io.spindle.{SpindleInputException, SpindleNativeException}
import io.spindle.proto.{FeederLayout, InputLayout}

/** Writes whole rows into a batch the runtime laid out (a feeder slot or a trainer window): each input's value goes to
  * its offset, at row `n` of the batch; strings and ragged rows go on into the input's arena.
  *
  * A batch starts with [[start]]; before each row, [[fits]] says whether its strings and ragged values still fit the
  * batch's arenas (a batch that cannot take the next row runs with the rows it has).
  */
final class BatchWriter(inputs: Seq[InputPlan], arenaBytes: Seq[Long], layout: FeederLayout, partition: Int) {
  private val areas = inputs.flatMap(_.areas)
  private val writers = areas.zip(arenaBytes).map { case (in, bytes) => new RowWriter(in, bytes, partition) }.toArray
  private val offsets = layout.getInputOffsetsList.asScala.map(_.longValue).toArray
  private val rowBytes = layout.getRowBytesList.asScala.map(_.longValue).toArray
  private val arenaOffsets = layout.getArenaOffsetsList.asScala.map(_.longValue).toArray
  private val withArena = writers.indices.filter(i => writers(i).arenaBytes > 0).toArray
  private val columns = areas.map(new ColumnWriter(_)).toArray
  private val all = writers.indices.toArray
  private val rowsOnly = writers.indices.filterNot(i => columns(i).supported).toArray
  private var base = 0L

  /** Starts a batch at `base`. */
  def start(base: Long): Unit = {
    // Rows go to raw memory: an address that is not a mapped window would crash the JVM.
    if (base == 0) throw new SpindleNativeException("the runtime handed back batch address 0")
    this.base = base
    withArena.foreach(i => writers(i).startBatch(base + arenaOffsets(i)))
  }

  /** Whether `row` fits what is left of the batch's arenas (always, for inputs without one). */
  def fits(row: InternalRow, rowNumber: Long): Boolean = {
    var i = 0
    while (i < withArena.length) {
      if (!writers(withArena(i)).fits(row, rowNumber)) return false
      i += 1
    }
    true
  }

  /** Starts a batch at `base` and writes the next of `rows` into it: up to `batchSize`, while they fit its arenas (an
    * empty batch takes any row that fits an arena at all; [[fits]] throws for one that does not). `rowNumber` is the
    * first row's index within the partition, for errors. Returns the rows written.
    */
  def fill(base: Long, rows: scala.collection.BufferedIterator[InternalRow], batchSize: Int, rowNumber: Long): Int = {
    start(base)
    var n = 0
    while (n < batchSize && rows.hasNext && fits(rows.head, rowNumber + n)) {
      write(rows.next(), n, rowNumber + n)
      n += 1
    }
    n
  }

  /** [[fill]] from a column batch's rows `from` on ([[writeColumns]]). Returns the rows written. */
  def fillColumns(base: Long, batch: ColumnarBatch, from: Int, batchSize: Int, rowNumber: Long): Int = {
    start(base)
    writeColumns(batch, from, batchSize, 0, rowNumber)
  }

  /** Writes up to `max` of a column batch's rows from `from` on as the started batch's rows `at` on, while they fit its
    * arenas: each input whose vector holds its values as the tensor wants them is copied a run of rows at a time
    * ([[ColumnWriter]]); every other input, and any run a [[ColumnWriter]] refuses, is written row by row through the
    * batch's row view, as [[write]] does. `rowNumber` is row `from`'s index within the partition. Returns the rows
    * written.
    */
  def writeColumns(batch: ColumnarBatch, from: Int, max: Int, at: Int, rowNumber: Long): Int = {
    val end = math.min(batch.numRows(), from + max)
    // Rows with arena bytes (only ever row-path inputs) go one at a time, as in `fill`, until one no longer fits.
    var n = 0
    while (from + n < end && (withArena.isEmpty || fits(batch.getRow(from + n), rowNumber + n))) {
      if (rowsOnly.nonEmpty) writeRow(batch.getRow(from + n), at + n, rowNumber + n, rowsOnly)
      n += 1
    }
    var i = 0
    while (i < columns.length) {
      val address = base + offsets(i) + at * rowBytes(i)
      if (columns(i).supported && !columns(i).write(batch, from, n, address)) {
        var r = 0
        while (r < n) {
          writers(i).write(batch.getRow(from + r), address + r * rowBytes(i), rowNumber + r)
          r += 1
        }
      }
      i += 1
    }
    n
  }

  private def writeRow(row: InternalRow, n: Int, rowNumber: Long, which: Array[Int]): Unit = {
    var k = 0
    while (k < which.length) {
      val i = which(k)
      writers(i).write(row, base + offsets(i) + n * rowBytes(i), rowNumber)
      k += 1
    }
  }

  /** Writes `row` as row `n` of the batch; `rowNumber` (within the partition) names the row in errors. */
  def write(row: InternalRow, n: Int, rowNumber: Long): Unit = writeRow(row, n, rowNumber, all)
}

object BatchWriter {

  /** Arena bytes per batch for an input of strings or ragged rows when `variableLengthBytes` is not set: four times
    * what the first row needs per row of the batch, and at least this.
    */
  val MinArenaBytes: Long = 64L << 10

  /** The arena bytes of each area of `inputs` (0 for one without): `configured` when positive, else sized from the
    * partition's first row.
    */
  def arenaBytes(inputs: Seq[InputPlan], first: Option[InternalRow], batchSize: Int, configured: Long): Seq[Long] =
    inputs.flatMap(_.areas).map { in =>
      if (!in.usesArena) 0L
      else if (configured > 0) configured
      else {
        val firstRow =
          first.filterNot(_.isNullAt(in.ordinal)).map(new RowWriter(in, Long.MaxValue, 0).need).getOrElse(0L)
        math.min(math.max(MinArenaBytes, 4 * firstRow * batchSize), MaxArenaBytes)
      }
    }

  /** The runtime addresses arenas with uint32 offsets. */
  val MaxArenaBytes: Long = 0xffffffffL

  /** Bytes of one batch row in native memory, for the memory budget: entries, and the arenas' share. */
  def bytesPerRow(inputs: Seq[InputPlan], arenaBytes: Seq[Long], batchSize: Int): Long =
    inputs
      .flatMap(_.areas)
      .zip(arenaBytes)
      .map { case (in, arena) => in.entryBytes + (arena + batchSize - 1) / batchSize }
      .sum

  /** How the runtime is to lay the inputs out: name, dtype and row shape of each, arenas and pads, tf.Example features.
    */
  def layouts(inputs: Seq[InputPlan], arenaBytes: Seq[Long], pad: Double): Seq[InputLayout] = {
    val arenas = arenaBytes.iterator
    def layout(in: InputPlan): InputLayout = {
      val b = InputLayout
        .newBuilder()
        .setName(in.tensor)
        .setDtype(in.dtype.proto)
        .addAllRowShape(in.rowShape.map(Long.box).asJava)
      in.kind match {
        case ColumnKind.Examples(features) => b.addAllExampleFeatures(features.map(layout).asJava)
        case _                             => b.setArenaBytes(arenas.next())
      }
      if (in.ragged) b.setPad(ByteString.copyFrom(padBytes(in, pad)))
      b.build()
    }
    inputs.map(layout)
  }

  /** The pad value as one element of the input's dtype, or an error when it does not fit it. */
  private def padBytes(in: InputPlan, pad: Double): Array[Byte] = {
    val dtype = in.dtype
    val buffer = ByteBuffer.allocate(dtype.bytes).order(ByteOrder.LITTLE_ENDIAN)
    def integer: Long = {
      val (min, max) = dtype.range.getOrElse((Long.MinValue, Long.MaxValue))
      if (pad != pad.floor || pad < min || pad > max)
        throw new SpindleInputException(
          s"padValue $pad does not fit input '${in.tensor}' (${dtype.name}, column '${in.column}')"
        )
      pad.toLong
    }
    dtype match {
      case TensorType.Float32  => buffer.putFloat(pad.toFloat)
      case TensorType.Float64  => buffer.putDouble(pad)
      case TensorType.Float16  => buffer.putShort(HalfFloats.toFloat16(pad.toFloat))
      case TensorType.BFloat16 => buffer.putShort(HalfFloats.toBFloat16(pad.toFloat))
      case TensorType.Bool     => buffer.put((if (pad != 0) 1 else 0).toByte)
      case _ =>
        dtype.bytes match {
          case 1 => buffer.put(integer.toByte)
          case 2 => buffer.putShort(integer.toShort)
          case 4 => buffer.putInt(integer.toInt)
          case _ => buffer.putLong(integer)
        }
    }
    buffer.array()
  }
}
