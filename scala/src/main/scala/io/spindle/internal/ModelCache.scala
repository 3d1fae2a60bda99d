package io.spindle.internal

import java.nio.file.{Files, Path, Paths}
import java.security.MessageDigest
import java.util.concurrent.FutureTask

import scala.collection.mutable
import scala.jdk.CollectionConverters._

import org.apache.hadoop.conf.Configuration
import org.apache.hadoop.fs.{FileUtil, Path => HPath}
import org.apache.spark.{SpindleCoreShim, TaskContext}

import io.spindle.{NativeLoader, SpindleModelException}
import io.spindle.jni.NativeRuntime
import io.spindle.proto.ModelConfig

/** Loaded sessions of this JVM, one per (model, tags, threads), shared by every task of the executor.
  *
  * Loading a SavedModel is costly (graph, variables, thread pools), so sessions live as long as the JVM; a shutdown
  * hook closes them, and [[ModelCache.clear]] releases them early. Remote models (any Hadoop FileSystem other than the
  * local one) are copied once per JVM to local disk, because TensorFlow's C API reads local files only.
  */
object ModelCache {

  /** A session's settings. `gpus`: the CUDA ids Spark assigned the task (see [[gpusOfTask]]); tasks that hold different
    * GPUs get sessions of their own. `opLibraries`: the qualified paths [[OpLibraries.ship]] returned for the op
    * libraries the model needs, loaded before the model in whichever JVM loads it.
    */
  final case class Key(
      localPath: String,
      tags: Seq[String],
      intraOpThreads: Int,
      interOpThreads: Int,
      gpus: Seq[String] = Nil,
      opLibraries: Seq[String] = Nil
  )

  /** The GPUs Spark assigned the running task (`spark.task.resource.gpu.amount`), none outside a task. */
  def gpusOfTask(): Seq[String] =
    Option(TaskContext.get()).flatMap(_.resources().get("gpu")).map(_.addresses.toSeq).getOrElse(Nil)

  private val models = mutable.Map.empty[Key, LoadedModel]
  private val localized = mutable.Map.empty[String, Path]
  // Sessions SpindlePlugin loads when the JVM starts, each handed to the first task that asks for its key.
  private val spares = mutable.Map.empty[Key, FutureTask[LoadedModel]]

  sys.addShutdownHook(clear())

  /** The session for `key`, loading it on first use. */
  def acquire(key: Key): LoadedModel = synchronized {
    models.getOrElseUpdate(key, loadPrivate(key))
  }

  /** A session of its own for the caller, who closes it (training: its variables change): the spare for `key` when
    * there is one (waiting for it if it is still loading), else a new one.
    */
  def loadPrivate(key: Key): LoadedModel =
    synchronized(spares.remove(key)).flatMap(Background.result(_)).getOrElse(load(key))

  /** Starts loading a spare session for `key` on a thread of its own, unless one is there already. */
  def warm(key: Key): Unit = synchronized {
    if (!spares.contains(key)) spares(key) = Background(s"spindle-warm ${key.localPath}")(load(key))
  }

  private def load(key: Key): LoadedModel = {
    NativeLoader.ensureLoaded()
    OpLibraries.loadShipped(key.opLibraries)
    val config = ModelConfig
      .newBuilder()
      .setPath(key.localPath)
      .addAllTags(key.tags.asJava)
      .setIntraOpThreads(key.intraOpThreads)
      .setInterOpThreads(key.interOpThreads)
      .addAllGpuAddresses(key.gpus.asJava)
      // Every session of the JVM sees the executor's GPUs, its graph placed on the task's GPU or, holding none, on
      // the CPU (see placement.rs).
      .addAllExecutorGpus(SpindleCoreShim.executorGpus.asJava)
      .build()
    new LoadedModel(NativeRuntime.loadModel(config.toByteArray), key.localPath)
  }

  /** The keys of the spare sessions loaded and not yet taken. */
  private[spindle] def spareKeys: Seq[Key] = synchronized(spares.collect { case (k, f) if f.isDone => k }.toSeq)

  /** Number of sessions loaded in this JVM. */
  private[spindle] def size: Int = synchronized(models.size)

  /** Closes every cached and spare session (tasks holding feeders keep theirs alive until they finish). */
  def clear(): Unit = synchronized {
    models.values.foreach(_.close())
    models.clear()
    spares.values.flatMap(Background.result(_)).foreach(_.close())
    spares.clear()
  }

  /** `path` made absolute on the driver, so that executors, whose working directory differs, find the same model. */
  def qualify(path: String, conf: Configuration): String = {
    val p = new HPath(path)
    p.getFileSystem(conf).makeQualified(p).toString
  }

  /** A local directory holding the SavedModel at `path` (copied from a remote FileSystem once per JVM). */
  def localize(path: String, conf: Configuration): String = synchronized {
    val hpath = new HPath(path)
    val fs = hpath.getFileSystem(conf)
    if (fs.getUri.getScheme == "file") {
      val local = Paths.get(fs.makeQualified(hpath).toUri)
      if (!Files.isDirectory(local)) throw new SpindleModelException(s"SavedModel directory $path does not exist")
      local.toString
    } else {
      localized
        .getOrElseUpdate(
          path, {
            if (!fs.exists(hpath)) throw new SpindleModelException(s"SavedModel directory $path does not exist")
            val digest = MessageDigest.getInstance("SHA-1").digest(fs.makeQualified(hpath).toString.getBytes("UTF-8"))
            val dir = Files.createTempDirectory("spindle-model-" + digest.take(6).map("%02x".format(_)).mkString)
            dir.toFile.deleteOnExit()
            val target = new HPath(dir.toUri.toString, "model")
            if (!FileUtil.copy(fs, hpath, target.getFileSystem(conf), target, false, conf))
              throw new SpindleModelException(s"copying SavedModel $path to local disk failed")
            dir.resolve("model")
          }
        )
        .toString
    }
  }
}
