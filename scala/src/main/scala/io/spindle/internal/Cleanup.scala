package io.spindle.internal

import scala.util.control.NonFatal

/** Cleanups that cannot be skipped: a task's completion listener closes several native objects and files, and one close
  * that throws must not leave the ones after it open.
  */
object Cleanup {

  /** Runs every action in order, even when one before it throws; then rethrows the first failure, the later ones
    * attached as suppressed.
    */
  def all(actions: (() => Unit)*): Unit = {
    var first: Throwable = null
    actions.foreach { action =>
      try action()
      catch {
        case NonFatal(e) =>
          if (first == null) first = e else first.addSuppressed(e)
      }
    }
    if (first != null) throw first
  }
}
