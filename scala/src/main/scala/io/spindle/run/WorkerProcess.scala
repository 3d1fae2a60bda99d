package io.spindle.run

import java.io.{BufferedReader, File, InputStream, InputStreamReader}
import java.nio.charset.StandardCharsets
import java.util.concurrent.TimeUnit

import scala.jdk.CollectionConverters._
import scala.util.control.NonFatal

import org.slf4j.Logger

/** One task's script process. Each line it writes to stdout or stderr goes to `onLine` (the executor's log and the
  * driver's), and the last lines of stderr are kept for an exit without a traceback. Idempotent [[stop]].
  */
final class WorkerProcess(
    command: Seq[String],
    env: Map[String, String],
    dir: File,
    label: String,
    log: Logger,
    onLine: (Boolean, String) => Unit
) {
  private val process = {
    val builder = new ProcessBuilder(command.asJava).directory(dir)
    builder.environment().putAll(env.asJava)
    builder.start()
  }
  private val tail = new java.util.ArrayDeque[String]()
  private val pumps = Seq(pump(process.getInputStream, stderr = false), pump(process.getErrorStream, stderr = true))

  private def pump(stream: InputStream, stderr: Boolean): Thread = {
    val t = new Thread(
      () =>
        try {
          val reader = new BufferedReader(new InputStreamReader(stream, StandardCharsets.UTF_8))
          var line = reader.readLine()
          while (line != null) {
            if (stderr) tail.synchronized {
              tail.addLast(line); if (tail.size > WorkerProcess.TailLines) tail.removeFirst()
            }
            log.info(s"$label: $line")
            try onLine(stderr, line)
            catch { case NonFatal(_) => } // the driver's link is gone: the executor's log still has the line
            line = reader.readLine()
          }
        } catch { case NonFatal(_) => },
      s"spindle-run output $label"
    )
    t.setDaemon(true)
    t.start()
    t
  }

  @volatile private var stopping = false

  /** Whether [[stop]] ended it (its exit code is then the signal's, not a failure). */
  def stopped: Boolean = stopping

  /** Waits for the process to end (and its output to be read); its exit code. */
  def waitFor(): Int = {
    val code = process.waitFor()
    pumps.foreach(_.join(5000))
    code
  }

  /** Runs `action` once the process has exited (at once when it already has), on a thread of the JVM's pool. */
  def onExit(action: () => Unit): Unit = process.onExit().thenRun(() => action())

  /** The last lines it wrote to stderr. */
  def stderrTail: String = tail.synchronized(tail.asScala.mkString("\n"))

  /** Ends the process: SIGTERM, then SIGKILL after a grace period. */
  def stop(): Unit = if (process.isAlive) {
    stopping = true
    process.destroy()
    if (!process.waitFor(WorkerProcess.GraceSeconds, TimeUnit.SECONDS)) process.destroyForcibly().waitFor()
  }
}

object WorkerProcess {
  val TailLines = 40
  val GraceSeconds = 5L
}
