package io.spindle.internal

import java.io.{ByteArrayInputStream, DataInputStream, DataOutputStream, IOException, SequenceInputStream}
import java.net.{InetSocketAddress, ServerSocket, Socket, SocketTimeoutException}

import scala.collection.mutable
import scala.jdk.CollectionConverters._
import scala.util.control.NonFatal

import io.spindle.SpindleClusterException
import io.spindle.proto.{GatherReply, GatherRequest, WorkerHello}

/** The driver's end of training's rendezvous: every barrier task sends its [[WorkerHello]] here and gets every rank's
  * back, in rank order, once all `world` ranks of its stage attempt have come. A request carries an HMAC-SHA256 of
  * itself under the fit's secret (the secret itself never crosses the network); one without a valid one is dropped. The
  * connection starts with random salt from the task; with `encrypt`, the request and the reply are sealed under keys
  * derived from the secret and that salt, one per direction ([[Channel]]).
  *
  * It takes the place of `BarrierTaskContext.allGather`, whose wait sleeps a whole second between looks at the RPC it
  * sent (Spark's `runBarrier`), so that every fit paid a second for a few bytes. A retried stage gathers apart from the
  * attempt it replaces; the sockets of an older attempt are dropped once a newer one comes. It listens on `bindHost`
  * (Spark's `spark.driver.bindAddress`) and tasks reach it at `host` (`spark.driver.host`), which differ behind a NAT
  * or in a Kubernetes pod. One owner (`fit`); idempotent close.
  */
final class HelloGather(bindHost: String, host: String, world: Int, secret: Array[Byte], encrypt: Boolean)
    extends AutoCloseable {
  private val server = new ServerSocket()
  server.bind(new InetSocketAddress(bindHost, 0))

  /** Where tasks reach it: `host` (the driver's advertised host) and the bound port. */
  def address: String = s"$host:${server.getLocalPort}"

  // Stage attempt -> the requests of that attempt so far, by rank: each one's socket, its reply's direction, its hello.
  private val waiting = mutable.Map.empty[Int, mutable.Map[Int, (Socket, Channel, WorkerHello)]]
  @volatile private var closing = false

  private val acceptor = new Thread(
    () =>
      try
        while (!closing) {
          val socket = server.accept()
          val reader = new Thread(() => receive(socket), "spindle-gather request")
          reader.setDaemon(true)
          reader.start()
        }
      catch { case _: IOException => },
    "spindle-gather"
  )
  acceptor.setDaemon(true)
  acceptor.start()

  /** Reads one request; a connection without a well-formed, authentic request is closed unanswered. */
  private def receive(socket: Socket): Unit =
    try {
      socket.setTcpNoDelay(true)
      socket.setSoTimeout(HelloGather.RequestTimeoutMs)
      val in = new DataInputStream(socket.getInputStream)
      val salt = new Array[Byte](Secrets.Bytes)
      in.readFully(salt)
      val peer = s"a worker at ${socket.getRemoteSocketAddress}"
      val bytes = Channel(encrypt, secret, salt, HelloGather.Request, peer).read(in, HelloGather.MaxRequestBytes)
      val mac = new Array[Byte](Secrets.Bytes)
      in.readFully(mac)
      if (!Secrets.verify(secret, bytes, mac)) socket.close()
      else {
        val request = GatherRequest.parseFrom(bytes)
        if (request.getRank < 0 || request.getRank >= world) socket.close()
        else {
          add(request, socket, Channel(encrypt, secret, salt, HelloGather.Reply, peer))
          // A rank that gives up (its task failed or timed out) hangs up: it no longer counts. The reply closes
          // the socket too, which ends this read.
          socket.setSoTimeout(0)
          if (in.read() < 0) drop(request, socket)
        }
      }
    } catch { case NonFatal(_) => socket.close() }

  private def add(request: GatherRequest, socket: Socket, reply: Channel): Unit = synchronized {
    val attempt = request.getStageAttempt
    if (closing || waiting.keys.exists(_ > attempt)) socket.close()
    else {
      for (old <- waiting.keys.filter(_ < attempt).toSeq; (s, _, _) <- waiting.remove(old).get.values) s.close()
      val ranks = waiting.getOrElseUpdate(attempt, mutable.Map.empty)
      ranks.remove(request.getRank).foreach(_._1.close())
      ranks(request.getRank) = (socket, reply, request.getHello)
      if (ranks.size == world) {
        waiting.remove(attempt)
        val bytes =
          GatherReply.newBuilder().addAllHellos((0 until world).map(r => ranks(r)._3).asJava).build().toByteArray
        for ((s, channel, _) <- ranks.values)
          try {
            val out = new DataOutputStream(s.getOutputStream)
            channel.write(out, bytes)
            out.flush()
          } catch { case NonFatal(_) => }
          finally s.close()
      }
    }
  }

  private def drop(request: GatherRequest, socket: Socket): Unit = synchronized {
    for (ranks <- waiting.get(request.getStageAttempt); (s, _, _) <- ranks.get(request.getRank) if s eq socket)
      ranks.remove(request.getRank)
    socket.close()
  }

  override def close(): Unit = if (!closing) {
    closing = true
    server.close()
    synchronized {
      waiting.values.foreach(_.values.foreach(_._1.close()))
      waiting.clear()
    }
  }
}

object HelloGather {
  private val RequestTimeoutMs = 30000
  private val PollMs = 200
  private val MaxRequestBytes = 1 << 16
  private val MaxReplyBytes = 1 << 24

  /** The two directions' names, for their keys. */
  private val Request = "gather task to driver"
  private val Reply = "gather driver to task"

  /** A task's side: sends `request` to the gather at `address` and returns every rank's hello, in rank order. Waits at
    * most `timeoutMs` for the other ranks, and stops at once when `killed` turns true.
    */
  def exchange(
      address: String,
      secret: Array[Byte],
      request: GatherRequest,
      encrypt: Boolean,
      timeoutMs: Long,
      label: String,
      killed: () => Boolean
  ): Seq[WorkerHello] = {
    val i = address.lastIndexOf(':')
    val socket = new Socket()
    try {
      try socket.connect(new InetSocketAddress(address.substring(0, i), address.substring(i + 1).toInt), 30000)
      catch {
        case e: IOException =>
          throw new SpindleClusterException(s"$label: cannot reach the driver's rendezvous at $address: $e", e)
      }
      socket.setTcpNoDelay(true)
      val out = new DataOutputStream(socket.getOutputStream)
      val bytes = request.toByteArray
      val salt = Secrets.fresh()
      out.write(salt)
      Channel(encrypt, secret, salt, Request, s"the driver's rendezvous at $address").write(out, bytes)
      out.write(Secrets.mac(secret, bytes))
      out.flush()
      // Poll for the reply's first byte (a timeout before it consumes nothing), so that a kill is seen within PollMs.
      socket.setSoTimeout(PollMs)
      val in = socket.getInputStream
      val deadline = System.currentTimeMillis() + timeoutMs
      var first = -2
      while (first == -2) {
        if (killed()) throw new SpindleClusterException(s"$label: killed while waiting for its peers")
        if (System.currentTimeMillis() > deadline)
          throw new SpindleClusterException(
            s"$label: the other workers did not all reach the rendezvous within ${timeoutMs / 1000} s " +
              "(rendezvousTimeout); a worker still starting or computing its partition's first rows delays them all"
          )
        try first = in.read()
        catch { case _: SocketTimeoutException => }
      }
      if (first < 0)
        throw new SpindleClusterException(
          s"$label: the driver's rendezvous closed the connection (the stage was retried or the fit ended)"
        )
      socket.setSoTimeout(RequestTimeoutMs)
      val rest = new DataInputStream(new SequenceInputStream(new ByteArrayInputStream(Array(first.toByte)), in))
      val reply =
        Channel(encrypt, secret, salt, Reply, s"the driver's rendezvous at $address").read(rest, MaxReplyBytes)
      GatherReply.parseFrom(reply).getHellosList.asScala.toSeq
    } finally socket.close()
  }
}
