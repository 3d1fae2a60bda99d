package io.spindle.internal

import scala.util.control.NonFatal

import org.apache.spark.TaskContext
import org.slf4j.LoggerFactory

/** Stops a task's native waits when Spark kills the task.
  *
  * Spark kills a barrier task (its stage cancelled after an executor loss, `sc.cancelJobGroup` from a notebook, a
  * speculative duplicate) by setting the task's interrupted flag, without interrupting its thread ("interruptThread:
  * false"). A task blocked in the runtime (a ring read, a full window queue, the wait for the trainer) never looks at
  * that flag. This daemon thread does, every 100 ms, and runs `onKill` once: it closes the native objects, so that
  * every native wait returns at once with an error and the task ends. [[close]] stops the thread; idempotent.
  */
final class KillSwitch(ctx: TaskContext, label: String, onKill: () => Unit) extends AutoCloseable {
  @volatile private var running = true

  private val thread = new Thread(
    () =>
      try {
        while (running && !ctx.isInterrupted()) Thread.sleep(KillSwitch.PollMs)
        if (running) {
          LoggerFactory
            .getLogger(getClass)
            .warn(s"$label: the task was killed; closing its runtime")
          onKill()
        }
      } catch {
        case _: InterruptedException =>
        case NonFatal(e)             => LoggerFactory.getLogger(getClass).warn(s"$label: closing after a kill", e)
      },
    s"spindle-kill-switch $label"
  )
  thread.setDaemon(true)
  thread.start()

  override def close(): Unit = if (running) {
    running = false
    thread.interrupt()
    thread.join()
  }
}

object KillSwitch {
  private val PollMs = 100L
}
