package io.spindle.internal

import java.util.OptionalLong
import java.util.concurrent.atomic.AtomicLong

import io.spindle.SpindleNativeException
import io.spindle.jni.NativeRuntime
import io.spindle.proto.{
  BatchOutputs,
  CheckpointInfo,
  FeederConfig,
  FeederLayout,
  ScriptFeedConfig,
  TrainerConfig,
  TrainerProgress,
  TrainingReport
}

/** The JVM owners of the runtime's objects ([[LoadedModel]] and those below): task code holds these, never a raw id.
  * Each owns one id of the runtime's handle tables. A call after `close` fails with a [[SpindleNativeException]] naming
  * the object; `close` releases the id once, from any thread, however often it is called. The runtime keeps an object
  * alive while a call on it is in flight, so a close from another thread (a kill switch) never frees memory under a
  * running call.
  */
abstract class NativeObject(id0: Long, val kind: String) extends AutoCloseable {
  private val handle = new AtomicLong(id0)

  /** The id for a native call; fails once closed. */
  private[spindle] final def id: Long = {
    val h = handle.get()
    if (h == 0) throw new SpindleNativeException(s"$kind was closed")
    h
  }

  /** Runs `call` on the id unless closed: for the calls another thread may make while the owner closes it. */
  protected final def ifOpen(call: Long => Unit): Unit = {
    val h = handle.get()
    if (h != 0) call(h)
  }

  /** Forgets the id, which a native call took over: `close` then does nothing. */
  protected[internal] final def forget(): Unit = handle.set(0)

  protected def release(id: Long): Unit

  final override def close(): Unit = {
    val h = handle.getAndSet(0)
    if (h != 0) release(h)
  }
}

/** A worker's listening socket for the training ring, bound before its peers' addresses are known. */
final class Rendezvous private (id: Long) extends NativeObject(id, "rendezvous") {
  def address: String = NativeRuntime.rendezvousAddress(id)

  /** Stops a ring still forming: its waits fail at once. Any thread. */
  def cancel(): Unit = ifOpen(NativeRuntime.cancelRendezvous)

  protected def release(id: Long): Unit = NativeRuntime.closeRendezvous(id)
}

object Rendezvous {
  def bind(host: String): Rendezvous = new Rendezvous(NativeRuntime.bindRendezvous(host))
}

/** One training worker: its session, ring, spill windows and checkpoints. Closing it shuts its ring, so peers blocked
  * on this worker fail at once, and wakes its waits (from any thread).
  */
final class Trainer private (id: Long) extends NativeObject(id, "trainer") {
  lazy val layout: FeederLayout = FeederLayout.parseFrom(NativeRuntime.trainerLayout(id))

  /** The address of the next free batch window, once one is free. */
  def acquireBatch(): Long = NativeRuntime.acquireBatch(id)
  def submitBatch(rows: Int): Unit = NativeRuntime.submitBatch(id, rows)

  /** The training rows are over: the next windows hold validation rows. */
  def endTrainingData(): Unit = NativeRuntime.endTrainingData(id)

  /** Waits for the last step and returns this worker's report. */
  def finish(): TrainingReport = TrainingReport.parseFrom(NativeRuntime.finishTraining(id))
  def progress(): TrainerProgress = TrainerProgress.parseFrom(NativeRuntime.trainerProgress(id))

  /** The next checkpoint saved locally, or None when training is over. */
  def nextCheckpoint(): Option[CheckpointInfo] = Option(NativeRuntime.nextCheckpoint(id)).map(CheckpointInfo.parseFrom)
  def checkpointDone(step: Long, failure: String): Unit = NativeRuntime.checkpointDone(id, step, failure)

  protected def release(id: Long): Unit = NativeRuntime.closeTrainer(id)
}

object Trainer {

  /** Opens a worker on `model`. It takes `rendezvous` (when there are peers) over, even when it fails; until it
    * returns, `rendezvous.cancel()` from another thread still stops a ring that is forming.
    */
  def open(model: LoadedModel, config: TrainerConfig, rendezvous: Option[Rendezvous]): Trainer =
    try new Trainer(NativeRuntime.openTrainer(model.id, config.toByteArray, rendezvous.fold(0L)(_.id)))
    finally rendezvous.foreach(_.forget())
}

/** One inference task's ring of batch slots on a shared session. */
final class Feeder private (id: Long) extends NativeObject(id, "feeder") {
  lazy val layout: FeederLayout = FeederLayout.parseFrom(NativeRuntime.feederLayout(id))

  def submit(slot: Int, rows: Int): Unit = NativeRuntime.submit(id, slot, rows)

  /** Waits for `slot`'s run; its outputs stay valid until [[releaseSlot]]. */
  def awaitSlot(slot: Int): BatchOutputs = BatchOutputs.parseFrom(NativeRuntime.awaitSlot(id, slot))
  def releaseSlot(slot: Int): Unit = NativeRuntime.releaseSlot(id, slot)

  protected def release(id: Long): Unit = NativeRuntime.closeFeeder(id)
}

object Feeder {
  def open(model: LoadedModel, config: FeederConfig): Feeder =
    new Feeder(NativeRuntime.openFeeder(model.id, config.toByteArray))
}

/** A `spindle.run` reader's feed: batch windows a Python script maps and reads over a Unix socket. */
final class ScriptFeed private (id: Long) extends NativeObject(id, "script feed") {
  lazy val layout: FeederLayout = FeederLayout.parseFrom(NativeRuntime.scriptFeedLayout(id))

  /** The next free window's address, or empty once the reader is gone. */
  def acquire(): OptionalLong = NativeRuntime.scriptFeedAcquire(id)
  def submit(rows: Int): Unit = NativeRuntime.scriptFeedSubmit(id, rows)

  /** The rows are over. */
  def end(): Unit = NativeRuntime.scriptFeedEnd(id)

  /** Wakes the feed's waits as if the reader were gone; it stays mapped until closed. Any thread. */
  def hangUp(): Unit = ifOpen(NativeRuntime.scriptFeedHangUp)

  protected def release(id: Long): Unit = NativeRuntime.closeScriptFeed(id)
}

object ScriptFeed {
  def open(config: ScriptFeedConfig): ScriptFeed = new ScriptFeed(NativeRuntime.openScriptFeed(config.toByteArray))
}
