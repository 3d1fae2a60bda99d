package io.spindle.run

import java.io.BufferedOutputStream
import java.net.{InetSocketAddress, Socket}

import io.spindle.proto.{Exited, Line, RunEvent, Started}

/** A task's connection to its run's [[Coordinator]] on the driver: the secret first, then [[RunEvent]]s. Writes come
  * from the task thread and the process's output pumps, so each is synchronized. Idempotent close.
  */
final class TaskLink(address: String, secret: Array[Byte], rank: Int) extends AutoCloseable {
  private val socket = {
    val s = new Socket()
    val i = address.lastIndexOf(':')
    s.connect(new InetSocketAddress(address.substring(0, i), address.substring(i + 1).toInt), 30000)
    s.setTcpNoDelay(true)
    s
  }
  private val out = new BufferedOutputStream(socket.getOutputStream)
  out.write(secret)

  private def send(event: RunEvent.Builder): Unit = synchronized {
    if (!socket.isClosed) {
      event.setRank(rank).build().writeDelimitedTo(out)
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
