package org.apache.spark

/** Spark 4's `BarrierTaskContext` timer is a daemon executor: nothing to release (see the Spark 3.5 shim). */
object SpindleBarrierShim {
  def releaseTimerAfterMain(): Unit = ()
}
