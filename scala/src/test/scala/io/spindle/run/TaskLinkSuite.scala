package io.spindle.run

import java.io.{ByteArrayOutputStream, InputStream, OutputStream}
import java.net.{InetSocketAddress, ServerSocket, Socket}

import io.spindle.{SpindleTestBase, SpindleWorkerException}

/** A `spindle.run` task's link to the driver's [[Coordinator]], over real loopback sockets through a proxy that records
  * every byte crossing it both ways.
  */
class TaskLinkSuite extends SpindleTestBase {

  private val spec = RunSpec.parse(
    """{"command": ["python"], "payload": "", "workers": 2}"""
  )

  /** Forwards one connection to `target` and keeps what crosses it, each way. */
  private final class RecordingProxy(target: String) extends AutoCloseable {
    private val server = new ServerSocket()
    server.bind(new InetSocketAddress("127.0.0.1", 0))
    val toDriver, toTask = new ByteArrayOutputStream()
    def address: String = s"127.0.0.1:${server.getLocalPort}"
    private val threads = Seq.newBuilder[Thread]

    private def pump(in: InputStream, out: OutputStream, record: ByteArrayOutputStream): Thread = {
      val t = new Thread(() =>
        try {
          val buffer = new Array[Byte](4096)
          var n = in.read(buffer)
          while (n >= 0) {
            record.synchronized(record.write(buffer, 0, n))
            out.write(buffer, 0, n)
            out.flush()
            n = in.read(buffer)
          }
        } catch { case _: java.io.IOException => }
        finally out.close()
      )
      t.setDaemon(true)
      t.start()
      t
    }

    private val acceptor = new Thread(() =>
      try {
        val task = server.accept()
        val i = target.lastIndexOf(':')
        val driver = new Socket(target.substring(0, i), target.substring(i + 1).toInt)
        threads += pump(task.getInputStream, driver.getOutputStream, toDriver)
        threads += pump(driver.getInputStream, task.getOutputStream, toTask)
      } catch { case _: java.io.IOException => }
    )
    acceptor.setDaemon(true)
    acceptor.start()

    /** Waits until both directions have ended. */
    def finish(): Unit = { acceptor.join(10000); threads.result().foreach(_.join(10000)) }
    override def close(): Unit = server.close()
  }

  private def contains(haystack: Array[Byte], needle: Array[Byte]): Boolean =
    haystack.indices.exists(i => haystack.startsWith(needle, i))

  for (encrypt <- Seq(false, true))
    test(
      s"the task link proves the run's secret without sending it; the coordinator gets its events (encrypt $encrypt)"
    ) {
      val coordinator = new Coordinator(spark.sparkContext, spec, "task-link-suite", encrypt)
      val proxy = new RecordingProxy(coordinator.address)
      try {
        val link = new TaskLink(proxy.address, coordinator.secret, 1, encrypt)
        link.started("worker 1", "127.0.0.1", "127.0.0.1:1234")
        link.line(stderr = true, "a line of the script")
        link.exited(3, "ValueError: the script's own traceback")
        link.close()
        proxy.finish()
        // The exit reached the coordinator, so the link was accepted as the run's.
        val deadline = System.currentTimeMillis() + 10000
        while (coordinator.failure.isEmpty && System.currentTimeMillis() < deadline) Thread.sleep(50)
        val failure = coordinator.failure.get
        assert(failure.isInstanceOf[SpindleWorkerException])
        assert(failure.getMessage.contains("rank 1 (worker 1 on 127.0.0.1) exited with code 3"), failure.getMessage)
        assert(failure.getMessage.contains("the script's own traceback"), failure.getMessage)
        val (sent, received) = (proxy.toDriver.toByteArray, proxy.toTask.toByteArray)
        assert(received.length == 32 && sent.length > 32, "a 32-byte challenge, then the proof and the events")
        assert(!contains(sent, coordinator.secret) && !contains(received, coordinator.secret))
        // Not even half of it.
        assert(!contains(sent, coordinator.secret.take(16)) && !contains(sent, coordinator.secret.drop(16)))
        // The events travel in the clear exactly when the link does not encrypt.
        for (text <- Seq("a line of the script", "the script's own traceback"))
          assert(contains(sent, text.getBytes("UTF-8")) != encrypt, s"'$text' on the wire, encrypt $encrypt")
      } finally { proxy.close(); coordinator.close() }
    }

  test("a link that does not know the secret is dropped unheard") {
    val coordinator = new Coordinator(spark.sparkContext, spec, "task-link-suite-wrong", encrypt = false)
    try {
      val link = new TaskLink(coordinator.address, Array.fill[Byte](32)(7), 0, encrypt = false)
      // The coordinator may already have hung up on it: a failed write is fine, a heard one is not.
      scala.util.Try(link.exited(5, "an impostor's traceback"))
      Thread.sleep(1000)
      link.close()
      Thread.sleep(500)
      assert(coordinator.failure.isEmpty, coordinator.failure)
    } finally coordinator.close()
  }
}
