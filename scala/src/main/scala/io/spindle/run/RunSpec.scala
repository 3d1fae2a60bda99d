package io.spindle.run

import scala.jdk.CollectionConverters._

import com.fasterxml.jackson.databind.{JsonNode, ObjectMapper}

import io.spindle.SpindleInputException
import io.spindle.internal.TensorType

/** One array the script reads per batch: a column, as `dtype` with rows of `shape`. */
final case class FeedInput(column: String, dtype: TensorType, shape: Seq[Long])

/** What `spindle.run` asked for, as the Python side sends it (JSON; see `python/spindle/run.py`).
  *
  * @param command
  *   the process each task starts (the Python interpreter and Spindle's worker module)
  * @param payload
  *   what the worker runs (a pickled function and its arguments, or a script's source), opaque to the JVM
  */
final case class RunSpec(
    command: Seq[String],
    payload: Array[Byte],
    workers: Int,
    ps: Int,
    chief: Boolean,
    evaluator: Boolean,
    env: Map[String, String],
    inputs: Seq[FeedInput],
    batchSize: Int,
    numSlots: Int,
    startupTimeoutMs: Long
) {

  /** The TF_CONFIG task of each barrier task, by partition: chief, workers, parameter servers, evaluator. */
  val roles: Seq[(String, Int)] =
    (if (chief) Seq("chief" -> 0) else Nil) ++ (0 until workers).map("worker" -> _) ++
      (0 until ps).map("ps" -> _) ++ (if (evaluator) Seq("evaluator" -> 0) else Nil)

  /** The tasks that read the data: the chief alone with parameter servers (it runs the training loop and dispatches to
    * workers), else every worker, the chief too.
    */
  val readers: Seq[Int] =
    roles.indices.filter { r =>
      val role = roles(r)._1
      if (ps > 0) role == "chief" else role == "chief" || role == "worker"
    }

  /** Tasks whose process serves until training ends (TensorFlow servers): parameter servers, and the workers of a
    * parameter-server cluster. Spindle stops them once every other process has ended.
    */
  def serves(rank: Int): Boolean = roles(rank)._1 == "ps" || (ps > 0 && roles(rank)._1 == "worker")
}

object RunSpec {
  private val mapper = new ObjectMapper()

  def parse(json: String): RunSpec = {
    val n = mapper.readTree(json)
    def int(key: String, default: Int): Int = Option(n.get(key)).map(_.asInt()).getOrElse(default)
    def strings(node: JsonNode): Seq[String] = Option(node).toSeq.flatMap(_.elements().asScala.map(_.asText()))
    val inputs = Option(n.get("inputs")).toSeq.flatMap(_.elements().asScala).map { i =>
      val column = i.get("column").asText()
      val name = i.get("dtype").asText()
      val dtype = TensorType.all.filterNot(_ == TensorType.TString).find(_.name == name).getOrElse {
        throw new SpindleInputException(
          s"column '$column': a script reads fixed-width dtypes (${TensorType.all.filterNot(_ == TensorType.TString).map(_.name).mkString(", ")}), not '$name'"
        )
      }
      FeedInput(column, dtype, Option(i.get("shape")).toSeq.flatMap(_.elements().asScala.map(_.asLong())))
    }
    val spec = RunSpec(
      command = strings(n.get("command")),
      payload = java.util.Base64.getDecoder.decode(n.get("payload").asText()),
      workers = int("workers", 1),
      ps = int("ps", 0),
      chief = Option(n.get("chief")).exists(_.asBoolean()),
      evaluator = Option(n.get("evaluator")).exists(_.asBoolean()),
      env = Option(n.get("env"))
        .map(e => mapper.convertValue(e, classOf[java.util.Map[String, String]]).asScala.toMap)
        .getOrElse(Map.empty),
      inputs = inputs,
      batchSize = int("batch_size", 64),
      numSlots = int("num_slots", 4),
      startupTimeoutMs = (Option(n.get("startup_timeout")).map(_.asDouble()).getOrElse(120.0) * 1000).toLong
    )
    if (spec.command.isEmpty) throw new SpindleInputException("run: no command to start")
    if (spec.workers < 1 && !spec.chief) throw new SpindleInputException("run: num_workers must be at least 1")
    if (spec.ps > 0 && !spec.chief)
      throw new SpindleInputException("run: parameter servers need a chief (it runs the training loop)")
    if (spec.batchSize < 1 || spec.numSlots < 1)
      throw new SpindleInputException(
        s"run: batch_size ${spec.batchSize} and num_slots ${spec.numSlots} must be positive"
      )
    spec
  }
}
