package io.spindle.internal

/** 16-bit floats as TensorFlow stores them: IEEE half precision ([[IeeeHalf]], per Spark line) and bfloat16 (the top
  * half of a float32), both rounded to nearest even when narrowed.
  */
object HalfFloats {
  def toFloat16(v: Float): Short = IeeeHalf.fromFloat(v)

  def fromFloat16(bits: Short): Float = IeeeHalf.toFloat(bits)

  def toBFloat16(v: Float): Short =
    if (v.isNaN) 0x7fc0.toShort
    else {
      val bits = java.lang.Float.floatToRawIntBits(v)
      ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16).toShort
    }

  def fromBFloat16(bits: Short): Float = java.lang.Float.intBitsToFloat((bits & 0xffff) << 16)
}
