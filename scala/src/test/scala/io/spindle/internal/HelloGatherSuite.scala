package io.spindle.internal

import java.io.DataOutputStream
import java.net.Socket

import java.util.concurrent.Executors

import scala.concurrent.{Await, ExecutionContext, Future}
import scala.concurrent.duration._

import org.scalatest.funsuite.AnyFunSuite

import io.spindle.SpindleClusterException
import io.spindle.proto.{GatherRequest, WorkerHello}

/** The driver's rendezvous of training's workers, over real loopback sockets. */
class HelloGatherSuite extends AnyFunSuite {

  private val secret = Array.tabulate[Byte](32)(_.toByte)

  // A thread per waiting rank, as each task has its own.
  private implicit val ranks: ExecutionContext = ExecutionContext.fromExecutorService(Executors.newCachedThreadPool())

  private def request(attempt: Int, rank: Int) = GatherRequest
    .newBuilder()
    .setStageAttempt(attempt)
    .setRank(rank)
    .setHello(WorkerHello.newBuilder().setRingAddress(s"127.0.0.1:${9000 + rank}"))
    .build()

  private def exchange(
      gather: HelloGather,
      attempt: Int,
      rank: Int,
      key: Array[Byte] = secret,
      timeoutMs: Long = 20000,
      encrypt: Boolean = false
  ) = Future(
    HelloGather.exchange(gather.address, key, request(attempt, rank), encrypt, timeoutMs, s"rank $rank", () => false)
  )

  private def addresses(f: Future[Seq[WorkerHello]]) = Await.result(f, 30.seconds).map(_.getRingAddress)

  test("every rank gets every rank's hello, in rank order, once all have come") {
    val gather = new HelloGather("127.0.0.1", "127.0.0.1", 3, secret, encrypt = false)
    try {
      val replies = Seq(2, 0, 1).map(r => exchange(gather, 0, r))
      val want = Seq("127.0.0.1:9000", "127.0.0.1:9001", "127.0.0.1:9002")
      replies.foreach(r => assert(addresses(r) == want))
    } finally gather.close()
  }

  test("sealed: every rank gets every hello; a rank that does not encrypt, or under another secret, does not count") {
    val gather = new HelloGather("127.0.0.1", "127.0.0.1", 2, secret, encrypt = true)
    try {
      for (
        rogue <- Seq(
          exchange(gather, 0, 1, timeoutMs = 5000),
          exchange(gather, 0, 1, Array.fill[Byte](32)(7), 5000, true)
        )
      ) {
        val e = intercept[SpindleClusterException](Await.result(rogue, 30.seconds))
        assert(e.getMessage.contains("closed the connection"), e.getMessage)
      }
      val (a, b) = (exchange(gather, 0, 0, encrypt = true), exchange(gather, 0, 1, encrypt = true))
      assert(addresses(a) == Seq("127.0.0.1:9000", "127.0.0.1:9001"))
      assert(addresses(b) == addresses(a))
    } finally gather.close()
  }

  test("a request under another secret, or garbage, neither counts nor stops the gather") {
    val gather = new HelloGather("127.0.0.1", "127.0.0.1", 2, secret, encrypt = false)
    try {
      val forged = exchange(gather, 0, 1, key = Array.fill[Byte](32)(7), timeoutMs = 5000)
      val e = intercept[SpindleClusterException](Await.result(forged, 30.seconds))
      assert(e.getMessage.contains("closed the connection"), e.getMessage)
      val junk = new Socket("127.0.0.1", gather.address.split(":")(1).toInt)
      new DataOutputStream(junk.getOutputStream).writeInt(Int.MaxValue)
      junk.close()
      val (a, b) = (exchange(gather, 0, 0), exchange(gather, 0, 1))
      assert(addresses(a) == addresses(b))
      assert(addresses(a).size == 2)
    } finally gather.close()
  }

  test("a retried stage gathers apart: the older attempt's waiting ranks are let go with an error") {
    val gather = new HelloGather("127.0.0.1", "127.0.0.1", 2, secret, encrypt = false)
    try {
      val stale = exchange(gather, 0, 0)
      Thread.sleep(300) // the stale request reaches the driver first
      val (a, b) = (exchange(gather, 1, 0), exchange(gather, 1, 1))
      assert(addresses(a) == Seq("127.0.0.1:9000", "127.0.0.1:9001"))
      assert(addresses(b) == addresses(a))
      val e = intercept[SpindleClusterException](Await.result(stale, 30.seconds))
      assert(e.getMessage.contains("rank 0: the driver's rendezvous closed the connection"), e.getMessage)
    } finally gather.close()
  }

  test("a rank whose peers never come fails after its timeout, saying so, and no longer counts; a kill ends a wait") {
    val gather = new HelloGather("127.0.0.1", "127.0.0.1", 2, secret, encrypt = false)
    try {
      val e = intercept[SpindleClusterException](Await.result(exchange(gather, 0, 0, timeoutMs = 1000), 30.seconds))
      assert(e.getMessage.contains("did not all reach the rendezvous within 1 s"), e.getMessage)
      Thread.sleep(300) // its hang-up reaches the driver
      @volatile var killed = false
      val waiting =
        Future(HelloGather.exchange(gather.address, secret, request(0, 1), false, 60000, "rank 1", () => killed))
      Thread.sleep(500)
      assert(!waiting.isCompleted, "rank 1 was answered with a rank that had given up")
      killed = true
      val k = intercept[SpindleClusterException](Await.result(waiting, 5.seconds))
      assert(k.getMessage.contains("rank 1: killed"), k.getMessage)
    } finally gather.close()
  }

  test("a driver that is not there is a typed error naming its address") {
    // Port 0 refuses every connection; a port freed by a closed gather could be bound again by anyone meanwhile.
    val address = "127.0.0.1:0"
    val e = intercept[SpindleClusterException](
      HelloGather.exchange(address, secret, request(0, 0), false, 1000, "rank 0", () => false)
    )
    assert(e.getMessage.contains(s"cannot reach the driver's rendezvous at $address"), e.getMessage)
  }

  test("close is idempotent and ends the waits of the ranks still waiting") {
    val gather = new HelloGather("127.0.0.1", "127.0.0.1", 2, secret, encrypt = false)
    val waiting = exchange(gather, 0, 0)
    Thread.sleep(300)
    gather.close()
    gather.close()
    val e = intercept[SpindleClusterException](Await.result(waiting, 30.seconds))
    assert(e.getMessage.contains("closed the connection"), e.getMessage)
  }
}
