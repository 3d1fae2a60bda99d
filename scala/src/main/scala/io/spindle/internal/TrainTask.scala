package io.spindle.internal

import java.nio.file.Files

import scala.jdk.CollectionConverters._

import org.apache.hadoop.fs.{FileUtil, LocalFileSystem, Path => HPath}
import org.apache.spark.{BarrierTaskContext, SpindleCoreShim}
import org.apache.spark.sql.catalyst.InternalRow

import io.spindle.SpindleInputException
import io.spindle.jni.NativeRuntime
import io.spindle.proto.{FeederLayout, TrainerConfig, TrainingReport}

/** What every barrier task of a training job needs, serialized once with the stage. */
final case class TrainJob(
    modelPath: String,
    model: ModelCache.Key,
    inputs: Seq[InputPlan],
    config: Array[Byte],
    exportPath: Option[String],
    hadoopConf: SerializableConfiguration,
    checkpoints: Option[Checkpoints],
    progress: Progress,
    tensorboardDir: Option[String]
)

/** One worker of a training job: the body of a barrier task. It loads a session of its own, publishes its ring address
  * through `allGather` (the chief adds the checkpoint every worker resumes from: the newest complete one in
  * `checkpointDir` when the task starts, so a stage Spark retries after a failure resumes too), streams its partition
  * into the trainer's spill windows and, on the chief (rank 0), uploads checkpoints as they come and the exported
  * SavedModel at the end. Everything native it opens is closed by the task's completion listener, on success or
  * failure; closing the trainer shuts its ring, so peers blocked on this worker fail at once.
  */
final class TrainTask(job: TrainJob) extends (Iterator[InternalRow] => Iterator[Array[Byte]]) with Serializable {

  override def apply(rows: Iterator[InternalRow]): Iterator[Array[Byte]] = {
    val ctx = BarrierTaskContext.get()
    val rank = ctx.partitionId()
    val world = ctx.getTaskInfos().length
    val local = ModelCache.localize(job.modelPath, job.hadoopConf.value)
    val model = ModelCache.loadPrivate(job.model.copy(localPath = local))
    var rendezvous = 0L
    var trainer = 0L
    val scratch = Files.createTempDirectory(java.nio.file.Paths.get(SpindleCoreShim.localDir), "spindle-train")
    val exportDir = if (rank == 0 && job.exportPath.isDefined) Some(scratch.resolve("export")) else None
    val events = if (rank == 0) job.tensorboardDir.map(new TensorBoardDir(_, job.hadoopConf.value, scratch)) else None
    ctx.addTaskCompletionListener[Unit] { _ =>
      NativeRuntime.closeTrainer(trainer)
      NativeRuntime.closeRendezvous(rendezvous)
      model.close()
      events.foreach(_.publish())
      FileUtil.fullyDelete(scratch.toFile)
    }
    val newest = if (rank == 0) job.checkpoints.flatMap(_.newest()).map(_.toString).getOrElse("") else ""
    val (peers, resumeFrom) =
      if (world == 1) (Seq.empty, newest)
      else {
        rendezvous = NativeRuntime.bindRendezvous(SpindleCoreShim.executorHost)
        val gathered = ctx.allGather(NativeRuntime.rendezvousAddress(rendezvous) + "\n" + newest).toSeq
        (gathered.map(_.takeWhile(_ != '\n')), gathered.head.dropWhile(_ != '\n').drop(1))
      }
    val buffered = rows.buffered
    val shapes = job.inputs.map(in => RowShapes.of(in, if (buffered.hasNext) Some(buffered.head) else None))
    val config = TrainerConfig
      .parseFrom(job.config)
      .toBuilder
      .setRank(rank)
      .addAllPeers(peers.asJava)
      .setSpillDir(SpindleCoreShim.localDir)
      .setLabel(s"stage ${ctx.stageId()} rank $rank of $world")
      .setExportDir(exportDir.map(_.toString).getOrElse(""))
      .setEventsDir(events.map(_.localDir).getOrElse(""))
    for (store <- job.checkpoints; path <- Some(resumeFrom).filter(_.nonEmpty))
      config.setResume(store.download(new HPath(path), Files.createDirectories(scratch.resolve("restore"))))
    val uploads = if (rank == 0) job.checkpoints else None
    uploads.foreach(_ => config.setCheckpointDir(Files.createDirectories(scratch.resolve("checkpoints")).toString))
    config.addAllInputs(BatchWriter.layouts(job.inputs, shapes).asJava)
    // The rendezvous is consumed by openTrainer, even when it fails.
    val consumed = rendezvous
    rendezvous = 0
    trainer = NativeRuntime.openTrainer(model.nativeHandle, config.build().toByteArray, consumed)
    val uploader = uploads.map(new Checkpoints.Uploader(trainer, _, config.getLabel))
    val reporter = if (rank == 0) Some(job.progress.report(trainer, config.getLabel)) else None
    ctx.addTaskCompletionListener[Unit](_ => reporter.foreach(_.close()))
    val layout = FeederLayout.parseFrom(NativeRuntime.trainerLayout(trainer))
    val (feedNanos, waitNanos) =
      feed(trainer, buffered, new BatchWriter(job.inputs, shapes, layout, rank), config.getBatchSize)
    val report = TrainingReport
      .parseFrom(NativeRuntime.finishTraining(trainer))
      .toBuilder
      .setFeedMicros((feedNanos - waitNanos) / 1000)
      .setFeedWaitMicros(waitNanos / 1000)
      .build()
    uploader.flatMap(_.join()).foreach(e => throw e)
    for (dir <- exportDir; target <- job.exportPath) upload(dir.toString, target)
    Iterator(report.toByteArray)
  }

  /** Streams `rows` into the trainer's batch windows; returns the nanoseconds it took and those it waited for a window.
    */
  private def feed(trainer: Long, rows: Iterator[InternalRow], writer: BatchWriter, batchSize: Int): (Long, Long) = {
    val started = System.nanoTime()
    var waited = 0L
    var rowNumber = 0L
    while (rows.hasNext) {
      val waiting = System.nanoTime()
      val base = NativeRuntime.acquireBatch(trainer)
      waited += System.nanoTime() - waiting
      var n = 0
      while (n < batchSize && rows.hasNext) {
        writer.write(rows.next(), base, n, rowNumber)
        n += 1
        rowNumber += 1
      }
      NativeRuntime.submitBatch(trainer, n)
    }
    (System.nanoTime() - started, waited)
  }

  private def upload(localDir: String, target: String): Unit = {
    val conf = job.hadoopConf.value
    val to = new HPath(target)
    val fs = to.getFileSystem(conf)
    // Written beside the target and renamed, so a reader never sees half a model.
    val staging = new HPath(to.getParent, s".${to.getName}.incomplete")
    fs.delete(staging, true)
    if (!FileUtil.copy(new java.io.File(localDir), fs, staging, false, conf))
      throw new SpindleInputException(s"exporting the trained model to $staging failed")
    fs.delete(to, true)
    if (!fs.rename(staging, to)) throw new SpindleInputException(s"renaming $staging to $target failed")
  }
}

/** Row shapes of an input for one partition: unknown inner dimensions come from the partition's first row. */
object RowShapes {
  def of(in: InputPlan, first: Option[InternalRow]): Seq[Long] =
    if (!in.rowShape.contains(-1L)) in.rowShape
    else
      first match {
        // An empty partition writes nothing: any positive size will do.
        case None => in.rowShape.map(d => if (d < 0) 1L else d)
        case Some(row) if row.isNullAt(in.ordinal) =>
          throw new SpindleInputException(
            s"column '${in.column}' (input '${in.tensor}'), first row of the partition: value is null"
          )
        case Some(row) =>
          Seq(in.kind match {
            case ColumnKind.Vector => row.getStruct(in.ordinal, 4).getInt(1).toLong
            case _                 => row.getArray(in.ordinal).numElements().toLong
          })
      }
}

/** Where the chief's TensorBoard event files go. On the local filesystem the trainer writes them in place, so a running
  * TensorBoard follows the training live; on any other Hadoop FileSystem they are written on local disk and copied to
  * `dir` when the task ends, failed or not.
  */
final class TensorBoardDir(dir: String, conf: org.apache.hadoop.conf.Configuration, scratch: java.nio.file.Path) {
  private val target = new HPath(dir)
  private val fs = target.getFileSystem(conf)
  private val direct = fs.isInstanceOf[LocalFileSystem]

  /** The local directory the trainer writes into. */
  val localDir: String =
    if (direct) fs.asInstanceOf[LocalFileSystem].pathToFile(target).toString else scratch.resolve("events").toString

  /** Copies the event files to `dir` when they were written elsewhere. A failure is logged, not thrown: training's
    * outcome does not depend on its curves.
    */
  def publish(): Unit = if (!direct) {
    val files = Option(new java.io.File(localDir).listFiles()).toSeq.flatten
    try files.foreach(f => FileUtil.copy(f, fs, new HPath(target, f.getName), false, conf))
    catch {
      case scala.util.control.NonFatal(e) =>
        org.slf4j.LoggerFactory.getLogger(getClass).warn(s"copying TensorBoard events to $dir failed", e)
    }
  }
}
