package io.spindle.internal

import java.io.File
import java.nio.file.{Files, Path => JPath, StandardCopyOption}

import scala.util.control.NonFatal

import org.apache.hadoop.conf.Configuration
import org.apache.hadoop.fs.{FileSystem, FileUtil, LocalFileSystem, Path => HPath}
import org.apache.spark.util.SerializableConfiguration

import io.spindle.SpindleCheckpointException
import io.spindle.proto.CheckpointInfo

/** The checkpoints of one training job in `dir`, on any Hadoop FileSystem.
  *
  * Checkpoint `n` (after global step n) is the directory `ckpt-n`: the saver's `variables.*` files and `checkpoint.pb`
  * (step, epoch and data position, model fingerprint). It is written as `.ckpt-n.incomplete` and renamed when whole, so
  * a directory named `ckpt-n` is always complete (on FileSystems whose directory rename is atomic: HDFS, local; on S3A
  * a rename copies, and a reader could see a partial directory only while it runs). The newest `keep` stay.
  */
final class Checkpoints(dir: String, keep: Int, hadoopConf: SerializableConfiguration) extends Serializable {

  private def conf: Configuration = hadoopConf.value

  private def root = new HPath(dir)
  private def fs: FileSystem = root.getFileSystem(conf)

  private def fail(what: String, e: Throwable) =
    throw new SpindleCheckpointException(s"checkpointDir $dir: $what: ${e.getMessage}", e)

  /** Fails now, on the driver, rather than after the first training steps, when `dir` cannot be written. */
  def requireWritable(): Unit =
    try {
      fs.mkdirs(root)
      val probe = new HPath(root, s".spindle-probe-${java.util.UUID.randomUUID()}")
      fs.create(probe, false).close()
      fs.delete(probe, false)
    } catch { case NonFatal(e) => fail("cannot be written", e) }

  /** The newest complete checkpoint, if any. */
  def newest(): Option[HPath] =
    try {
      if (!fs.exists(root)) None
      else
        fs.listStatus(root)
          .filter(_.isDirectory)
          .flatMap(s => Checkpoints.step(s.getPath.getName).map(_ -> s.getPath))
          .sortBy(-_._1)
          .headOption
          .map(_._2)
    } catch { case NonFatal(e) => fail("cannot be listed", e) }

  /** Copies checkpoint `path` into `localDir` and reads its position; the prefix it returns is local. */
  def download(path: HPath, localDir: JPath): CheckpointInfo = {
    val local = localDir.resolve(path.getName)
    try fs.copyToLocalFile(false, path, new HPath(local.toUri), true)
    catch { case NonFatal(e) => throw new SpindleCheckpointException(s"checkpoint $path cannot be read: $e", e) }
    val info =
      try CheckpointInfo.parseFrom(Files.readAllBytes(local.resolve(Checkpoints.InfoFile)))
      catch {
        case NonFatal(e) =>
          throw new SpindleCheckpointException(s"checkpoint $path is corrupt: ${Checkpoints.InfoFile}: $e", e)
      }
    info.toBuilder.setPrefix(local.resolve("variables").toString).setSource(path.toString).build()
  }

  /** Uploads a checkpoint the trainer saved locally, makes it visible, then drops the oldest beyond `keep`. */
  def upload(info: CheckpointInfo): Unit = {
    val local = new File(info.getPrefix).getParentFile
    val target = new HPath(root, s"ckpt-${info.getStep}")
    val staging = new HPath(root, s".ckpt-${info.getStep}.incomplete")
    try {
      fs.delete(staging, true)
      if (!moved(local, staging) && !FileUtil.copy(local, fs, staging, false, conf))
        throw new java.io.IOException(s"copy to $staging failed")
      fs.delete(target, true)
      if (!fs.rename(staging, target)) throw new java.io.IOException(s"renaming $staging to $target failed")
    } catch { case NonFatal(e) => fail(s"uploading checkpoint ${info.getStep}", e) }
    val complete = fs.listStatus(root).flatMap(s => Checkpoints.step(s.getPath.getName).map(_ -> s.getPath))
    complete.sortBy(-_._1).drop(keep).foreach { case (_, old) => fs.delete(old, true) }
  }

  /** Moves `local` to `staging` when both are on the same local filesystem: a rename costs no copy and no checksum, and
    * training shares the machine's cores with the upload.
    */
  private def moved(local: File, staging: HPath): Boolean = fs match {
    case lfs: LocalFileSystem =>
      try { Files.move(local.toPath, lfs.pathToFile(staging).toPath, StandardCopyOption.ATOMIC_MOVE); true }
      catch { case NonFatal(_) => false } // another device: copy instead
    case _ => false
  }
}

object Checkpoints {
  val InfoFile = "checkpoint.pb"

  private val Name = """ckpt-(\d+)""".r

  private def step(name: String): Option[Long] = name match {
    case Name(n) => Some(n.toLong)
    case _       => None
  }

  /** The step of checkpoint `path` (its last component, `ckpt-<step>`); 0 for none. */
  def stepOf(path: String): Long = step(path.split('/').last).getOrElse(0L)

  /** The chief's uploader: a thread taking each checkpoint the trainer saves to `store`. Training goes on meanwhile and
    * waits only when its next checkpoint is due before this one is up. A failed upload fails training (the trainer
    * throws it at its next checkpoint) and is kept here for the task to throw.
    */
  final class Uploader(trainer: Trainer, store: Checkpoints, label: String) {
    @volatile private var failure: Option[Throwable] = None
    private val thread = new Thread(() => run(), s"spindle-checkpoint-upload $label")
    thread.setDaemon(true)
    thread.start()

    private def run(): Unit =
      try {
        var next = trainer.nextCheckpoint()
        while (next.isDefined) {
          val info = next.get
          val message =
            try { store.upload(info); null }
            catch { case NonFatal(e) => failure = Some(e); e.getMessage }
          trainer.checkpointDone(info.getStep, message)
          next = if (message == null) trainer.nextCheckpoint() else None
        }
      } catch {
        // The trainer was closed under us: the task is failing already, with its own error.
        case NonFatal(e) => if (failure.isEmpty) failure = Some(e)
      }

    /** Waits for the last upload; the first failure, if any. */
    def join(): Option[Throwable] = { thread.join(); failure }
  }
}
