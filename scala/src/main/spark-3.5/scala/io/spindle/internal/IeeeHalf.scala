package io.spindle.internal

import java.lang.Float.{floatToRawIntBits, intBitsToFloat}

/** IEEE half precision, rounded to nearest even. Spark 3.5's classpath has Arrow 12, which lacks `Float16` (Arrow 15),
  * and Java 17 lacks `Float.floatToFloat16` (Java 20), so the two conversions are written out here; DtypesSuite checks
  * them against TensorFlow's own float16 casts.
  */
private[internal] object IeeeHalf {
  def fromFloat(v: Float): Short = {
    val bits = floatToRawIntBits(v)
    val sign = (bits >>> 16) & 0x8000
    val abs = bits & 0x7fffffff
    val half =
      if (abs >= 0x7f800000) { if (abs > 0x7f800000) 0x7e00 else 0x7c00 } // NaN (quiet) or infinity
      else if (abs >= 0x477ff000) 0x7c00 // 65520 and above round to infinity
      else if (abs >= 0x38800000) { // a normal half: rebias the exponent, round the 13 dropped bits to even
        val rounded = abs + 0xfff + ((abs >>> 13) & 1)
        (rounded - 0x38000000) >>> 13
      } else { // a subnormal half or zero: count units of 2^-24, rounding to even
        val exponent = abs >>> 23
        if (exponent < 102) 0 // below 2^-25
        else {
          val mantissa = (abs & 0x7fffff) | 0x800000
          val shift = 126 - exponent
          val units = mantissa >>> shift
          val rest = mantissa & ((1 << shift) - 1)
          val midway = 1 << (shift - 1)
          if (rest > midway || (rest == midway && (units & 1) == 1)) units + 1 else units
        }
      }
    (sign | half).toShort
  }

  def toFloat(bits: Short): Float = {
    val h = bits & 0xffff
    val sign = (h & 0x8000) << 16
    val exponent = (h >>> 10) & 0x1f
    val mantissa = h & 0x3ff
    if (exponent == 0) {
      val magnitude = mantissa * java.lang.Math.scalb(1f, -24) // exact: at most 10 significant bits
      if (sign != 0) -magnitude else magnitude
    } else if (exponent == 31) intBitsToFloat(sign | 0x7f800000 | (mantissa << 13))
    else intBitsToFloat(sign | ((exponent + 112) << 23) | (mantissa << 13))
  }
}
