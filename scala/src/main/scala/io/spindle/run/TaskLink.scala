package io.spindle.run

import java.io.{BufferedOutputStream, DataInputStream, DataOutputStream}
import java.net.{InetSocketAddress, Socket}

import io.spindle.internal.{Channel, Secrets}
import io.spindle.proto.{Exited, Line, RunEvent, Started}

/** A task's connection to its run's [[Coordinator]] on the driver. The coordinator sends a fresh challenge; the task
  * answers with its HMAC under the run's secret (the secret itself never crosses the socket), then sends [[RunEvent]]s,
  * one frame each, sealed with `encrypt` under a key derived from the secret and the challenge ([[Channel]]). Writes
  * come from the task thread and the process's output pumps, so each is synchronized. Idempotent close.
  */
final class TaskLink(address: String, secret: Array[Byte], rank: Int, encrypt: Boolean) extends AutoCloseable {
  private val socket = {
    val s = new Socket()
    val i = address.lastIndexOf(':')
    s.connect(new InetSocketAddress(address.substring(0, i), address.substring(i + 1).toInt), 30000)
    s.setTcpNoDelay(true)
    s
  }
  private val out = new DataOutputStream(new BufferedOutputStream(socket.getOutputStream))
  private val channel = {
    val challenge = new Array[Byte](Secrets.Bytes)
    socket.setSoTimeout(TaskLink.ChallengeTimeoutMs)
    new DataInputStream(socket.getInputStream).readFully(challenge)
    out.write(Secrets.mac(secret, challenge))
    out.flush()
    Channel(encrypt, secret, challenge, TaskLink.Direction, s"spindle.run's coordinator at $address")
  }

  private def send(event: RunEvent.Builder): Unit = synchronized {
    if (!socket.isClosed) {
      channel.write(out, event.setRank(rank).build().toByteArray)
      out.flush()
    }
  }

  def started(role: String, host: String, tfAddress: String): Unit =
    send(RunEvent.newBuilder().setStarted(Started.newBuilder().setRole(role).setHost(host).setAddress(tfAddress)))

  def line(stderr: Boolean, text: String): Unit =
    send(RunEvent.newBuilder().setLine(Line.newBuilder().setStderr(stderr).setText(text)))

  def exited(code: Int, traceback: String): Unit =
    send(RunEvent.newBuilder().setExited(Exited.newBuilder().setCode(code).setTraceback(traceback)))

  override def close(): Unit = synchronized(socket.close())
}

object TaskLink {

  /** How long a task waits for the coordinator's challenge, sent as soon as it accepts. */
  private val ChallengeTimeoutMs = 30000

  /** The link's one direction, by name: its key's. */
  val Direction = "task link task to driver"

  /** The largest event: a line of output or a traceback. */
  val MaxEventBytes: Int = 1 << 24
}
