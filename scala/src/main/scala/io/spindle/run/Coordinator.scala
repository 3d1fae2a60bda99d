package io.spindle.run

import java.io.{DataInputStream, IOException}
import java.net.{InetAddress, InetSocketAddress, ServerSocket, Socket}
import java.util.concurrent.ConcurrentHashMap
import java.util.concurrent.atomic.AtomicReference

import scala.util.control.NonFatal

import org.apache.spark.SparkContext
import org.apache.spark.scheduler.{SparkListener, SparkListenerStageSubmitted, SparkListenerTaskStart}
import org.slf4j.LoggerFactory

import io.spindle.{SpindleClusterException, SpindleException, SpindleWorkerException}
import io.spindle.internal.{Channel, Secrets}
import io.spindle.proto.RunEvent

/** The driver's end of a `spindle.run` job: every task connects here (a TCP server on the driver's host; each
  * connection answers a fresh challenge with its HMAC under the run's secret, which never crosses the socket) and
  * reports its process: started, each output line, and how it ended. When Spark encrypts its own traffic, the events
  * are sealed ([[io.spindle.internal.Channel]], `encrypt`: whether Spark encrypts its own).
  *
  *   - Output lines go to the driver's log (logger `io.spindle.run.worker`), prefixed with rank, role and host.
  *   - The first failure (a process that raised or exited non-zero, a task that hung up without saying how its process
  *     ended, or a rank not started within `startupTimeoutMs`) cancels the job at once and is what [[failure]] returns:
  *     no task waits on a peer that will never come, and Spark does not retry a script that raised.
  *
  * One owner (`SpindleRun.run`); idempotent close.
  */
final class Coordinator(sc: SparkContext, spec: RunSpec, jobGroup: String, val encrypt: Boolean) extends AutoCloseable {
  private val log = LoggerFactory.getLogger("io.spindle.run.worker")
  private val host = sc.getConf.get("spark.driver.host", InetAddress.getLoopbackAddress.getHostAddress)
  private val server = new ServerSocket()
  server.bind(new InetSocketAddress(host, 0))
  val secret: Array[Byte] = Secrets.fresh()
  def address: String = s"$host:${server.getLocalPort}"

  private val failed = new AtomicReference[SpindleException]()
  @volatile private var closing = false
  private val started = new ConcurrentHashMap[Int, RunEvent]()
  private val ended = ConcurrentHashMap.newKeySet[Int]()

  /** Where Spark launched each task, for a rank that never reports. */
  private val launched = new ConcurrentHashMap[Int, String]()
  @volatile private var stages = Set.empty[Int]
  private val listener = new SparkListener {
    override def onStageSubmitted(submitted: SparkListenerStageSubmitted): Unit =
      if (Option(submitted.properties).exists(_.getProperty("spark.jobGroup.id") == jobGroup))
        stages += submitted.stageInfo.stageId
    override def onTaskStart(start: SparkListenerTaskStart): Unit =
      if (stages.contains(start.stageId)) launched.put(start.taskInfo.index, start.taskInfo.host)
  }
  sc.addSparkListener(listener)

  private def daemon(name: String)(body: => Unit): Unit = {
    val t = new Thread(() => body, name)
    t.setDaemon(true)
    t.start()
  }

  daemon("spindle-run coordinator") {
    try while (!closing) { val socket = server.accept(); daemon("spindle-run task link")(serve(socket)) }
    catch { case _: IOException => }
  }

  daemon("spindle-run startup watch") {
    val deadline = System.currentTimeMillis() + spec.startupTimeoutMs
    while (!closing && started.size < spec.roles.size && System.currentTimeMillis() < deadline) Thread.sleep(200)
    if (!closing && started.size < spec.roles.size) {
      val missing = spec.roles.indices.filterNot(started.containsKey).map { r =>
        s"rank $r (${role(r)}) ${Option(launched.get(r)).map(h => s"launched on $h, never started its process").getOrElse("never launched")}"
      }
      fail(
        new SpindleClusterException(
          s"spindle.run: ${missing.size} of ${spec.roles.size} processes not started within " +
            s"${spec.startupTimeoutMs / 1000} s: ${missing.mkString("; ")}"
        )
      )
    }
  }

  private def role(rank: Int): String = { val (r, i) = spec.roles(rank); s"$r $i" }

  private def serve(socket: Socket): Unit = {
    var rank = -1
    try {
      socket.setTcpNoDelay(true)
      val challenge = Secrets.fresh()
      socket.getOutputStream.write(challenge)
      socket.getOutputStream.flush()
      val in = new DataInputStream(socket.getInputStream)
      val proof = new Array[Byte](Secrets.Bytes)
      // A peer that never answers holds no thread for long; a task's events may then be minutes apart.
      socket.setSoTimeout(Coordinator.ProofTimeoutMs)
      in.readFully(proof)
      if (!Secrets.verify(secret, challenge, proof)) return
      socket.setSoTimeout(0)
      val channel =
        Channel(encrypt, secret, challenge, TaskLink.Direction, s"a task at ${socket.getRemoteSocketAddress}")
      // Until the task hangs up (EOFException, as any other failure to read, ends the loop).
      while (true) {
        val event = RunEvent.parseFrom(channel.read(in, TaskLink.MaxEventBytes))
        rank = event.getRank
        handle(event)
      }
    } catch {
      case NonFatal(_) =>
    } finally {
      socket.close()
      if (rank >= 0 && !ended.contains(rank) && !closing)
        fail(new SpindleWorkerException(s"rank $rank (${role(rank)}${where(rank)}): its task ended without a word"))
    }
  }

  private def where(rank: Int): String =
    Option(started.get(rank)).map(s => s" on ${s.getStarted.getHost}").getOrElse("")

  private def handle(event: RunEvent): Unit = {
    val rank = event.getRank
    event.getEventCase match {
      case RunEvent.EventCase.STARTED =>
        started.put(rank, event)
        log.info(
          s"rank $rank (${role(rank)}) started on ${event.getStarted.getHost}, TF address ${event.getStarted.getAddress}"
        )
      case RunEvent.EventCase.LINE =>
        log.info(s"[rank $rank ${role(rank)}${where(rank)}] ${event.getLine.getText}")
      case RunEvent.EventCase.EXITED =>
        ended.add(rank)
        val exited = event.getExited
        if (exited.getCode != 0)
          fail(
            new SpindleWorkerException(
              s"rank $rank (${role(rank)}${where(rank)}) exited with code ${exited.getCode}:\n${exited.getTraceback}"
            )
          )
      case _ =>
    }
  }

  private def fail(e: SpindleException): Unit =
    if (failed.compareAndSet(null, e)) {
      log.error(e.getMessage)
      sc.cancelJobGroup(jobGroup)
    }

  /** The first failure, if any. */
  def failure: Option[SpindleException] = Option(failed.get())

  override def close(): Unit = if (!closing) {
    closing = true
    sc.removeSparkListener(listener)
    server.close()
  }
}

object Coordinator {
  private val ProofTimeoutMs = 30000
}
