package io.spindle.internal

import java.net.URI
import java.time.Duration
import java.util.concurrent.{LinkedBlockingDeque, TimeUnit}

import scala.collection.mutable
import scala.jdk.CollectionConverters._
import scala.util.control.NonFatal

import com.fasterxml.jackson.databind.node.ObjectNode
import org.apache.hadoop.conf.Configuration
import org.apache.hadoop.fs.{Path => HPath}
import org.slf4j.Logger

import io.spindle.SpindleMlflowException

/** One MLflow run of one `fit`. Metrics go through a bounded buffer to a sender thread, so training never waits on
  * MLflow: a request that fails for want of an answer (a restarting server) is retried with a growing pause, at most
  * `limits.attempts` times and `limits.retryFor` long per batch; a batch past that is kept (the buffer bounds it too)
  * for [[finish]], which sends what is left, then the artifacts, then ends the run, all before `limits.flushFor`. What
  * still could not be sent is named in one warning; training goes on regardless.
  */
private[spindle] final class MlflowLog private (
    rest: MlflowRest,
    val runId: String,
    artifactUri: String,
    limits: MlflowLog.Limits,
    log: Logger
) {
  import MlflowLog.Metric

  private val queue = new LinkedBlockingDeque[Metric](limits.capacity)
  // Batches that ran out of retries while training went on: sent first at the end. Guarded by itself.
  private val unsent = mutable.ArrayBuffer[Metric]()
  @volatile private var dropped = 0L
  @volatile private var running = true

  private val sender = new Thread(() => sendWhileRunning(), s"spindle-mlflow $runId")
  sender.setDaemon(true)
  sender.start()

  // The values each epoch went with, as their bits: an epoch seen again with other values (a retried stage, the
  // summary at the end) goes again, and a NaN loss equals itself, so it goes once.
  private val epochs = new java.util.concurrent.ConcurrentHashMap[Long, (Long, Map[String, Long])]()

  /** Queues one epoch's loss and validation metrics, the epoch as MLflow's step, unless it went with these values. */
  def epoch(epoch: Long, loss: Double, validation: Map[String, Double]): Unit = {
    val bits = java.lang.Double.doubleToLongBits _
    val values = (bits(loss), validation.map { case (k, v) => k -> bits(v) })
    if (epochs.put(epoch, values) != values) {
      metric("loss", loss, epoch)
      validation.toSeq.sortBy(_._1).foreach { case (k, v) => metric(k, v, epoch) }
    }
  }

  /** Queues one metric; never blocks. A full buffer drops it (counted, and named at the end). */
  def metric(key: String, value: Double, step: Long): Unit =
    if (!queue.offer(Metric(key, value, step, System.currentTimeMillis()))) dropped += 1

  /** Sends what is left, uploads `artifacts` (the files under each Hadoop path, below its artifact directory), ends the
    * run with `status` (`FINISHED` or `FAILED`), all within `limits.flushFor`; warns of anything left unsent.
    */
  def finish(artifacts: Seq[(String, HPath)], conf: Configuration, status: String): Unit = {
    running = false
    sender.interrupt()
    sender.join(limits.timeout.toMillis)
    val deadline = System.nanoTime() + limits.flushFor.toNanos
    val left = unsent.synchronized(unsent.toVector) ++ drain()
    val notSent = left.grouped(MlflowLog.BatchSize).toVector.flatMap { batch =>
      if (send(batch, deadline)) Nil else batch
    }
    val notUploaded = artifacts.flatMap { case (dir, root) =>
      files(root, conf)
        .filterNot { case (rel, file) =>
          retrying(deadline)(rest.putArtifact(artifactUri, s"$dir/$rel", () => file.getFileSystem(conf).open(file)))
        }
        .map { case (rel, _) => s"$dir/$rel" }
    }
    val ended = retrying(deadline) {
      val body = rest.json.createObjectNode().put("run_id", runId).put("status", status)
      rest.post("runs/update", body.put("end_time", System.currentTimeMillis()))
    }
    if (notSent.nonEmpty || notUploaded.nonEmpty || !ended || dropped > 0) {
      val metrics = notSent.map(m => s"${m.key}@${m.step}").distinct
      log.warn(
        s"MLflow ${rest.trackingUri}, run $runId: not logged after ${limits.flushFor.getSeconds} s: " +
          s"${metrics.size} metrics ${metrics.mkString(", ")}; ${notUploaded.size} artifacts " +
          s"${notUploaded.mkString(", ")}; $dropped metrics dropped by the full buffer" +
          (if (ended) "" else s"; the run was not marked $status")
      )
    } else log.info(s"MLflow ${rest.trackingUri}: run $runId logged, status $status")
  }

  private def drain(): Vector[Metric] = {
    val out = new java.util.ArrayList[Metric]()
    queue.drainTo(out)
    out.asScala.toVector
  }

  // Interrupted by finish: the batch in hand goes to `unsent`, which finish sends.
  private def sendWhileRunning(): Unit =
    while (running) {
      val first =
        try queue.poll(1, TimeUnit.SECONDS)
        catch { case _: InterruptedException => null }
      if (first != null) {
        val more = Iterator.continually(queue.poll()).takeWhile(_ != null).take(MlflowLog.BatchSize - 1)
        val batch = first +: more.toVector
        val sent =
          try send(batch, System.nanoTime() + limits.retryFor.toNanos)
          catch { case _: InterruptedException => false }
        if (!sent) unsent.synchronized(unsent ++= batch)
      }
    }

  /** Logs `batch` in one request, retried until `deadline`; false when it could not. */
  private def send(batch: Seq[Metric], deadline: Long): Boolean = retrying(deadline) {
    val body = rest.json.createObjectNode().put("run_id", runId)
    val metrics = body.putArray("metrics")
    batch.foreach { m =>
      val metric = metrics.addObject().put("key", m.key).put("timestamp", m.timestamp).put("step", m.step)
      // JSON has no NaN or infinity: protobuf's JSON form (what the server parses) spells them as strings.
      if (m.value.isNaN || m.value.isInfinite) metric.put("value", m.value.toString) else metric.put("value", m.value)
    }
    rest.post("runs/log-batch", body)
  }

  /** Runs `request` until it succeeds, at most `limits.attempts` times and not past `deadline`, pausing 0.25 s, then
    * twice as long each time up to 4 s. A refusal (a 4xx other than 429) is not retried. False when it never succeeded.
    */
  private def retrying(deadline: Long)(request: => Any): Boolean = {
    var (attempt, pause) = (1, 250L)
    while (true) {
      try {
        request
        return true
      } catch {
        case f: MlflowRest.Failed if f.retryable && attempt < limits.attempts =>
          val left = (deadline - System.nanoTime()) / 1000000
          if (left <= pause) return false
          Thread.sleep(pause)
          attempt += 1
          pause = math.min(pause * 2, 4000L)
        case NonFatal(e) =>
          log.debug(s"MLflow request to ${rest.trackingUri} failed: $e")
          return false
      }
    }
    false
  }

  private def files(root: HPath, conf: Configuration): Seq[(String, HPath)] = {
    val fs = root.getFileSystem(conf)
    val top = fs.makeQualified(root).toUri.getPath.stripSuffix("/")
    val it = fs.listFiles(root, true)
    Iterator
      .continually(it)
      .takeWhile(_.hasNext)
      .map(_.next().getPath)
      .map(p => p.toUri.getPath.stripPrefix(top + "/") -> p)
      .toVector
  }
}

private[spindle] object MlflowLog {

  /** MLflow accepts at most 1000 metrics in one `runs/log-batch`. */
  val BatchSize = 1000

  /** The bounds of everything that sends.
    *
    * @param capacity
    *   metrics the buffer holds while the server does not answer
    * @param timeout
    *   of one request (connecting and reading)
    * @param attempts
    *   tries of one request
    * @param retryFor
    *   how long one batch is retried while training runs
    * @param flushFor
    *   how long the end of `fit` may spend on what is left, the artifacts and ending the run
    */
  final case class Limits(
      capacity: Int = 100000,
      timeout: Duration = Duration.ofSeconds(10),
      attempts: Int = 12,
      retryFor: Duration = Duration.ofSeconds(30),
      flushFor: Duration = Duration.ofSeconds(60)
  )

  final case class Metric(key: String, value: Double, step: Long, timestamp: Long)

  /** The tracking URI from the Param, else the driver's `MLFLOW_TRACKING_URI`; None: no MLflow. */
  def trackingUri(param: Option[String]): Option[String] =
    param.orElse(sys.env.get("MLFLOW_TRACKING_URI")).map(_.trim).filter(_.nonEmpty)

  /** Creates the run (in `experiment`, created when missing; None: MLflow's default) and logs `params`. Fails with a
    * [[SpindleMlflowException]] naming the URI when the server cannot be reached or refuses: before any job, so a
    * mistyped URI costs no training.
    */
  def start(
      uri: String,
      experiment: Option[String],
      runName: String,
      params: Seq[(String, String)],
      log: Logger,
      limits: Limits = Limits()
  ): MlflowLog = {
    val parsed =
      try URI.create(uri)
      catch { case e: IllegalArgumentException => throw new SpindleMlflowException(s"MLflow URI $uri: $e", e) }
    if (!Seq("http", "https").contains(Option(parsed.getScheme).getOrElse("").toLowerCase))
      throw new SpindleMlflowException(
        s"MLflow tracking URI $uri is not http:// or https:// (Spindle talks to a tracking server's REST API)"
      )
    val rest = new MlflowRest(parsed, limits.timeout)
    try {
      val experimentId = experiment.fold("0")(name => experimentIdOf(rest, name))
      val create = rest.json
        .createObjectNode()
        .put("experiment_id", experimentId)
        .put("run_name", runName)
        .put("start_time", System.currentTimeMillis())
      val info = rest.post("runs/create", create).path("run").path("info")
      val runId = info.path("run_id").asText()
      val artifactUri = info.path("artifact_uri").asText()
      // MLflow keeps a param's value once and refuses another: each goes once, 100 to a request (its limit).
      for (group <- params.grouped(100)) {
        val body = rest.json.createObjectNode().put("run_id", runId)
        val array = body.putArray("params")
        group.foreach { case (k, v) => array.addObject().put("key", k).put("value", v.take(6000)) }
        rest.post("runs/log-batch", body)
      }
      log.info(s"MLflow $uri: run $runId in experiment $experimentId, artifacts at $artifactUri")
      new MlflowLog(rest, runId, artifactUri, limits, log)
    } catch {
      case f: MlflowRest.Failed =>
        throw new SpindleMlflowException(s"MLflow tracking at $uri could not start a run: ${f.getMessage}", f)
    }
  }

  private def experimentIdOf(rest: MlflowRest, name: String): String =
    try
      rest
        .get("experiments/get-by-name", Map("experiment_name" -> name))
        .path("experiment")
        .path("experiment_id")
        .asText()
    catch {
      case f: MlflowRest.Failed if f.status == 404 =>
        val body: ObjectNode = rest.json.createObjectNode().put("name", name)
        rest.post("experiments/create", body).path("experiment_id").asText()
    }
}
