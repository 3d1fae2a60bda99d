package io.spindle.internal

import org.apache.hadoop.fs.{FileUtil, LocalFileSystem, Path => HPath}

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
