package io.spindle.internal

import scala.jdk.CollectionConverters._
import scala.util.control.NonFatal

import org.apache.spark.SparkContext
import org.apache.spark.scheduler.{SparkListener, SparkListenerExecutorMetricsUpdate}
import org.apache.spark.util.{CollectionAccumulator, DoubleAccumulator, LongAccumulator}
import org.slf4j.Logger

/** Live progress of a training job. The chief's task copies its trainer's last step (step, epoch, loss), the step rate
  * over the last second and the last epoch done (its mean loss and validation metrics) into named accumulators every
  * second; executors send accumulators of running tasks with their heartbeats (`spark.executor.heartbeatInterval`), and
  * a listener on the driver logs each new step it sees. The Spark UI lists the accumulators (`spindle: training ...`,
  * `spindle: epoch ...`) on the stage's page while it runs.
  *
  * @param validation
  *   one accumulator per validation metric (`val_loss`, `val_<metric>`), by name
  * @param epochRecords
  *   every epoch done that a publish saw, each added whole as (epoch, mean loss, validation metrics): one value, so a
  *   heartbeat never shows an epoch with another's loss ([[watchEpochs]])
  */
final class Progress(
    val step: LongAccumulator,
    val epoch: LongAccumulator,
    val loss: DoubleAccumulator,
    val stepsPerSecond: DoubleAccumulator,
    val epochsDone: LongAccumulator,
    val epochLoss: DoubleAccumulator,
    val validation: Map[String, DoubleAccumulator],
    val epochRecords: CollectionAccumulator[(Long, Double, Map[String, Double])]
) extends Serializable {

  /** Runs `body` while logging the progress the heartbeats bring. */
  def logged[T](sc: SparkContext, log: Logger)(body: => T): T = {
    val listener = new SparkListener {
      private var last = 0L
      override def onExecutorMetricsUpdate(update: SparkListenerExecutorMetricsUpdate): Unit = {
        val values = update.accumUpdates.flatMap(_._4).flatMap(i => i.update.map(i.id -> _)).toMap
        (values.get(step.id), values.get(loss.id)) match {
          case (Some(s: Long), Some(l: Double)) if s > last =>
            last = s
            val e = values.get(epoch.id).fold("")(e => s" (epoch $e)")
            val rate = values.get(stepsPerSecond.id).fold("")(r => f", ${r.asInstanceOf[Double]}%.1f steps/s")
            log.info(f"training: step $s%d$e, loss $l%.5f$rate")
          case _ =>
        }
      }
    }
    sc.addSparkListener(listener)
    try body
    finally sc.removeSparkListener(listener)
  }

  /** Runs `body` while calling `onEpoch(epoch, loss, validation)` for each epoch done that the heartbeats bring (at
    * most one heartbeat interval late). An epoch that ends between two publishes of `report` (a second apart) is not
    * seen here: the caller takes it from the summary. Called on Spark's listener thread.
    */
  def watchEpochs[T](sc: SparkContext)(onEpoch: (Long, Double, Map[String, Double]) => Unit)(body: => T): T = {
    val listener = new SparkListener {
      override def onExecutorMetricsUpdate(update: SparkListenerExecutorMetricsUpdate): Unit =
        for {
          info <- update.accumUpdates.flatMap(_._4) if info.id == epochRecords.id
          records <- info.update.collect { case l: java.util.List[_] => l.asScala.toList }
          (epoch, loss, metrics) <- records.collect { case r: (Long, Double, Map[String, Double]) @unchecked => r }
        } onEpoch(epoch, loss, metrics)
    }
    sc.addSparkListener(listener)
    try body
    finally sc.removeSparkListener(listener)
  }

  /** On the chief's executor: publishes `trainer`'s progress every second, and once more when closed (before the
    * trainer closes, so that the stage's accumulators end with the last step).
    */
  def report(trainer: Trainer, label: String): AutoCloseable = {
    var (rateStep, rateNanos) = (0L, System.nanoTime())
    def publish(): Unit = {
      val progress = trainer.progress()
      val (last, done) = (progress.getStep, progress.getEpoch)
      // reset + add: an accumulator has no public setter; a heartbeat in between reads step 0, which is ignored.
      if (done.getEpoch > epochsDone.value) {
        epochsDone.reset(); epochsDone.add(done.getEpoch.toLong)
        epochLoss.reset(); epochLoss.add(done.getLoss)
        for ((name, value) <- done.getValidationMap.asScala; acc <- validation.get(name)) {
          acc.reset(); acc.add(value)
        }
        val metrics = done.getValidationMap.asScala.map { case (k, v) => k -> v.doubleValue }.toMap
        epochRecords.add((done.getEpoch.toLong, done.getLoss, metrics))
      }
      if (last.getStep > step.value) {
        val now = System.nanoTime()
        val rate = (last.getStep - rateStep) * 1e9 / math.max(now - rateNanos, 1L)
        rateStep = last.getStep
        rateNanos = now
        step.reset(); step.add(last.getStep)
        epoch.reset(); epoch.add(last.getEpoch.toLong)
        loss.reset(); loss.add(last.getLoss)
        stepsPerSecond.reset(); stepsPerSecond.add(rate)
      }
    }
    @volatile var running = true
    val thread = new Thread(
      () =>
        try
          while (running) {
            publish()
            Thread.sleep(1000)
          }
        catch {
          // Stopped, or the trainer closed under us because the task is ending: nothing left to report.
          case _: InterruptedException =>
          case NonFatal(_)             =>
        },
      s"spindle-progress $label"
    )
    thread.setDaemon(true)
    thread.start()
    () => {
      running = false
      thread.interrupt()
      thread.join()
      try publish()
      catch { case NonFatal(_) => }
    }
  }
}

object Progress {

  /** Registers the job's accumulators; `validation` names the validation metrics its epochs will have. */
  def register(sc: SparkContext, validation: Seq[String]): Progress =
    new Progress(
      sc.longAccumulator("spindle: training step"),
      sc.longAccumulator("spindle: training epoch"),
      sc.doubleAccumulator("spindle: training loss"),
      sc.doubleAccumulator("spindle: training steps/s"),
      sc.longAccumulator("spindle: epochs done"),
      sc.doubleAccumulator("spindle: epoch loss"),
      validation.map(name => name -> sc.doubleAccumulator(s"spindle: epoch $name")).toMap,
      sc.collectionAccumulator[(Long, Double, Map[String, Double])]("spindle: epochs")
    )
}
