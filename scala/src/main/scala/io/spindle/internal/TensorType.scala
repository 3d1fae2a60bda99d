package io.spindle.internal

import org.apache.spark.sql.types._

import io.spindle.proto.DType

/** The tensor element types Spindle moves between Spark and TensorFlow. */
sealed abstract class TensorType(val proto: DType, val bytes: Int, val sparkType: DataType, val isFloat: Boolean) {
  def name: String = proto.name.toLowerCase
}

object TensorType {
  case object Float32 extends TensorType(DType.FLOAT32, 4, FloatType, true)
  case object Float64 extends TensorType(DType.FLOAT64, 8, DoubleType, true)
  case object Int32 extends TensorType(DType.INT32, 4, IntegerType, false)
  case object Int64 extends TensorType(DType.INT64, 8, LongType, false)

  val all: Seq[TensorType] = Seq(Float32, Float64, Int32, Int64)

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

  /** Whether Spark values of `source` convert to `target` without losing integers or inventing precision. */
  def accepts(target: TensorType, source: DataType): Boolean = (target, source) match {
    case (t, s) if t.isFloat                         => s.isInstanceOf[NumericType] && !s.isInstanceOf[DecimalType]
    case (Int32, ByteType | ShortType | IntegerType) => true
    case (Int64, ByteType | ShortType | IntegerType | LongType) => true
    case _                                                      => false
  }
}
