package io.spindle

import scala.concurrent.{Await, Future}
import scala.concurrent.ExecutionContext.Implicits.global
import scala.concurrent.duration._
import scala.jdk.CollectionConverters._

import com.google.protobuf.ByteString

import io.spindle.internal.ModelCache
import io.spindle.jni.NativeRuntime
import io.spindle.proto.{DType, InputLayout, TrainerConfig, TrainingReport}

/** The ring through the JNI entry points the training task uses, on real loopback sockets: what a worker sees when a
  * connection lacks the job secret or a peer never comes, as typed Java exceptions. (The TCP protocol itself is tested
  * in native/spindle-runtime/tests/ring.rs.)
  */
class TrainerRingSuite extends SpindleTestBase {
  override protected def startsSpark: Boolean = false

  private def config(rank: Int, peers: Seq[String], secret: String, timeoutMs: Long) = TrainerConfig
    .newBuilder()
    .addInputs(InputLayout.newBuilder().setName("features").setDtype(DType.FLOAT32).addRowShape(64))
    .addInputs(InputLayout.newBuilder().setName("labels").setDtype(DType.INT64))
    .setBatchSize(8)
    .setNumSlots(2)
    .setEpochs(1)
    .setRank(rank)
    .addAllPeers(peers.asJava)
    .setSecret(ByteString.copyFromUtf8(secret))
    .setConnectTimeoutMs(timeoutMs)
    .setIoTimeoutMs(20000)
    .setSpillDir(tempDir("spill").toString)
    .setLabel(s"rank $rank")
    .build()
    .toByteArray

  /** Opens a worker on its own session and trains on no rows, which fails once the workers' first all-reduce says no
    * worker has a row (so it proves the ring formed); everything is closed after.
    */
  private def worker(rank: Int, peers: Seq[String], rendezvous: Long, secret: String, timeoutMs: Long) = {
    val model = ModelCache.loadPrivate(ModelCache.Key(fixture("digits_mlp_init"), Seq("serve"), 1, 1))
    var trainer = 0L
    try {
      trainer = NativeRuntime.openTrainer(model.id, config(rank, peers, secret, timeoutMs), rendezvous)
      TrainingReport.parseFrom(NativeRuntime.finishTraining(trainer))
    } finally {
      NativeRuntime.closeTrainer(trainer)
      model.close()
    }
  }

  private def bind(): (Long, String) = {
    NativeLoader.ensureLoaded()
    val r = NativeRuntime.bindRendezvous("127.0.0.1")
    (r, NativeRuntime.rendezvousAddress(r))
  }

  test(
    "a worker without the job secret is refused with an error naming the peer; the real workers still form the ring"
  ) {
    val (r0, a0) = bind()
    val (r1, a1) = bind()
    val chief = Future(worker(0, Seq(a0, a1), r0, "job secret", 30000))
    val (ri, ai) = bind()
    val e = failureOf[SpindleClusterException](worker(1, Seq(a0, ai), ri, "a guess", 5000))
    assert(e.getMessage.contains(s"rank 0 ($a0)") && e.getMessage.contains("rejected"), e.getMessage)
    // Both real workers reach the first all-reduce, whose summed row count tells both that no worker has a row.
    val second = failureOf[SpindleTrainingException](worker(1, Seq(a0, a1), r1, "job secret", 30000))
    val first = failureOf[SpindleTrainingException](Await.result(chief, 60.seconds))
    for ((rank, f) <- Seq(0 -> first, 1 -> second))
      assert(f.getMessage.contains(s"rank $rank: no worker received a row"), f.getMessage)
  }

  test("a peer that never comes fails the worker within rendezvousTimeout, naming its rank and address") {
    val (r0, a0) = bind()
    val (r1, a1) = bind()
    NativeRuntime.closeRendezvous(r1) // rank 1 never listens
    val started = System.nanoTime()
    val e = failureOf[SpindleClusterException](worker(0, Seq(a0, a1), r0, "job secret", 1500))
    val seconds = (System.nanoTime() - started) / 1e9
    assert(e.getMessage.contains(s"rank 1 ($a1)"), e.getMessage)
    assert(seconds < 10, s"took $seconds s")
  }

  test("a rendezvous cancelled from another thread (a killed task) stops waiting for its peers at once") {
    val (r0, a0) = bind()
    val (r1, a1) = bind()
    NativeRuntime.closeRendezvous(r1) // rank 1 never listens: without the cancel, rank 0 waits out 60 s
    val started = System.nanoTime()
    val waiting = Future(failureOf[SpindleClusterException](worker(0, Seq(a0, a1), r0, "job secret", 60000)))
    Thread.sleep(500)
    NativeRuntime.cancelRendezvous(r0)
    val e = Await.result(waiting, 30.seconds)
    val seconds = (System.nanoTime() - started) / 1e9
    assert(e.getMessage.contains("cancelled"), e.getMessage)
    assert(seconds < 5, s"took $seconds s")
    NativeRuntime.cancelRendezvous(r0) // consumed: ignored
  }
}
