package io.spindle.internal

import org.apache.spark.sql.catalyst.InternalRow

import io.spindle.SpindleInputException

/** Row shapes of an input for one partition: unknown inner dimensions come from the partition's first row. */
object RowShapes {
  def of(in: InputPlan, first: Option[InternalRow]): Seq[Long] =
    if (!in.rowShape.contains(-1L)) in.rowShape
    else
      first match {
        // An empty partition writes nothing: any positive size will do.
        case None => in.rowShape.map(d => if (d < 0) 1L else d)
        case Some(row) if row.isNullAt(in.ordinal) =>
          throw new SpindleInputException(
            s"column '${in.column}' (input '${in.tensor}'), first row of the partition: value is null"
          )
        case Some(row) =>
          Seq(in.kind match {
            case ColumnKind.Vector => row.getStruct(in.ordinal, 4).getInt(1).toLong
            case _                 => row.getArray(in.ordinal).numElements().toLong
          })
      }
}
