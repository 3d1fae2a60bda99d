package io.spindle.run

import java.nio.charset.StandardCharsets
import java.nio.file.{Files, Path}

import scala.jdk.CollectionConverters._
import scala.util.control.NonFatal

import com.fasterxml.jackson.databind.ObjectMapper
import org.apache.hadoop.fs.FileUtil
import org.apache.spark.{BarrierTaskContext, SpindleBarrierShim, SpindleCoreShim}
import org.apache.spark.sql.catalyst.InternalRow
import org.slf4j.LoggerFactory

import io.spindle.{NativeLoader, SpindleWorkerException}
import io.spindle.internal.{BatchWriter, Cleanup, InputPlan, KillSwitch, ScriptFeed}
import io.spindle.proto.{FeederLayout, ScriptFeedConfig}

/** What every task of a run needs, serialized once with the stage. `steps` is the batches each reader feeds per epoch
  * (agreed on the driver so that synchronous workers step together; -1 for a lone reader, which feeds all it has).
  */
final case class RunJob(
    spec: RunSpec,
    inputs: Seq[InputPlan],
    steps: Long,
    driver: String,
    secret: Array[Byte],
    encrypt: Boolean
)

/** One process of a `spindle.run` job: the body of a barrier task.
  *
  *   1. Holds a port for the task's TensorFlow server ([[PortHold]]) and publishes it through `allGather`; every task
  *      builds the same TF_CONFIG from the gathered addresses. 2. Starts the script process (Spindle's Python worker)
  *      with TF_CONFIG, streaming its output to the driver. 3. A reader task writes its partition into the runtime's
  *      script feed (at most `steps` batches), which the script reads as NumPy arrays through `spindle.data`. 4. Waits
  *      for the process; one that fails throws (with its traceback) and tells the driver, which cancels the run. A
  *      server (parameter server, or worker of a parameter-server cluster) is stopped once every other process ended.
  *
  * Everything it opens is closed by the task's completion listener, and by its kill switch when Spark kills the task.
  */
final class RunTask(job: RunJob) extends (Iterator[InternalRow] => Iterator[Array[Byte]]) with Serializable {

  override def apply(rows: Iterator[InternalRow]): Iterator[Array[Byte]] = {
    val ctx = BarrierTaskContext.get()
    SpindleBarrierShim.releaseTimerAfterMain()
    val spec = job.spec
    val rank = ctx.partitionId()
    val (role, index) = spec.roles(rank)
    val host = SpindleCoreShim.executorHost
    val label = s"spindle.run rank $rank ($role $index)"
    val log = LoggerFactory.getLogger(classOf[RunTask])
    val scratch = Files.createTempDirectory(java.nio.file.Paths.get(SpindleCoreShim.localDir), "spindle-run")
    val port = new PortHold(host)
    @volatile var feed: Option[ScriptFeed] = None
    @volatile var process: Option[WorkerProcess] = None
    val link = new TaskLink(job.driver, job.secret, rank, job.encrypt)
    // Only a reader loads the native library. A hang-up only wakes the feed's waits and may come from any thread; the
    // feed is closed (its windows unmapped) on the task thread alone, once no row is being written.
    def hangUp(): Unit = feed.foreach(_.hangUp())
    val killSwitch = new KillSwitch(ctx, label, () => Cleanup.all(() => process.foreach(_.stop()), () => hangUp()))
    ctx.addTaskCompletionListener[Unit] { _ =>
      Cleanup.all(
        () => killSwitch.close(),
        () => process.foreach(_.stop()),
        () => feed.foreach(_.close()),
        () => port.close(),
        () => link.close(),
        () => FileUtil.fullyDelete(scratch.toFile)
      )
    }
    try {
      val tfAddress = s"$host:${port.port}"
      val addresses = ctx.allGather(tfAddress).toSeq
      val env = spec.env ++ Map(
        "TF_CONFIG" -> RunTask.tfConfig(spec, addresses, role, index),
        // TensorFlow's gRPC server may then bind the port this task holds.
        "TF_GRPC_REUSE_PORT" -> "1",
        "PYTHONUNBUFFERED" -> "1",
        "SPINDLE_RUN_DIR" -> scratch.toString,
        "SPINDLE_RANK" -> rank.toString
      ) ++ RunTask.kerasDistribution(spec, addresses, rank)
      Files.write(scratch.resolve("payload.bin"), spec.payload)
      // A reader's feed, with where each input lies in its windows.
      val layout = if (spec.readers.contains(rank) && job.inputs.nonEmpty) {
        NativeLoader.ensureLoaded()
        val opened = openFeed(scratch)
        feed = Some(opened)
        val layout = opened.layout
        Files.write(
          scratch.resolve("feed.json"),
          RunTask.descriptor(job, layout, scratch).getBytes(StandardCharsets.UTF_8)
        )
        Some(layout)
      } else None
      val started = new WorkerProcess(spec.command, env, scratch.toFile, label, log, link.line)
      process = Some(started)
      // A script that exits (it raised, before reading or after a few batches) stops the feed at once: rows are
      // never written for a reader that is gone, and the exit code and traceback are read below.
      started.onExit { () =>
        try hangUp()
        catch { case NonFatal(_) => } // the task closed its feed meanwhile
      }
      link.started(s"$role $index", host, tfAddress)
      for (l <- layout; f <- feed) feedRows(f, rows, l, rank, label)
      if (spec.serves(rank)) {
        // A server's process runs until the others end; if it dies first, the driver hears of it and cancels the run.
        watchServer(started, link, rank, label)
        ctx.barrier()
        started.stop()
      } else {
        val code = started.waitFor()
        if (code != 0) {
          val traceback = RunTask.traceback(scratch).getOrElse(started.stderrTail)
          link.exited(code, traceback)
          throw new SpindleWorkerException(s"$label on $host exited with code $code:\n$traceback")
        }
        ctx.barrier()
      }
      link.exited(0, "")
      val result = scratch.resolve("result.bin")
      Iterator(if (rank == 0 && Files.exists(result)) Files.readAllBytes(result) else Array.emptyByteArray)
    } catch {
      case e: SpindleWorkerException => throw e
      case e: Throwable              =>
        // The driver hears why, rather than of a task that ended without a word.
        try link.exited(-1, s"$label on $host: $e")
        catch { case _: Throwable => }
        throw e
    }
  }

  private def openFeed(scratch: Path): ScriptFeed = {
    val config = ScriptFeedConfig
      .newBuilder()
      .addAllInputs(BatchWriter.layouts(job.inputs, job.inputs.map(_ => 0L), 0.0).asJava)
      .setBatchSize(job.spec.batchSize)
      .setNumSlots(job.spec.numSlots)
      .setDir(scratch.toString)
      .setSocket(RunTask.socketPath(scratch).toString)
    ScriptFeed.open(config.build())
  }

  /** Writes rows into the feed's windows, at most `steps` of them, until the rows end or the reader is gone (the script
    * hung up or its process exited); then tells the script the input is over.
    */
  private def feedRows(
      feed: ScriptFeed,
      rows: Iterator[InternalRow],
      layout: FeederLayout,
      rank: Int,
      label: String
  ): Unit = {
    val writer = new BatchWriter(job.inputs, job.inputs.map(_ => 0L), layout, rank)
    val buffered = rows.buffered
    var (windows, rowNumber, readerGone) = (0L, 0L, false)
    while (!readerGone && buffered.hasNext && windows != job.steps) {
      val window = feed.acquire()
      if (window.isPresent) {
        val n = writer.fill(window.getAsLong, buffered, job.spec.batchSize, rowNumber)
        feed.submit(n)
        windows += 1
        rowNumber += n
      } else readerGone = true
    }
    val log = LoggerFactory.getLogger(classOf[RunTask])
    if (readerGone) log.info(s"$label: the script stopped reading after $windows batches")
    else if (buffered.hasNext)
      log.info(s"$label: fed the $windows batches every reader has; the partition's other rows are left out")
    feed.end()
  }

  private def watchServer(process: WorkerProcess, link: TaskLink, rank: Int, label: String): Unit = {
    val t = new Thread(
      () => {
        val code = process.waitFor()
        // Stopped by this task once the run ended, or failed on its own.
        if (code != 0 && !process.stopped) link.exited(code, process.stderrTail)
      },
      s"spindle-run server watch $label"
    )
    t.setDaemon(true)
    t.start()
  }
}

object RunTask {
  private val mapper = new ObjectMapper()

  /** TF_CONFIG for task (`role`, `index`): the cluster of every role's gathered addresses, in rank order. */
  def tfConfig(spec: RunSpec, addresses: Seq[String], role: String, index: Int): String = {
    val root = mapper.createObjectNode()
    val cluster = root.putObject("cluster")
    spec.roles.zip(addresses).groupBy(_._1._1).toSeq.sortBy(_._1).foreach { case (r, tasks) =>
      val list = cluster.putArray(r)
      tasks.sortBy(_._1._2).foreach { case (_, address) => list.add(address) }
    }
    val task = root.putObject("task")
    task.put("type", role)
    task.put("index", index)
    mapper.writeValueAsString(root)
  }

  /** The variables `keras.distribution.initialize()` reads (Keras 3 on JAX, docs/keras3.md) for a process that trains
    * in sync, the chief and the workers of a cluster without parameter servers; none for the others. The job's
    * processes are those tasks in rank order; the first's address, a port its task holds, is JAX's coordinator, which
    * binds it as TensorFlow's server would (gRPC sets SO_REUSEPORT): a JAX process starts no TensorFlow server.
    */
  def kerasDistribution(spec: RunSpec, addresses: Seq[String], rank: Int): Map[String, String] = {
    val synchronous = if (spec.ps > 0) Nil else spec.readers
    val processId = synchronous.indexOf(rank)
    if (processId < 0) Map.empty
    else
      Map(
        "KERAS_DISTRIBUTION_JOB_ADDRESSES" -> synchronous.map(addresses).mkString(","),
        "KERAS_DISTRIBUTION_NUM_PROCESSES" -> synchronous.size.toString,
        "KERAS_DISTRIBUTION_PROCESS_ID" -> processId.toString
      )
  }

  /** What `spindle.data` reads to map the feed: files, batch, agreed steps and where each array lies in a window. */
  def descriptor(job: RunJob, layout: FeederLayout, scratch: Path): String = {
    val root = mapper.createObjectNode()
    root.put("spill", scratch.resolve("feed.spill").toString)
    root.put("socket", socketPath(scratch).toString)
    root.put("stride", layout.getSlotStride)
    root.put("batch_size", job.spec.batchSize)
    root.put("num_slots", job.spec.numSlots)
    root.put("steps", job.steps)
    val inputs = root.putArray("inputs")
    job.spec.inputs.zipWithIndex.foreach { case (in, i) =>
      val node = inputs.addObject()
      node.put("name", in.column)
      node.put("dtype", in.dtype.name)
      val shape = node.putArray("shape")
      in.shape.foreach(d => shape.add(d))
      node.put("offset", layout.getInputOffsets(i))
      node.put("row_bytes", layout.getRowBytes(i))
    }
    mapper.writeValueAsString(root)
  }

  /** The feed's socket: in the task's folder when its path fits a Unix socket address (108 bytes), else in the system's
    * temporary folder under the folder's own unique name.
    */
  def socketPath(scratch: Path): Path = {
    val inside = scratch.resolve("feed.sock")
    if (inside.toString.getBytes(StandardCharsets.UTF_8).length < 100) inside
    else java.nio.file.Paths.get("/tmp", s"${scratch.getFileName}.sock")
  }

  /** The traceback Spindle's Python worker wrote when the script raised. */
  def traceback(scratch: Path): Option[String] = {
    val file = scratch.resolve("traceback.txt")
    if (Files.exists(file)) Some(new String(Files.readAllBytes(file), StandardCharsets.UTF_8)) else None
  }
}
