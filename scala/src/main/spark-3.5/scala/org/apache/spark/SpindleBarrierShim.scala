package org.apache.spark

import java.util.concurrent.atomic.AtomicBoolean

import scala.jdk.CollectionConverters._
import scala.util.control.NonFatal

/** Spark 3.5's `BarrierTaskContext` keeps a non-daemon `java.util.Timer` (Spark 4 made it a daemon executor). In a JVM
  * that ran a barrier task, such as a local-mode spark-shell or spark-submit driver, it keeps the JVM alive after
  * `main` returns: `:quit` never ends the shell. Once this JVM's main thread has ended, a daemon thread cancels it.
  */
object SpindleBarrierShim {
  private val watching = new AtomicBoolean(false)

  def releaseTimerAfterMain(): Unit =
    if (watching.compareAndSet(false, true))
      Thread.getAllStackTraces.keySet.asScala.find(_.getName == "main").foreach { main =>
        val watcher = new Thread(
          () => {
            main.join()
            try
              BarrierTaskContext.getClass
                .getMethod("org$apache$spark$BarrierTaskContext$$timer")
                .invoke(BarrierTaskContext)
                .asInstanceOf[java.util.Timer]
                .cancel()
            catch { case NonFatal(e) => System.err.println(s"Spindle could not stop Spark's barrier timer: $e") }
          },
          "spindle-barrier-timer-release"
        )
        watcher.setDaemon(true)
        watcher.start()
      }
}
