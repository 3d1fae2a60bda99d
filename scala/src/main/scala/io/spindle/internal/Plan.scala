package io.spindle.internal

import scala.jdk.CollectionConverters._

import org.apache.spark.ml.image.ImageSchema
import org.apache.spark.ml.linalg.SQLDataTypes.VectorType
import org.apache.spark.sql.types._

import io.spindle.{SpindleInputException, SpindleModelException}
import io.spindle.proto.{SignatureInfo, TensorSpec}

/** How a DataFrame column holds the values of one input tensor. */
sealed trait ColumnKind extends Serializable
object ColumnKind {

  /** One number per row. */
  final case class Scalar(sparkType: DataType) extends ColumnKind

  /** A fixed-length array per row (length checked on every row). */
  final case class Array(elementType: DataType) extends ColumnKind

  /** Arrays nested `depth` deep (`array<array<...>>`), one level per dimension after the batch, each level's length
    * checked on every row.
    */
  final case class Nested(depth: Int, elementType: DataType) extends ColumnKind

  /** A Spark ML vector per row, dense or sparse. */
  case object Vector extends ColumnKind

  /** A struct of Spark's image data source (`ImageSchema.columnSchema`): `height x width x nChannels` bytes in BGR
    * order, fed as they are or (`rgb`) with the first and third channels swapped.
    */
  final case class Image(rgb: Boolean) extends ColumnKind
}

/** One signature input fed from one column. `rowShape` excludes the batch dimension; -1 marks a dimension learned from
  * the first row of each partition.
  */
final case class InputPlan(
    tensor: String,
    column: String,
    ordinal: Int,
    kind: ColumnKind,
    dtype: TensorType,
    rowShape: Seq[Long]
) {
  def elementsPerRow: Long = rowShape.product
}

/** One signature output written to one new column: a number per row (`scalar`), a flat array, or (`nested`, for outputs
  * of known rank 3 and more) arrays nested one level per dimension after the batch.
  */
final case class OutputPlan(
    output: String,
    column: String,
    dtype: TensorType,
    scalar: Boolean,
    nested: Boolean,
    rowRank: Int
) {

  /** The column's Spark type: a number, a flat array, or arrays nested `rowRank` deep. */
  def sparkType: DataType =
    if (scalar) dtype.sparkType
    else
      (1 until (if (nested) rowRank else 1)).foldLeft[DataType](ArrayType(dtype.sparkType, containsNull = false))(
        (t, _) => ArrayType(t, containsNull = false)
      )
}

/** How columns become inputs and outputs become columns, beyond the mappings: outputs of rank 3 and more nested to
  * their shape, images fed in RGB order.
  */
final case class PlanOptions(nestedOutputs: Boolean = false, rgbImages: Boolean = false)

/** The checked mapping between a DataFrame schema and a signature: what `transformSchema` validates. */
final case class Plan(inputs: Seq[InputPlan], outputs: Seq[OutputPlan], schema: StructType)

object Plan {

  /** Checks `schema` against `signature` and returns the plan, or throws naming column, tensor, expected and actual
    * dtype or shape.
    */
  def build(
      schema: StructType,
      signature: SignatureInfo,
      inputCols: Map[String, String],
      outputCols: Map[String, String],
      options: PlanOptions
  ): Plan = {
    val inputs = inputsOf(schema, signature, inputCols, options)
    val outputs = outputsOf(schema, signature, outputCols, options.nestedOutputs)
    val outFields = outputs.map(o => StructField(o.column, o.sparkType, nullable = false))
    Plan(inputs, outputs, StructType(schema.fields ++ outFields))
  }

  /** The inputs of `signature` fed from `schema`: every input must have a column (mapped or of its own name). */
  def inputsOf(
      schema: StructType,
      signature: SignatureInfo,
      inputCols: Map[String, String],
      options: PlanOptions = PlanOptions()
  ): Seq[InputPlan] = {
    val sigName = signature.getName
    val specs = signature.getInputsList.asScala.toSeq
    val unknown = inputCols.keySet -- specs.map(_.getName)
    if (unknown.nonEmpty)
      throw new SpindleModelException(
        s"signature '$sigName' has no input ${unknown.toSeq.sorted.mkString("'", "', '", "'")} " +
          s"(its inputs: ${specs.map(_.getName).mkString(", ")})"
      )
    specs.map { spec =>
      val column = inputCols.getOrElse(spec.getName, spec.getName)
      val ordinal = schema.fieldNames.indexOf(column)
      if (ordinal < 0)
        throw new SpindleInputException(
          s"column '$column' (for input '${spec.getName}' of signature '$sigName') does not exist; " +
            s"columns: ${schema.fieldNames.mkString(", ")}"
        )
      inputPlan(spec, column, ordinal, schema(ordinal).dataType, options.rgbImages)
    }
  }

  private def outputsOf(
      schema: StructType,
      signature: SignatureInfo,
      outputCols: Map[String, String],
      nested: Boolean
  ): Seq[OutputPlan] = {
    val sigName = signature.getName
    val outSpecs = signature.getOutputsList.asScala.toSeq
    val wanted = if (outputCols.isEmpty) outSpecs.map(s => s.getName -> s.getName) else outputCols.toSeq.sorted
    val outputs = wanted.map { case (name, column) =>
      val spec = outSpecs.find(_.getName == name).getOrElse {
        throw new SpindleModelException(
          s"signature '$sigName' has no output '$name' (its outputs: ${outSpecs.map(_.getName).mkString(", ")})"
        )
      }
      if (schema.fieldNames.contains(column))
        throw new SpindleInputException(s"output column '$column' (for output '$name') already exists")
      outputPlan(spec, column, nested)
    }
    val dupes = outputs.groupBy(_.column).collect { case (c, os) if os.size > 1 => c }
    if (dupes.nonEmpty) throw new SpindleInputException(s"output column(s) ${dupes.mkString(", ")} named twice")
    outputs
  }

  private def dtypeOf(spec: TensorSpec, what: String): TensorType =
    TensorType.fromProto(spec.getDtype).getOrElse {
      throw new SpindleModelException(
        s"$what '${spec.getName}' has dtype ${TensorType.tfName(spec.getTfDtype)}; Spindle supports " +
          TensorType.all.map(_.name).mkString(", ")
      )
    }

  private def shapeText(spec: TensorSpec): String =
    if (spec.getUnknownRank) "unknown rank"
    else spec.getShapeList.asScala.map(d => if (d < 0) "?" else d.toString).mkString("[", ", ", "]")

  private def inputPlan(
      spec: TensorSpec,
      column: String,
      ordinal: Int,
      colType: DataType,
      rgbImages: Boolean
  ): InputPlan = {
    val dtype = dtypeOf(spec, "input")
    val what = s"column '$column' for input '${spec.getName}' (${dtype.name} ${shapeText(spec)})"
    if (isImage(colType)) imagePlan(spec, column, ordinal, dtype, what, rgbImages)
    else columnPlan(spec, column, ordinal, colType, dtype, what)
  }

  private def columnPlan(
      spec: TensorSpec,
      column: String,
      ordinal: Int,
      colType: DataType,
      dtype: TensorType,
      what: String
  ): InputPlan = {
    val kind = colType match {
      case VectorType => ColumnKind.Vector
      case ArrayType(ArrayType(_, _), _) =>
        def nest(t: DataType, depth: Int): ColumnKind = t match {
          case ArrayType(e, _) => nest(e, depth + 1)
          case e               => ColumnKind.Nested(depth, e)
        }
        nest(colType, 0)
      case ArrayType(e, _) => ColumnKind.Array(e)
      case t               => ColumnKind.Scalar(t)
    }
    val elementType = kind match {
      case ColumnKind.Vector       => DoubleType
      case ColumnKind.Array(e)     => e
      case ColumnKind.Nested(_, e) => e
      case ColumnKind.Scalar(t)    => t
      case ColumnKind.Image(_)     => BinaryType // not reached: image columns are planned by imagePlan
    }
    if (!TensorType.accepts(dtype, elementType))
      throw new SpindleInputException(s"$what: expected dtype ${dtype.name}, but the column is ${colType.simpleString}")
    if (kind == ColumnKind.Vector && !dtype.isFloat)
      throw new SpindleInputException(s"$what: a vector column holds doubles, which ${dtype.name} cannot take")
    val dims = spec.getShapeList.asScala.map(_.longValue).toSeq
    val rowShape: Seq[Long] =
      if (spec.getUnknownRank) kind match {
        case ColumnKind.Scalar(_) => Seq.empty
        case _                    => Seq(-1L)
      }
      else {
        if (dims.isEmpty)
          throw new SpindleModelException(
            s"input '${spec.getName}' is a scalar per batch, not a tensor with a batch dimension"
          )
        dims.tail
      }
    kind match {
      case ColumnKind.Scalar(_) if rowShape.product != 1 || rowShape.contains(-1L) =>
        throw new SpindleInputException(
          s"$what: expected an array or vector of ${rowShape.mkString("x")} per row, but the column holds one number"
        )
      case ColumnKind.Array(_) | ColumnKind.Vector | ColumnKind.Nested(_, _) if rowShape.isEmpty =>
        throw new SpindleInputException(
          s"$what: expected one number per row, but the column is ${colType.simpleString}"
        )
      case ColumnKind.Nested(depth, _) if depth != rowShape.size || rowShape.contains(-1L) =>
        throw new SpindleInputException(
          s"$what: the column nests arrays $depth deep (${colType.simpleString}); an input of ${rowShape.size} " +
            "known dimensions after the batch takes arrays nested that deep, one level per dimension, or a flat array " +
            "in row-major order"
        )
      case _ if rowShape.count(_ < 0) > 1 || (rowShape.contains(-1L) && rowShape.size > 1) =>
        throw new SpindleModelException(
          s"input '${spec.getName}' has shape ${shapeText(spec)}; Spindle needs every dimension but the batch known, or rank 2"
        )
      case _ =>
    }
    InputPlan(spec.getName, column, ordinal, kind, dtype, rowShape)
  }

  // Spark's image struct, whatever the nullability the source gave its fields.
  private def isImage(t: DataType): Boolean = t match {
    case s: StructType =>
      s.fields.map(f => f.name -> f.dataType).toSeq == ImageSchema.columnSchema.fields
        .map(f => f.name -> f.dataType)
        .toSeq
    case _ => false
  }

  private def imagePlan(
      spec: TensorSpec,
      column: String,
      ordinal: Int,
      dtype: TensorType,
      what: String,
      rgb: Boolean
  ): InputPlan = {
    val dims = spec.getShapeList.asScala.map(_.longValue).toSeq
    if (dtype != TensorType.UInt8)
      throw new SpindleInputException(s"$what: an image column holds uint8 pixels, which ${dtype.name} does not take")
    if (spec.getUnknownRank || dims.size != 4 || dims.tail.exists(_ < 0))
      throw new SpindleInputException(
        s"$what: an image column feeds a [batch, height, width, channels] input with every size but the batch known"
      )
    InputPlan(spec.getName, column, ordinal, ColumnKind.Image(rgb), dtype, dims.tail)
  }

  private def outputPlan(spec: TensorSpec, column: String, nested: Boolean): OutputPlan = {
    val dtype = dtypeOf(spec, "output")
    if (!spec.getUnknownRank && spec.getShapeCount == 0)
      throw new SpindleModelException(s"output '${spec.getName}' is a scalar per batch, not one value per row")
    // An output of unknown rank has no schema to nest into: it stays flat.
    val nestable = nested && !spec.getUnknownRank && spec.getShapeCount >= 3
    val scalar = !spec.getUnknownRank && spec.getShapeCount == 1
    OutputPlan(spec.getName, column, dtype, scalar, nestable, rowRank = spec.getShapeCount - 1)
  }
}
