package io.spindle.internal

import org.apache.arrow.memory.util.Float16

/** IEEE half precision through Arrow's `Float16` (Arrow 15+, on Spark 4's classpath), rounded to nearest even. */
private[internal] object IeeeHalf {
  def fromFloat(v: Float): Short = Float16.toFloat16(v)

  def toFloat(bits: Short): Float = Float16.toFloat(bits)
}
