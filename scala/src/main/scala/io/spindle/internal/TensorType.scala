package io.spindle.internal

import org.apache.spark.sql.types._

import io.spindle.proto.DType

/** The tensor element types Spindle moves between Spark and TensorFlow.
  *
  * @param bytes
  *   bytes of one entry in a batch: the value, or for strings an (offset, length) pair into the batch's arena
  * @param sparkType
  *   the Spark type of an output value: the narrowest one that holds every value (uint8 and uint16 as int, uint32 as
  *   long, half precision as float)
  * @param sameLayout
  *   the Spark type whose values lie in memory exactly as this dtype's, so arrays of it are copied in bulk both ways
  * @param range
  *   for integer dtypes, the values a Spark integer may take to feed it (checked per value)
  */
sealed abstract class TensorType(
    val proto: DType,
    val bytes: Int,
    val sparkType: DataType,
    val isFloat: Boolean,
    val sameLayout: Option[DataType],
    val range: Option[(Long, Long)]
) extends Serializable { // plans travel to executors; on Scala 2.12 a case object's superclass must be serializable
  def name: String = proto.name.toLowerCase
}

object TensorType {
  case object Float32 extends TensorType(DType.FLOAT32, 4, FloatType, true, Some(FloatType), None)
  case object Float64 extends TensorType(DType.FLOAT64, 8, DoubleType, true, Some(DoubleType), None)
  case object Float16 extends TensorType(DType.FLOAT16, 2, FloatType, true, None, None)
  case object BFloat16 extends TensorType(DType.BFLOAT16, 2, FloatType, true, None, None)
  case object Int32
      extends TensorType(DType.INT32, 4, IntegerType, false, Some(IntegerType), Some((Int.MinValue, Int.MaxValue)))
  case object Int64
      extends TensorType(DType.INT64, 8, LongType, false, Some(LongType), Some((Long.MinValue, Long.MaxValue)))
  case object Bool extends TensorType(DType.BOOL, 1, BooleanType, false, Some(BooleanType), None)
  case object Int8 extends TensorType(DType.INT8, 1, ByteType, false, Some(ByteType), Some((-128L, 127L)))
  case object Int16 extends TensorType(DType.INT16, 2, ShortType, false, Some(ShortType), Some((-32768L, 32767L)))
  case object UInt8 extends TensorType(DType.UINT8, 1, IntegerType, false, None, Some((0L, 255L)))
  case object UInt16 extends TensorType(DType.UINT16, 2, IntegerType, false, None, Some((0L, 65535L)))
  case object UInt32 extends TensorType(DType.UINT32, 4, LongType, false, None, Some((0L, 4294967295L)))
  // A Spark long holds uint64 values up to 2^63 - 1; an output above that is an error naming it.
  case object UInt64 extends TensorType(DType.UINT64, 8, LongType, false, None, Some((0L, Long.MaxValue)))
  // TensorFlow's tstring. Output strings become StringType columns, or BinaryType ones when asked (SpindleModel.setBinaryOutputs).
  case object TString extends TensorType(DType.STRING, 8, StringType, false, None, None)

  val all: Seq[TensorType] =
    Seq(Float32, Float64, Float16, BFloat16, Int32, Int64, Bool, Int8, Int16, UInt8, UInt16, UInt32, UInt64, TString)

  def fromProto(d: DType): Option[TensorType] = all.find(_.proto == d)

  /** TensorFlow's own name of a dtype given as its enum name (`DT_FLOAT` -> `float32`, `DT_STRING` -> `string`), as
    * `tf.dtypes` prints it; for every dtype, moved by Spindle or not.
    */
  def tfName(enumName: String): String = enumName match {
    case "DT_FLOAT"  => "float32"
    case "DT_DOUBLE" => "float64"
    case "DT_HALF"   => "float16"
    case other       => other.stripPrefix("DT_").toLowerCase
  }

  private val integers: Set[DataType] = Set(ByteType, ShortType, IntegerType, LongType)

  /** Whether Spark values of `source` can feed `target` without losing integers or inventing precision: int32 and int64
    * take only integer columns that always fit; the other integer dtypes take any integer column, and a value out of
    * their range is an error naming it; strings take string and binary columns, as their bytes.
    */
  def accepts(target: TensorType, source: DataType): Boolean = (target, source) match {
    case (TString, s)                                => s == StringType || s == BinaryType
    case (_, StringType | BinaryType)                => false
    case (t, s) if t.isFloat                         => s.isInstanceOf[NumericType] && !s.isInstanceOf[DecimalType]
    case (Bool, s)                                   => s == BooleanType
    case (Int32, ByteType | ShortType | IntegerType) => true
    case (Int32, _)                                  => false
    case (Int64, s)                                  => integers(s)
    case (_, s)                                      => integers(s)
  }
}
