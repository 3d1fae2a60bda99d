package io.spindle.internal

import scala.collection.mutable
import scala.util.control.NonFatal

import org.slf4j.{Logger, LoggerFactory}

import io.spindle.jni.NativeRuntime
import io.spindle.proto.LogBatch

/** Carries the native runtime's log lines into slf4j, so the user's log4j config filters and formats them with the
  * JVM's own. One daemon thread per JVM takes them in batches ([[NativeRuntime.nextLogs]]) and logs each, at its level,
  * through the logger of its Rust module under [[Root]]: `spindle_runtime::trainer` logs as
  * `io.spindle.native.spindle_runtime.trainer`.
  *
  * The runtime formats no line more verbose than logger [[Root]]'s level, which the thread re-reads after every batch
  * (at least once a second), so a change of level (`sc.setLogLevel`, a log4j reconfiguration) reaches the runtime at
  * once; a module's logger may filter further, but not widen what `io.spindle.native` lets through.
  */
object NativeLogs {
  val Root = "io.spindle.native"
  private val root = LoggerFactory.getLogger(Root)
  private var started = false
  @volatile private var current = ""

  /** The most verbose level logger [[Root]] takes, as the runtime names it. */
  def level: String =
    if (root.isTraceEnabled) "trace"
    else if (root.isDebugEnabled) "debug"
    else if (root.isInfoEnabled) "info"
    else if (root.isWarnEnabled) "warn"
    else if (root.isErrorEnabled) "error"
    else "off"

  /** Hands logger [[Root]]'s level to the runtime now, if it changed (the log thread does after every batch). */
  def refreshLevel(): Unit = synchronized {
    val now = level
    if (now != current) {
      NativeRuntime.setLogLevel(now)
      current = now
    }
  }

  /** Starts the thread; once per JVM, after `NativeRuntime.init`. */
  def start(): Unit = synchronized {
    if (!started) {
      current = level
      val thread = new Thread(() => drain(), "spindle-native-logs")
      thread.setDaemon(true)
      thread.start()
      started = true
    }
  }

  private def drain(): Unit = {
    val loggers = mutable.HashMap.empty[String, Logger]
    while (true) {
      try {
        val batch = LogBatch.parseFrom(NativeRuntime.nextLogs(1000, 1000))
        if (batch.getDropped > 0)
          root.warn(
            s"${batch.getDropped} native log lines were dropped: the runtime logged faster than they were taken"
          )
        batch.getLinesList.forEach { line =>
          val logger =
            loggers.getOrElseUpdate(
              line.getTarget,
              LoggerFactory.getLogger(s"$Root.${line.getTarget.replace("::", ".")}")
            )
          line.getLevel match {
            case 1 => logger.error(line.getMessage)
            case 2 => logger.warn(line.getMessage)
            case 3 => logger.info(line.getMessage)
            case 4 => logger.debug(line.getMessage)
            case _ => logger.trace(line.getMessage)
          }
        }
        refreshLevel()
      } catch {
        // Logging must never stop: say why and go on after a pause (a failure here would repeat at once).
        case NonFatal(e) =>
          root.error("taking the native runtime's log lines failed", e)
          Thread.sleep(1000)
      }
    }
  }
}
