package io.spindle

import java.util.concurrent.ConcurrentLinkedQueue

import scala.jdk.CollectionConverters._
import scala.util.Random

import org.apache.logging.log4j.{Level, LogManager}
import org.apache.logging.log4j.core.{LogEvent, Logger => CoreLogger}
import org.apache.logging.log4j.core.appender.AbstractAppender
import org.apache.logging.log4j.core.config.{Configurator, Property}

import io.spindle.internal.NativeLogs

/** The runtime's log lines reach log4j (through slf4j) with their level and a logger per Rust module, and log4j's level
  * for `io.spindle.native` filters them.
  */
class NativeLogsSuite extends SpindleTestBase {

  /** Every event logged under `io.spindle.native`, as log4j delivers it. */
  private object Captured extends AbstractAppender("spindle-native-capture", null, null, true, Property.EMPTY_ARRAY) {
    val events = new ConcurrentLinkedQueue[LogEvent]()
    override def append(event: LogEvent): Unit = events.add(event.toImmutable)
  }

  override protected def beforeAll(): Unit = {
    super.beforeAll()
    // Loaded while io.spindle.native is at the tests' warn level, as a suite before may have: the level the tests set
    // reaches the runtime while it runs.
    NativeLoader.ensureLoaded()
    Captured.start()
    LogManager.getLogger("io.spindle.native").asInstanceOf[CoreLogger].addAppender(Captured)
  }

  /** Fits the digits MLP on 400 random rows, 1 worker, 2 epochs: the chief logs a line per epoch at info. */
  private def fit(): Unit = {
    val s = spark
    import s.implicits._
    val random = new Random(3)
    val rows = Seq.fill(400)((Array.fill(64)(random.nextFloat()), random.nextInt(10).toLong)).toDF("pixels", "digit")
    new SpindleEstimator()
      .setModelPath(fixture("digits_mlp_init"))
      .setInputCols(Map("features" -> "pixels", "labels" -> "digit"))
      .setEpochs(2)
      .setBatchSize(50)
      .fit(rows)
  }

  private def epochLines: Seq[LogEvent] =
    Captured.events.asScala.toSeq.filter(_.getMessage.getFormattedMessage.contains(": epoch "))

  /** Waits (at most 10 s) for `done`: lines reach log4j from the runtime's queue within a second. */
  private def eventually(done: => Boolean): Boolean = {
    val deadline = System.nanoTime() + 10000000000L
    while (!done && System.nanoTime() < deadline) Thread.sleep(50)
    done
  }

  test("the chief's epoch lines reach log4j at info, from the step loop module's logger") {
    Configurator.setLevel("io.spindle.native", Level.INFO)
    // The log thread hands a new level to the runtime within a second; a fit quicker than that would miss it.
    NativeLogs.refreshLevel()
    Captured.events.clear()
    fit()
    assert(eventually(epochLines.size == 2), s"epoch lines: ${epochLines.map(_.getMessage.getFormattedMessage)}")
    val lines = epochLines
    assert(lines.forall(_.getLevel == Level.INFO))
    assert(lines.forall(_.getLoggerName == "io.spindle.native.spindle_runtime.step_loop"), lines.map(_.getLoggerName))
    assert(lines.map(_.getMessage.getFormattedMessage).zip(Seq("epoch 1 done", "epoch 2 done")).forall {
      case (line, expected) => line.contains(expected)
    })
  }

  test("log4j's level for io.spindle.native filters the runtime's lines") {
    Configurator.setLevel("io.spindle.native", Level.WARN)
    NativeLogs.refreshLevel()
    Captured.events.clear()
    fit()
    // Back at info, log4j would pass any info line the runtime still queued: the runtime must have made none.
    Configurator.setLevel("io.spindle.native", Level.INFO)
    Thread.sleep(1500)
    assert(epochLines.isEmpty, epochLines.map(_.getMessage.getFormattedMessage))
  }
}
