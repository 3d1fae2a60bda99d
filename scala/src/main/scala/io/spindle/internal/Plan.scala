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

  /** A binary column feeding a uint8 input: each row's bytes are its values, row-major (raw pixels, serialized
    * features), of a fixed count or, for a `[batch, ?]` input, of any length (ragged).
    */
  case object Bytes extends ColumnKind

  /** A struct of Spark's image data source (`ImageSchema.columnSchema`): `height x width x nChannels` bytes in BGR
    * order, fed as they are or (`rgb`) with the first and third channels swapped.
    */
  final case class Image(rgb: Boolean) extends ColumnKind

  /** No column of its own: a serialized tf.Example per row, built in the runtime from `features` (each planned like an
    * input named after its feature, of dtype float32, int64 or string).
    */
  final case class Examples(features: Seq[InputPlan]) extends ColumnKind

  /** Scalar columns packed, in this order, into one `[batch, k]` input (`packedInputCols`): value `i` of a row comes
    * from `columns(i)`, converted from its own Spark type.
    */
  final case class Packed(columns: Seq[PackedColumn]) extends ColumnKind
}

/** One column of a [[ColumnKind.Packed]] input: its name, its ordinal in the schema and its Spark type. */
final case class PackedColumn(name: String, ordinal: Int, sparkType: DataType)

/** One signature input fed from one column (for a packed input, its first column). `rowShape` excludes the batch
  * dimension; `Seq(-1)` marks a ragged input, rows of any length that the runtime pads per batch to the batch's
  * longest.
  */
final case class InputPlan(
    tensor: String,
    column: String,
    ordinal: Int,
    kind: ColumnKind,
    dtype: TensorType,
    rowShape: Seq[Long]
) {
  def ragged: Boolean = rowShape == Seq(-1L)

  /** Bytes of one row in the batch's area: its values, or an (offset, count) pair for a ragged row. */
  def entryBytes: Long = if (ragged) 8L else rowShape.product * dtype.bytes

  /** Whether rows put values in the batch's arena (strings, ragged rows). */
  def usesArena: Boolean = ragged || dtype == TensorType.TString

  /** What is written per row, in order: this input, or a tf.Example input's features. */
  def areas: Seq[InputPlan] = kind match {
    case ColumnKind.Examples(features) => features
    case _                             => Seq(this)
  }

  /** The ordinals of the columns this input reads. */
  def ordinals: Seq[Int] = kind match {
    case ColumnKind.Examples(features) => features.flatMap(_.ordinals)
    case ColumnKind.Packed(columns)    => columns.map(_.ordinal)
    case _                             => Seq(ordinal)
  }
}

/** One signature output written to one new column: a value per row (`scalar`), a flat array, or (`nested`, for outputs
  * of known rank 3 and more) arrays nested one level per dimension after the batch. String outputs are StringType, or
  * BinaryType when `binary`.
  */
final case class OutputPlan(
    output: String,
    column: String,
    dtype: TensorType,
    scalar: Boolean,
    nested: Boolean,
    rowRank: Int,
    binary: Boolean = false
) {

  /** The Spark type of one value. */
  def valueType: DataType = if (binary) BinaryType else dtype.sparkType

  /** The column's Spark type: a value, a flat array, or arrays nested `rowRank` deep. */
  def sparkType: DataType =
    if (scalar) valueType
    else
      (1 until (if (nested) rowRank else 1)).foldLeft[DataType](ArrayType(valueType, containsNull = false))((t, _) =>
        ArrayType(t, containsNull = false)
      )
}

/** How columns become inputs and outputs become columns, beyond the mappings: outputs of rank 3 and more nested to
  * their shape, images fed in RGB order, string outputs as binary, the columns of each feature of a tf.Example input,
  * and the scalar columns packed into each `[batch, k]` input named in `packedInputs`.
  */
final case class PlanOptions(
    nestedOutputs: Boolean = false,
    rgbImages: Boolean = false,
    binaryOutputs: Set[String] = Set.empty,
    exampleFeatures: Map[String, String] = Map.empty,
    packedInputs: Map[String, Seq[String]] = Map.empty
)

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
    val outputs = outputsOf(schema, signature, outputCols, options)
    val outFields = outputs.map(o => StructField(o.column, o.sparkType, nullable = false))
    Plan(inputs, outputs, StructType(schema.fields ++ outFields))
  }

  /** The inputs of `signature` fed from `schema`: every input must have a column (mapped or of its own name), or the
    * columns packed into it (`options.packedInputs`).
    */
  def inputsOf(
      schema: StructType,
      signature: SignatureInfo,
      inputCols: Map[String, String],
      options: PlanOptions = PlanOptions()
  ): Seq[InputPlan] = {
    val sigName = signature.getName
    val specs = signature.getInputsList.asScala.toSeq
    val packed = options.packedInputs
    for ((param, names) <- Seq("inputCols" -> inputCols.keySet, "packedInputCols" -> packed.keySet)) {
      val unknown = names -- specs.map(_.getName)
      if (unknown.nonEmpty)
        throw new SpindleModelException(
          s"signature '$sigName' has no input ${unknown.toSeq.sorted.mkString("'", "', '", "'")} (named in $param; " +
            s"its inputs: ${specs.map(_.getName).mkString(", ")})"
        )
    }
    for ((input, column) <- inputCols.toSeq.sorted if packed.contains(input))
      throw new SpindleInputException(
        s"input '$input' is named in both inputCols (column '$column') and packedInputCols (columns " +
          s"${packed(input).mkString(", ")}); feed it from one of them"
      )
    val examples = exampleInput(signature, options.exampleFeatures)
    for (e <- examples; column <- inputCols.get(e.getName).orElse(packed.get(e.getName).map(_.mkString(", "))))
      throw new SpindleInputException(
        s"input '${e.getName}' takes the tf.Examples built from exampleFeatures; it cannot also be fed from column '$column'"
      )
    specs.map { spec =>
      if (examples.exists(_.getName == spec.getName)) examplesPlan(schema, spec, options.exampleFeatures)
      else if (packed.contains(spec.getName)) packedPlan(schema, sigName, spec, packed(spec.getName))
      else inputPlan(schema, sigName, spec, inputCols.getOrElse(spec.getName, spec.getName), options.rgbImages)
    }
  }

  /** Scalar columns packed into one `[batch, k]` input, k the number of columns (an input of unknown rank or of shape
    * `[batch, ?]` takes any k). Each column must be of a type the input's dtype takes, as a column of its own would be;
    * a boolean also packs into a number input, as 1 or 0 (as VectorAssembler has it). Strings are not packed.
    */
  private def packedPlan(schema: StructType, sigName: String, spec: TensorSpec, columns: Seq[String]): InputPlan = {
    val name = spec.getName
    val dtype = dtypeOf(spec, "input")
    val k = columns.size
    if (k == 0) throw new SpindleInputException(s"packedInputCols names no column for input '$name'")
    if (dtype == TensorType.TString)
      throw new SpindleInputException(
        s"input '$name' is a string input; packedInputCols packs numbers and booleans only " +
          "(feed strings with inputCols)"
      )
    val dims = spec.getShapeList.asScala.map(_.longValue).toSeq
    if (!spec.getUnknownRank) {
      if (dims.size != 2)
        throw new SpindleInputException(
          s"input '$name' of signature '$sigName' has shape ${shapeText(spec)}; packedInputCols feeds a " +
            "[batch, k] input"
        )
      if (dims(1) >= 0 && dims(1) != k)
        throw new SpindleInputException(
          s"input '$name' (${dtype.name} ${shapeText(spec)}) takes k = ${dims(1)} values per row, but " +
            s"packedInputCols packs $k columns into it"
        )
    }
    val planned = columns.map { column =>
      val ordinal = columnOrdinal(schema, column, s"input '$name' of signature '$sigName', in packedInputCols")
      val colType = schema(ordinal).dataType
      val numeric = dtype != TensorType.Bool
      if (!TensorType.accepts(dtype, colType) && !(colType == BooleanType && numeric))
        throw new SpindleInputException(
          s"column '$column' packed into input '$name' (${dtype.name} ${shapeText(spec)}) is " +
            s"${colType.simpleString}, which ${dtype.name} does not take; packedInputCols packs scalar numbers and " +
            "booleans of types the dtype takes (no strings, arrays or vectors)"
        )
      PackedColumn(column, ordinal, colType)
    }
    InputPlan(name, columns.head, planned.head.ordinal, ColumnKind.Packed(planned), dtype, Seq(k.toLong))
  }

  /** The input that takes serialized tf.Examples, when features are given: the signature's one string input. */
  private def exampleInput(signature: SignatureInfo, features: Map[String, String]): Option[TensorSpec] =
    if (features.isEmpty) None
    else
      signature.getInputsList.asScala.filter(_.getDtype == TensorType.TString.proto).toSeq match {
        case Seq(one) if one.getUnknownRank || one.getShapeCount == 1 => Some(one)
        case found =>
          throw new SpindleModelException(
            s"exampleFeatures needs a signature with one string input of shape [batch] for serialized tf.Examples; " +
              s"signature '${signature.getName}' has ${found.size} string inputs " +
              found.map(s => s"${s.getName} ${shapeText(s)}").mkString("(", ", ", ")")
          )
      }

  /** One feature per column: numbers as float32 (FloatList) or int64 (Int64List), strings as bytes (BytesList); a value
    * per row, or an array of any length.
    */
  private def examplesPlan(schema: StructType, spec: TensorSpec, features: Map[String, String]): InputPlan = {
    val planned = features.toSeq.sorted.map { case (feature, column) =>
      val ordinal = columnOrdinal(schema, column, s"feature '$feature' of input '${spec.getName}'")
      val colType = schema(ordinal).dataType
      val (kind, element) = colType match {
        case VectorType      => (ColumnKind.Vector, DoubleType)
        case ArrayType(e, _) => (ColumnKind.Array(e), e)
        case t               => (ColumnKind.Scalar(t), t)
      }
      val dtype = element match {
        case FloatType | DoubleType                        => TensorType.Float32
        case ByteType | ShortType | IntegerType | LongType => TensorType.Int64
        case StringType | BinaryType                       => TensorType.TString
        case other =>
          throw new SpindleInputException(
            s"column '$column' for feature '$feature' of input '${spec.getName}' is ${colType.simpleString}; a " +
              "tf.Example feature takes numbers, strings or binary, one per row or an array of them"
          )
      }
      if (dtype == TensorType.TString && kind != ColumnKind.Scalar(element))
        throw new SpindleInputException(
          s"column '$column' for feature '$feature' of input '${spec.getName}' is ${colType.simpleString}; " +
            "Spindle builds string features from one string per row"
        )
      val rowShape = if (kind == ColumnKind.Scalar(element)) Seq.empty[Long] else Seq(-1L)
      InputPlan(feature, column, ordinal, kind, dtype, rowShape)
    }
    InputPlan(spec.getName, "", -1, ColumnKind.Examples(planned), TensorType.TString, Seq.empty)
  }

  private def columnOrdinal(schema: StructType, column: String, what: String): Int = {
    val ordinal = schema.fieldNames.indexOf(column)
    if (ordinal < 0)
      throw new SpindleInputException(
        s"column '$column' (for $what) does not exist; columns: ${schema.fieldNames.mkString(", ")}"
      )
    ordinal
  }

  private def inputPlan(
      schema: StructType,
      sigName: String,
      spec: TensorSpec,
      column: String,
      rgbImages: Boolean
  ): InputPlan = {
    val ordinal = columnOrdinal(schema, column, s"input '${spec.getName}' of signature '$sigName'")
    val colType = schema(ordinal).dataType
    val dtype = dtypeOf(spec, "input")
    val what = s"column '$column' for input '${spec.getName}' (${dtype.name} ${shapeText(spec)})"
    if (isImage(colType)) imagePlan(spec, column, ordinal, dtype, what, rgbImages)
    else if (colType == BinaryType && dtype == TensorType.UInt8) bytesPlan(spec, column, ordinal, what)
    else columnPlan(spec, column, ordinal, colType, dtype, what)
  }

  private def outputsOf(
      schema: StructType,
      signature: SignatureInfo,
      outputCols: Map[String, String],
      options: PlanOptions
  ): Seq[OutputPlan] = {
    val sigName = signature.getName
    val outSpecs = signature.getOutputsList.asScala.toSeq
    val notStrings =
      options.binaryOutputs.filterNot(b =>
        outSpecs.exists(s => s.getName == b && s.getDtype == TensorType.TString.proto)
      )
    if (notStrings.nonEmpty)
      throw new SpindleInputException(
        s"binaryOutputs names ${notStrings.toSeq.sorted.mkString("'", "', '", "'")}, which signature '$sigName' has " +
          s"no string output of; its string outputs: " +
          outSpecs.filter(_.getDtype == TensorType.TString.proto).map(_.getName).mkString(", ")
      )
    val wanted = if (outputCols.isEmpty) outSpecs.map(s => s.getName -> s.getName) else outputCols.toSeq.sorted
    val outputs = wanted.map { case (name, column) =>
      val spec = outSpecs.find(_.getName == name).getOrElse {
        throw new SpindleModelException(
          s"signature '$sigName' has no output '$name' (its outputs: ${outSpecs.map(_.getName).mkString(", ")})"
        )
      }
      if (schema.fieldNames.contains(column))
        throw new SpindleInputException(s"output column '$column' (for output '$name') already exists")
      outputPlan(spec, column, options.nestedOutputs, options.binaryOutputs(name))
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
      case _                       => BinaryType // not reached: images, bytes and examples are planned on their own
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
      case _ if dtype == TensorType.TString && rowShape.contains(-1L) =>
        throw new SpindleInputException(
          s"$what: a string input needs the same number of strings in every row (every dimension but the batch known)"
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

  // Rank 2 takes a row's bytes as they are, ragged when the row length is unknown; a higher rank takes them row-major
  // when every dimension is known (raw h x w x c pixels).
  private def bytesPlan(spec: TensorSpec, column: String, ordinal: Int, what: String): InputPlan = {
    val dims = spec.getShapeList.asScala.map(_.longValue).toSeq
    val rowShape =
      if (spec.getUnknownRank) Seq(-1L)
      else if (dims.size == 2 || (dims.size > 2 && dims.tail.forall(_ >= 0))) dims.tail
      else
        throw new SpindleInputException(
          s"$what: a binary column feeds a uint8 input of shape [batch, n] or [batch, ?] (its bytes, ragged for ?), " +
            "or one with every dimension but the batch known (the bytes row-major)"
        )
    InputPlan(spec.getName, column, ordinal, ColumnKind.Bytes, TensorType.UInt8, rowShape)
  }

  private def outputPlan(spec: TensorSpec, column: String, nested: Boolean, binary: Boolean): OutputPlan = {
    val dtype = dtypeOf(spec, "output")
    if (!spec.getUnknownRank && spec.getShapeCount == 0)
      throw new SpindleModelException(s"output '${spec.getName}' is a scalar per batch, not one value per row")
    // An output of unknown rank has no schema to nest into: it stays flat.
    val nestable = nested && !spec.getUnknownRank && spec.getShapeCount >= 3
    val scalar = !spec.getUnknownRank && spec.getShapeCount == 1
    OutputPlan(spec.getName, column, dtype, scalar, nestable, rowRank = spec.getShapeCount - 1, binary)
  }
}
