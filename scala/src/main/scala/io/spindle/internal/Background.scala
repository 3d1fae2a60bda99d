package io.spindle.internal

import java.util.concurrent.{ExecutionException, FutureTask, TimeUnit, TimeoutException}

import scala.util.Try

import org.apache.spark.{TaskContext, TaskKilledException}

/** Work a task starts on a daemon thread of its own and joins later, so that waits and loads run side by side. */
object Background {

  /** Starts `body` on a new daemon thread named `name`. */
  def apply[T](name: String)(body: => T): FutureTask[T] = {
    val task = new FutureTask[T](() => body)
    val thread = new Thread(task, name)
    thread.setDaemon(true)
    thread.start()
    task
  }

  /** The result of `task`, rethrowing what it threw; a kill of `ctx` ends the wait (Spark's TaskKilledException). */
  def await[T](task: FutureTask[T], ctx: TaskContext): T = {
    while (!task.isDone) {
      if (ctx.isInterrupted()) throw new TaskKilledException("killed while starting")
      try task.get(100, TimeUnit.MILLISECONDS)
      catch { case _: TimeoutException | _: ExecutionException => }
    }
    try task.get()
    catch { case e: ExecutionException => throw e.getCause }
  }

  /** For cleanup: waits for `task` and returns its result, or None when it failed. */
  def result[T](task: FutureTask[T]): Option[T] = Try(task.get()).toOption
}
