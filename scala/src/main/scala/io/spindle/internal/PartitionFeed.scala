package io.spindle.internal

import org.apache.spark.sql.catalyst.InternalRow
import org.apache.spark.sql.vectorized.ColumnarBatch

/** One training task's rows as its input gives them: rows, or column batches (when the DataFrame's plan ends in them,
  * [[org.apache.spark.sql.SpindleSqlShim.columnarBatches]]). Either way a batch window is filled to `batchSize` rows
  * while rows remain, so the batches training sees do not depend on how the input is laid out.
  */
sealed trait PartitionFeed {

  /** The partition's first row (arenas are sized from it), if any; reading it consumes nothing. */
  def first: Option[InternalRow]

  def hasNext: Boolean

  /** Starts a batch at `base` and writes up to `batchSize` rows into it; `rowNumber` is the first's index within the
    * partition. Returns the rows written.
    */
  def fill(writer: BatchWriter, base: Long, batchSize: Int, rowNumber: Long): Int
}

object PartitionFeed {

  def rows(rows: Iterator[InternalRow]): PartitionFeed = new Rows(rows.buffered)

  def batches(batches: Iterator[ColumnarBatch]): PartitionFeed = new Batches(batches)

  private final class Rows(rows: scala.collection.BufferedIterator[InternalRow]) extends PartitionFeed {
    override def first: Option[InternalRow] = rows.headOption
    override def hasNext: Boolean = rows.hasNext
    override def fill(writer: BatchWriter, base: Long, batchSize: Int, rowNumber: Long): Int =
      writer.fill(base, rows, batchSize, rowNumber)
  }

  // A window may take the rows of several column batches; the input reuses its vectors, so a batch is read to its
  // end before the next is asked for.
  private final class Batches(input: Iterator[ColumnarBatch]) extends PartitionFeed {
    private var batch: ColumnarBatch = _
    private var cursor = 0

    // Moves to a batch with rows left, if any.
    private def ready(): Boolean = {
      while ((batch == null || cursor >= batch.numRows()) && input.hasNext) {
        batch = input.next()
        cursor = 0
      }
      batch != null && cursor < batch.numRows()
    }

    override def first: Option[InternalRow] = if (ready()) Some(batch.getRow(cursor)) else None
    override def hasNext: Boolean = ready()
    override def fill(writer: BatchWriter, base: Long, batchSize: Int, rowNumber: Long): Int = {
      writer.start(base)
      var n = 0
      var more = true
      while (n < batchSize && more && ready()) {
        val written = writer.writeColumns(batch, cursor, batchSize - n, n, rowNumber + n)
        cursor += written
        n += written
        // Rows left in this batch that were not written: the next one does not fit the window's arenas.
        more = cursor >= batch.numRows()
      }
      n
    }
  }
}
