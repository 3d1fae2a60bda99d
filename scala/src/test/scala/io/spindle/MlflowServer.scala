package io.spindle

import java.net.{HttpURLConnection, ServerSocket, URI, URLEncoder}
import java.nio.charset.StandardCharsets.UTF_8
import java.nio.file.Path
import java.util.concurrent.TimeUnit

import com.fasterxml.jackson.databind.{JsonNode, ObjectMapper}

/** A real `mlflow server` (the `.venv`'s) on 127.0.0.1: SQLite in `dir/mlflow.db`, artifacts served from
  * `dir/artifacts`. `stop` and `start` again keep the port and the database, as a restarted server would.
  */
final class MlflowServer(mlflow: Path, val dir: Path) {
  val port: Int = {
    val s = new ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress)
    try s.getLocalPort
    finally s.close()
  }
  val uri = s"http://127.0.0.1:$port"
  private val json = new ObjectMapper()
  private var process: Option[Process] = None

  /** Starts the server and waits (at most 120 s) until it answers. */
  def start(): Unit = {
    val command = Seq(
      mlflow.toString,
      "server",
      "--backend-store-uri",
      s"sqlite:///${dir.resolve("mlflow.db")}",
      "--artifacts-destination",
      dir.resolve("artifacts").toString,
      "--host",
      "127.0.0.1",
      "--port",
      port.toString,
      "--workers",
      "1"
    )
    val builder = new ProcessBuilder(command: _*).redirectErrorStream(true)
    builder.redirectOutput(ProcessBuilder.Redirect.appendTo(dir.resolve("server.log").toFile))
    process = Some(builder.start())
    val deadline = System.nanoTime() + 120e9.toLong
    while (!healthy) {
      if (System.nanoTime() > deadline || !process.exists(_.isAlive))
        throw new IllegalStateException(s"mlflow server did not start; see ${dir.resolve("server.log")}")
      Thread.sleep(200)
    }
  }

  /** Stops the server and every process it started (its web workers), and waits for them. */
  def stop(): Unit = process.foreach { p =>
    val all = p.toHandle +: p.toHandle.descendants().toArray.toSeq.map(_.asInstanceOf[ProcessHandle])
    all.foreach(_.destroy())
    all.foreach(h => scala.util.Try(h.onExit().get(30, TimeUnit.SECONDS)))
    all.foreach(_.destroyForcibly())
    process = None
  }

  private def healthy: Boolean =
    scala.util
      .Try {
        val c = URI.create(s"$uri/health").toURL.openConnection().asInstanceOf[HttpURLConnection]
        c.setConnectTimeout(1000)
        c.setReadTimeout(1000)
        try c.getResponseCode == 200
        finally c.disconnect()
      }
      .getOrElse(false)

  /** GET `api/2.0/mlflow/<endpoint>?<query>` of the REST API. */
  def get(endpoint: String, query: (String, String)*): JsonNode = {
    val q = query.map { case (k, v) => s"$k=${URLEncoder.encode(v, UTF_8)}" }.mkString("&")
    val c = URI.create(s"$uri/api/2.0/mlflow/$endpoint?$q").toURL.openConnection().asInstanceOf[HttpURLConnection]
    try json.readTree(c.getInputStream)
    finally c.disconnect()
  }

  /** The runs of the experiment `name`. */
  def runs(name: String): Seq[JsonNode] = {
    val id = get("experiments/get-by-name", "experiment_name" -> name).path("experiment").path("experiment_id").asText
    val c = URI.create(s"$uri/api/2.0/mlflow/runs/search").toURL.openConnection().asInstanceOf[HttpURLConnection]
    c.setRequestMethod("POST")
    c.setDoOutput(true)
    c.setRequestProperty("Content-Type", "application/json")
    c.getOutputStream.write(s"""{"experiment_ids": ["$id"]}""".getBytes(UTF_8))
    val runs =
      try json.readTree(c.getInputStream).path("runs")
      finally c.disconnect()
    (0 until runs.size).map(runs.get)
  }

  /** `(step, value)` of every logged value of `key` in run `runId`, by step. */
  def history(runId: String, key: String): Seq[(Long, Double)] = {
    val ms = get("metrics/get-history", "run_id" -> runId, "metric_key" -> key).path("metrics")
    (0 until ms.size).map(ms.get).map(m => m.path("step").asLong -> m.path("value").asDouble).sortBy(_._1)
  }

  /** Paths of every artifact file of run `runId` under `path`, through the REST API. */
  def artifacts(runId: String, path: String = ""): Seq[String] = {
    val files = get("artifacts/list", "run_id" -> runId, "path" -> path).path("files")
    (0 until files.size).map(files.get).flatMap { f =>
      val p = f.path("path").asText
      if (f.path("is_dir").asBoolean) artifacts(runId, p) else Seq(p)
    }
  }
}
