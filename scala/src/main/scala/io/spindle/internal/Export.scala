package io.spindle.internal

import org.apache.hadoop.conf.Configuration
import org.apache.hadoop.fs.{FileSystem, FileUtil, Path => HPath}

import io.spindle.{SpindleIOException, SpindleInputException}

/** Where a trained model goes, and how it replaces what is there, following Spark ML's `save` convention: an existing
  * non-empty `exportPath` is refused unless the user asked to overwrite it, and even then the old content is replaced
  * only once the new export is complete, so a failed fit never leaves the user without their previous model.
  */
object Export {

  /** On the driver, before any job: refuses an `exportPath` that holds files (unless `overwrite`), or that is, holds or
    * lies inside the SavedModel trained from or the checkpoint directory (`others`: param name -> path).
    */
  def check(target: String, overwrite: Boolean, others: Seq[(String, String)], conf: Configuration): Unit = {
    val to = qualified(target, conf)
    others.foreach { case (name, path) =>
      val other = qualified(path, conf)
      if (inside(to, other) || inside(other, to))
        throw new SpindleInputException(
          s"exportPath $target overlaps $name $path (one is, or lies inside, the other): exporting there would " +
            s"overwrite it; choose a separate exportPath"
        )
    }
    if (!overwrite && holdsFiles(to, conf))
      throw new SpindleInputException(
        s"exportPath $target already exists and is not empty; choose another path, or setOverwriteExport(true) to " +
          s"replace it once the new model is complete"
      )
  }

  /** On the chief: copies the exported model in `localDir` beside `target`, then swaps it in. An existing `target` is
    * renamed aside and deleted only after the new model is in place; when the swap fails it is put back.
    */
  def publish(localDir: String, target: String, overwrite: Boolean, conf: Configuration): Unit = {
    val to = new HPath(target)
    val fs = to.getFileSystem(conf)
    val stamp = System.currentTimeMillis()
    val staging = new HPath(to.getParent, s".${to.getName}.incomplete-$stamp")
    if (!FileUtil.copy(new java.io.File(localDir), fs, staging, false, conf))
      throw new SpindleIOException(s"exporting the trained model to $staging failed")
    if (fs.exists(to)) {
      if (!overwrite && holdsFiles(to, conf)) {
        fs.delete(staging, true)
        throw new SpindleInputException(
          s"exportPath $target filled up while training ran; the trained model was not exported. setOverwriteExport" +
            s"(true) to replace it"
        )
      }
      val previous = new HPath(to.getParent, s".${to.getName}.previous-$stamp")
      if (!fs.rename(to, previous)) throw new SpindleIOException(s"moving the old $target aside to $previous failed")
      if (!fs.rename(staging, to)) {
        fs.rename(previous, to)
        throw new SpindleIOException(s"renaming $staging to $target failed; the previous $target is back in place")
      }
      fs.delete(previous, true)
    } else if (!fs.rename(staging, to)) throw new SpindleIOException(s"renaming $staging to $target failed")
  }

  private def qualified(path: String, conf: Configuration): HPath = {
    val p = new HPath(path)
    p.getFileSystem(conf).makeQualified(p)
  }

  private def inside(path: HPath, dir: HPath): Boolean = {
    val (p, d) = (path.toUri.normalize.toString.stripSuffix("/"), dir.toUri.normalize.toString.stripSuffix("/"))
    p == d || p.startsWith(d + "/")
  }

  private def holdsFiles(path: HPath, conf: Configuration): Boolean = {
    val fs: FileSystem = path.getFileSystem(conf)
    fs.exists(path) && (!fs.getFileStatus(path).isDirectory || fs.listStatus(path).nonEmpty)
  }
}
