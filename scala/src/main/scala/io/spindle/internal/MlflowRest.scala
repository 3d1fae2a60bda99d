package io.spindle.internal

import java.io.{IOException, InputStream}
import java.net.{URI, URLEncoder}
import java.net.http.{HttpClient, HttpRequest, HttpResponse}
import java.nio.charset.StandardCharsets.UTF_8
import java.time.Duration
import java.util.Base64

import com.fasterxml.jackson.databind.{JsonNode, ObjectMapper}

/** The few calls of MLflow's REST API that `fit` makes, over the JDK's HttpClient (no client library: see
  * docs/choices.md, "MLflow"). Every request has a timeout; none is retried here ([[MlflowLog]] decides what to retry).
  * Credentials come from the driver's environment as MLflow's own clients read them: `MLFLOW_TRACKING_TOKEN` (bearer),
  * else `MLFLOW_TRACKING_USERNAME` and `MLFLOW_TRACKING_PASSWORD` (basic).
  *
  * @param trackingUri
  *   the server, `http://` or `https://`
  */
private[spindle] final class MlflowRest(val trackingUri: URI, timeout: Duration) {
  import MlflowRest.Failed

  private val http = HttpClient.newBuilder().connectTimeout(timeout).build()
  private val base = trackingUri.toString.stripSuffix("/")
  val json = new ObjectMapper()

  private val auth: Option[String] = {
    val env = sys.env
    env.get("MLFLOW_TRACKING_TOKEN").map("Bearer " + _).orElse {
      for (user <- env.get("MLFLOW_TRACKING_USERNAME"); password <- env.get("MLFLOW_TRACKING_PASSWORD"))
        yield "Basic " + Base64.getEncoder.encodeToString(s"$user:$password".getBytes(UTF_8))
    }
  }

  /** POSTs `body` (a JSON object) to `api/2.0/mlflow/<endpoint>` and returns the reply. */
  def post(endpoint: String, body: JsonNode): JsonNode =
    send(
      request(s"$base/api/2.0/mlflow/$endpoint")
        .header("Content-Type", "application/json")
        .POST(HttpRequest.BodyPublishers.ofString(json.writeValueAsString(body)))
    )

  /** GETs `api/2.0/mlflow/<endpoint>?<query>` and returns the reply. */
  def get(endpoint: String, query: Map[String, String]): JsonNode = {
    val q = query.map { case (k, v) => s"$k=${URLEncoder.encode(v, UTF_8)}" }.mkString("&")
    send(request(s"$base/api/2.0/mlflow/$endpoint?$q").GET())
  }

  /** PUTs one file to the server's artifact proxy (`mlflow server` serves artifacts by default): `artifactUri` is the
    * run's (`mlflow-artifacts:/<experiment>/<run>/artifacts`), `path` the file's path under it.
    */
  def putArtifact(artifactUri: String, path: String, content: () => InputStream): Unit = {
    val under = URI.create(artifactUri).getPath.stripPrefix("/").stripSuffix("/")
    val encoded = (under.split('/') ++ path.split('/')).map(s => URLEncoder.encode(s, UTF_8).replace("+", "%20"))
    send(
      request(s"$base/api/2.0/mlflow-artifacts/artifacts/${encoded.mkString("/")}")
        .header("Content-Type", "application/octet-stream")
        .PUT(HttpRequest.BodyPublishers.ofInputStream(() => content()))
    )
  }

  private def request(uri: String): HttpRequest.Builder = {
    val builder = HttpRequest.newBuilder(URI.create(uri)).timeout(timeout)
    auth.foreach(builder.header("Authorization", _))
    builder
  }

  private def send(builder: HttpRequest.Builder): JsonNode = {
    val response =
      try http.send(builder.build(), HttpResponse.BodyHandlers.ofString())
      catch {
        case e: IOException => throw new Failed(0, s"$trackingUri did not answer: $e", e)
      }
    val body = response.body()
    if (response.statusCode() / 100 != 2)
      throw new Failed(response.statusCode(), s"$trackingUri answered ${response.statusCode()}: ${body.take(500)}")
    if (body.isEmpty) json.createObjectNode() else json.readTree(body)
  }
}

private[spindle] object MlflowRest {

  /** A request that failed: `status` is the HTTP status, 0 when the server did not answer at all. */
  final class Failed(val status: Int, message: String, cause: Throwable = null) extends IOException(message, cause) {

    /** Worth another try: no answer, too many requests, or a server error (a restart, a busy database). */
    def retryable: Boolean = status == 0 || status == 429 || status >= 500
  }
}
