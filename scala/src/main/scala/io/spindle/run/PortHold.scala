package io.spindle.run

import java.net.{InetSocketAddress, StandardSocketOptions}
import java.nio.channels.SocketChannel

/** A TCP port held for a TensorFlow server from before its address is published until the task ends, so that nothing
  * else takes it in between (the bind-then-release race of picking a free port and closing it).
  *
  * The socket is bound, never listening, with SO_REUSEPORT; TensorFlow's gRPC server binds the same port when told it
  * may (`TF_GRPC_REUSE_PORT=1`, which the task sets), and a bound socket that does not listen takes no connections. Any
  * other process, without SO_REUSEPORT, is refused the port. Idempotent close.
  */
final class PortHold(host: String) extends AutoCloseable {
  private val channel = SocketChannel.open()
  try {
    channel.setOption[java.lang.Boolean](StandardSocketOptions.SO_REUSEPORT, true)
    channel.bind(new InetSocketAddress(host, 0))
  } catch { case e: Throwable => channel.close(); throw e }

  val port: Int = channel.socket().getLocalPort

  override def close(): Unit = channel.close()
}
