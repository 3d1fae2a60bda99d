package io.spindle.internal

import java.nio.file.Files

import scala.jdk.CollectionConverters._

import org.apache.hadoop.fs.{FileUtil, Path => HPath}
import org.apache.spark.{BarrierTaskContext, SpindleBarrierShim, SpindleCoreShim}
import org.apache.spark.util.SerializableConfiguration
import org.slf4j.LoggerFactory

import io.spindle.NativeLoader
import io.spindle.proto.{FeederLayout, GatherRequest, TrainerConfig, WorkerHello}

/** What every barrier task of a training job needs, serialized once with the stage. */
final case class TrainJob(
    modelPath: String,
    model: ModelCache.Key,
    inputs: Seq[InputPlan],
    validationInputs: Option[Seq[InputPlan]],
    config: Array[Byte],
    exportPath: Option[String],
    overwriteExport: Boolean,
    hadoopConf: SerializableConfiguration,
    checkpoints: Option[Checkpoints],
    progress: Progress,
    tensorboardDir: Option[String],
    variableLengthBytes: Long,
    padValue: Double,
    gatherAddress: Option[String]
)

/** One worker of a training job: the body of a barrier task. It loads a session of its own and, at the same time, reads
  * its partition's first rows and publishes its ring address through the driver's [[HelloGather]] (the chief adds the
  * checkpoint every worker resumes from: the newest complete one in `checkpointDir` when the task starts, so a stage
  * Spark retries after a failure resumes too). It then streams its partition into the trainer's spill windows, then its
  * validation rows (the second iterator of its one element) when there are any, and, on the chief (rank 0), uploads
  * checkpoints as they come and the exported SavedModel at the end. Everything native it opens is closed by the task's
  * completion listener, on success or failure; closing the trainer shuts its ring, so peers blocked on this worker fail
  * at once.
  */
final class TrainTask(job: TrainJob)
    extends (Iterator[(PartitionFeed, PartitionFeed)] => Iterator[Array[Byte]])
    with Serializable {

  override def apply(parts: Iterator[(PartitionFeed, PartitionFeed)]): Iterator[Array[Byte]] = {
    val started = System.nanoTime()
    val (rows, validationRows) = parts.next()
    val ctx = BarrierTaskContext.get()
    SpindleBarrierShim.releaseTimerAfterMain()
    val rank = ctx.partitionId()
    val world = ctx.getTaskInfos().length
    val label = s"stage ${ctx.stageId()} rank $rank of $world"
    // Written by the task's threads, read by the others (the kill switch's, the completion listener): volatile.
    @volatile var rendezvous: Option[Rendezvous] = None
    @volatile var trainer: Option[Trainer] = None
    @volatile var ending = false
    val scratch = Files.createTempDirectory(java.nio.file.Paths.get(SpindleCoreShim.localDir), "spindle-train")
    val exportDir = if (rank == 0 && job.exportPath.isDefined) Some(scratch.resolve("export")) else None
    val events = if (rank == 0) job.tensorboardDir.map(new TensorBoardDir(_, job.hadoopConf.value, scratch)) else None
    // Closing the trainer shuts its ring and wakes its waits; cancelling the rendezvous stops a ring still forming.
    val killSwitch = new KillSwitch(
      ctx,
      label,
      () =>
        Cleanup.all(
          () => rendezvous.foreach(_.cancel()),
          () => trainer.foreach(_.close())
        )
    )
    // The session loads, and the workers gather their ring addresses, while this thread reads the partition's first
    // rows: one after the other, the three took most of a fit's fixed cost.
    @volatile var loaded = 0L
    val gpus = ModelCache.gpusOfTask() // TaskContext is this thread's
    val loading = Background(s"spindle-load $label") {
      val local = ModelCache.localize(job.modelPath, job.hadoopConf.value)
      val model = ModelCache.loadPrivate(job.model.copy(localPath = local, gpus = gpus))
      loaded = System.nanoTime()
      model
    }
    val base = TrainerConfig.parseFrom(job.config)
    def newest = if (rank == 0) job.checkpoints.flatMap(_.newest()).map(_.toString).getOrElse("") else ""
    val gathering = job.gatherAddress.filter(_ => world > 1).map { address =>
      Background(s"spindle-gather $label") {
        NativeLoader.ensureLoaded()
        val bound = Rendezvous.bind(SpindleCoreShim.executorHost)
        rendezvous = Some(bound)
        val hello = WorkerHello.newBuilder().setRingAddress(bound.address)
        if (rank == 0) hello.setResumeFrom(newest)
        val request = GatherRequest.newBuilder().setStageAttempt(ctx.stageAttemptNumber()).setRank(rank).setHello(hello)
        val secret = base.getSecret.toByteArray
        val timeout = base.getConnectTimeoutMs
        val encrypt = base.getEncryptChannels
        HelloGather
          .exchange(address, secret, request.build(), encrypt, timeout, label, () => ending || ctx.isInterrupted())
      }
    }
    ctx.addTaskCompletionListener[Unit] { _ =>
      ending = true
      Cleanup.all(
        () => killSwitch.close(),
        () => gathering.foreach(Background.result(_)),
        () => trainer.foreach(_.close()),
        () => rendezvous.foreach(_.close()),
        () => Background.result(loading).foreach(_.close()),
        () => events.foreach(_.publish()),
        () => FileUtil.fullyDelete(scratch.toFile)
      )
    }
    val first = rows.first
    val firstRows = System.nanoTime()
    val (peers, resumeFrom) = gathering match {
      case Some(g) =>
        val hellos = Background.await(g, ctx)
        (hellos.map(_.getRingAddress), hellos.head.getResumeFrom)
      case None => (Seq.empty, newest)
    }
    val gathered = System.nanoTime()
    val model = Background.await(loading, ctx)
    def ms(at: Long) = (at - started) / 1000000
    TrainTask.log.info(
      s"$label: ready to train ${ms(System.nanoTime())} ms after the task started: first rows after " +
        s"${ms(firstRows)} ms, peers' addresses after ${ms(gathered)} ms, session after ${ms(loaded)} ms"
    )
    val arenaBytes = BatchWriter.arenaBytes(
      job.inputs,
      first,
      base.getBatchSize,
      job.variableLengthBytes
    )
    val config = base.toBuilder
      .setRank(rank)
      .addAllPeers(peers.asJava)
      .setSpillDir(SpindleCoreShim.localDir)
      .setLabel(label)
      .setExportDir(exportDir.map(_.toString).getOrElse(""))
      .setEventsDir(events.map(_.localDir).getOrElse(""))
    if (rank == 0 && config.getEarlyStoppingMetric.nonEmpty) config.setBestDir(scratch.resolve("best").toString)
    MemoryBudget.forTraining(job.inputs, arenaBytes, config.getBatchSize, config.getNumSlots).check()
    for (store <- job.checkpoints; path <- Some(resumeFrom).filter(_.nonEmpty))
      config.setResume(store.download(new HPath(path), Files.createDirectories(scratch.resolve("restore"))))
    val uploads = if (rank == 0) job.checkpoints else None
    uploads.foreach(_ => config.setCheckpointDir(Files.createDirectories(scratch.resolve("checkpoints")).toString))
    config.addAllInputs(BatchWriter.layouts(job.inputs, arenaBytes, job.padValue).asJava)
    val opened = Trainer.open(model, config.build(), rendezvous)
    trainer = Some(opened)
    if (ctx.isInterrupted()) opened.close() // killed while it opened: the switch saw no trainer
    val uploader = uploads.map(new Checkpoints.Uploader(opened, _, config.getLabel))
    val reporter = if (rank == 0) Some(job.progress.report(opened, config.getLabel)) else None
    ctx.addTaskCompletionListener[Unit](_ => reporter.foreach(_.close()))
    val layout = opened.layout
    val (feedNanos, waitNanos) =
      feed(opened, rows, new BatchWriter(job.inputs, arenaBytes, layout, rank), config.getBatchSize)
    for (inputs <- job.validationInputs) {
      opened.endTrainingData()
      feed(opened, validationRows, new BatchWriter(inputs, arenaBytes, layout, rank), config.getBatchSize)
    }
    val report = opened
      .finish()
      .toBuilder
      .setFeedMicros((feedNanos - waitNanos) / 1000)
      .setFeedWaitMicros(waitNanos / 1000)
      .build()
    uploader.flatMap(_.join()).foreach(e => throw e)
    for (dir <- exportDir; target <- job.exportPath)
      Export.publish(dir.toString, target, job.overwriteExport, job.hadoopConf.value)
    Iterator(report.toByteArray)
  }

  /** Streams `rows` into the trainer's batch windows ([[PartitionFeed.fill]]); returns the nanoseconds it took and
    * those it waited for a window.
    */
  private def feed(
      trainer: Trainer,
      rows: PartitionFeed,
      writer: BatchWriter,
      batchSize: Int
  ): (Long, Long) = {
    val started = System.nanoTime()
    var waited = 0L
    var rowNumber = 0L
    while (rows.hasNext) {
      val waiting = System.nanoTime()
      val base = trainer.acquireBatch()
      waited += System.nanoTime() - waiting
      val n = rows.fill(writer, base, batchSize, rowNumber)
      trainer.submitBatch(n)
      rowNumber += n
    }
    (System.nanoTime() - started, waited)
  }
}

object TrainTask {
  private val log = LoggerFactory.getLogger(classOf[TrainTask])
}
