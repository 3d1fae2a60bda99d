package org.apache.spark

/** Spark-private calls the suites need. */
object SpindleTestShim {

  /** Waits until the listener bus has delivered every event posted so far. */
  def waitForListeners(sc: SparkContext): Unit = sc.listenerBus.waitUntilEmpty()
}
