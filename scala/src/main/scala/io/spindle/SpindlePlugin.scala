package io.spindle

import java.util.{Collections, Map => JMap}

import scala.util.control.NonFatal

import org.apache.hadoop.conf.Configuration
import org.apache.spark.{SparkConf, SparkContext, SpindleCoreShim}
import org.apache.spark.api.plugin.{DriverPlugin, ExecutorPlugin, PluginContext, SparkPlugin}
import org.slf4j.LoggerFactory

import io.spindle.internal.{Background, MemoryBudget, ModelCache}

/** Takes Spindle's start-up off the first `fit` and `transform`: `--conf spark.plugins=io.spindle.SpindlePlugin`.
  *
  * When the driver and each executor start, it loads the native runtime and libtensorflow, then a spare session of
  * every SavedModel in `spark.spindle.warmModels` (comma-separated paths, any Hadoop FileSystem), with the tags in
  * `spark.spindle.warmModels.tags` (default `serve`) and the default threads of training (`spark.task.cpus` for both
  * pools) and of inference (`spark.task.cpus` intra-op, the executor's concurrent tasks inter-op; one session when the
  * two agree, as on 1-core executors). All of it runs on a thread of its own, so the JVM starts as fast as without the
  * plugin. The first `fit` or `transform` that loads one of those models with those settings takes the spare (waiting
  * for it if it is still loading) instead of loading its own; later ones load as usual. A model that fails to warm up
  * is logged as a warning and loaded by its first user as without the plugin.
  */
class SpindlePlugin extends SparkPlugin {

  override def driverPlugin(): DriverPlugin = new DriverPlugin {
    override def init(sc: SparkContext, ctx: PluginContext): JMap[String, String] = {
      SpindlePlugin.warm(sc.getConf, sc.hadoopConfiguration)
      Collections.emptyMap()
    }
  }

  override def executorPlugin(): ExecutorPlugin = new ExecutorPlugin {
    override def init(ctx: PluginContext, extraConf: JMap[String, String]): Unit =
      SpindlePlugin.warm(ctx.conf, SpindleCoreShim.hadoopConfiguration(ctx.conf))
  }
}

object SpindlePlugin {

  /** The SavedModels to warm up, comma-separated. */
  val WarmModels = "spark.spindle.warmModels"

  /** Their MetaGraph tags, comma-separated. */
  val WarmTags = "spark.spindle.warmModels.tags"

  private val log = LoggerFactory.getLogger(classOf[SpindlePlugin])

  /** Starts the warm-up on a daemon thread and returns at once. */
  def warm(conf: SparkConf, hadoopConf: Configuration): Unit = {
    val paths = conf.get(WarmModels, "").split(",").map(_.trim).filter(_.nonEmpty).toSeq
    val tags = conf.get(WarmTags, "serve").split(",").map(_.trim).filter(_.nonEmpty).toSeq
    Background("spindle-plugin warm-up") {
      try NativeLoader.ensureLoaded()
      catch { case NonFatal(e) => log.warn(s"the native runtime failed to load; fit and transform will say why: $e") }
      for (path <- paths)
        try {
          val local = ModelCache.localize(path, hadoopConf)
          keys(conf, local, tags).foreach(ModelCache.warm)
        } catch {
          case NonFatal(e) =>
            log.warn(s"$WarmModels entry $path is not warmed up, its first user loads it: $e")
        }
    }
  }

  /** The sessions `fit` and `transform` load by default (see SpindleEstimator and SpindleModel). */
  private[spindle] def keys(conf: SparkConf, localPath: String, tags: Seq[String]): Seq[ModelCache.Key] = {
    val taskCpus = conf.getInt("spark.task.cpus", 1)
    Seq(
      ModelCache.Key(localPath, tags, taskCpus, taskCpus),
      ModelCache.Key(localPath, tags, taskCpus, MemoryBudget.concurrentTasks(conf))
    ).distinct
  }
}
