package io.spindle.cluster

import java.nio.charset.StandardCharsets.UTF_8
import java.nio.file.{Files, Path, Paths, StandardOpenOption}
import java.util.{Collections, Map => JMap}

import scala.jdk.CollectionConverters._

import org.apache.spark.{SparkEnv, TaskContext}
import org.apache.spark.api.plugin.{DriverPlugin, ExecutorPlugin, PluginContext, SparkPlugin}

/** Spark's own record of the GPUs it gave each task: an executor plugin appends, as each task starts, a line "stage
  * task executor gpus" to the file `spark.spindle.test.taskGpus` names. A test compares what Spindle's sessions did
  * with it; it needs no task to end well (Spark kills a barrier stage's other tasks at the first failure).
  */
class TaskGpus extends SparkPlugin {
  override def driverPlugin(): DriverPlugin = null

  override def executorPlugin(): ExecutorPlugin = new ExecutorPlugin {
    private var file: Path = _

    override def init(ctx: PluginContext, extraConf: JMap[String, String]): Unit =
      file = Paths.get(ctx.conf().get(TaskGpus.FileConf))

    override def onTaskStart(): Unit = {
      val task = TaskContext.get()
      val gpus = task.resources().get("gpu").map(_.addresses.mkString(",")).getOrElse("-")
      val line = s"${task.stageId()} ${task.taskAttemptId()} ${SparkEnv.get.executorId} $gpus\n"
      // One short O_APPEND write per line: the executor JVMs' lines do not interleave.
      Files.write(file, line.getBytes(UTF_8), StandardOpenOption.CREATE, StandardOpenOption.APPEND)
    }
  }
}

object TaskGpus {
  val FileConf = "spark.spindle.test.taskGpus"

  /** A task's start as the plugin saw it. */
  final case class Start(stage: Int, task: Long, executor: String, gpus: String)

  /** Every start recorded in `file` so far. */
  def read(file: Path): Seq[Start] =
    (if (Files.exists(file)) Files.readAllLines(file, UTF_8) else Collections.emptyList[String]()).asScala.toSeq
      .map(_.split(" ") match { case Array(s, t, e, g) => Start(s.toInt, t.toLong, e, g) })
}
