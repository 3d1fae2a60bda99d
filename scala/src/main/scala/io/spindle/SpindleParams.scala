package io.spindle

import scala.jdk.CollectionConverters._

import org.apache.spark.ml.param.{
  BooleanParam,
  DoubleParam,
  IntParam,
  LongParam,
  Param,
  ParamValidators,
  Params,
  StringArrayParam
}
import org.json4s.DefaultFormats
import org.json4s.jackson.JsonMethods.{compact, parse, render}
import org.json4s.JsonDSL._

import io.spindle.internal.PlanOptions

/** A `Map[String, String]` param, persisted as a JSON object so that it survives `write.save`. */
class StringMapParam(parent: Params, name: String, doc: String) extends Param[Map[String, String]](parent, name, doc) {
  override def jsonEncode(value: Map[String, String]): String = compact(render(value))
  override def jsonDecode(json: String): Map[String, String] = {
    implicit val formats: DefaultFormats.type = DefaultFormats
    parse(json).extract[Map[String, String]]
  }
}

/** A `Map[String, Seq[String]]` param, persisted as a JSON object of arrays (`{"features": ["a", "b"]}`); each array
  * keeps its order.
  */
class StringSeqMapParam(parent: Params, name: String, doc: String)
    extends Param[Map[String, Seq[String]]](parent, name, doc) {
  override def jsonEncode(value: Map[String, Seq[String]]): String =
    compact(render(value.map { case (input, columns) => input -> columns.toList }))
  override def jsonDecode(json: String): Map[String, Seq[String]] = {
    implicit val formats: DefaultFormats.type = DefaultFormats
    parse(json).extract[Map[String, List[String]]]
  }
}

/** Params shared by inference ([[SpindleModel]]) and training ([[SpindleEstimator]]), with their getters and setters.
  *
  * `Stage` is the stage class itself: the setters return it, which Java callers see too (a setter returning `this.type`
  * compiles to one returning this trait, and would end a Java call chain).
  */
trait SpindleParams[Stage <: SpindleParams[Stage]] extends Params { self: Stage =>

  final val modelPath = new Param[String](this, "modelPath", "SavedModel directory (any Hadoop FileSystem path)")

  final val signature = new Param[String](this, "signature", "signature to run")

  final val inputCols = new StringMapParam(this, "inputCols", "signature input name -> DataFrame column")

  final val packedInputCols = new StringSeqMapParam(
    this,
    "packedInputCols",
    "signature input name -> scalar columns packed, in this order, into one [batch, k] tensor (k columns of numbers " +
      "or booleans, each converted to the input's dtype); an input is fed either from inputCols or from here"
  )

  final val outputCols = new StringMapParam(
    this,
    "outputCols",
    "signature output name -> new column; empty means every output, named after the output"
  )

  final val batchSize =
    new IntParam(this, "batchSize", "rows per TensorFlow run", ParamValidators.gt(0))

  final val numSlots = new IntParam(
    this,
    "numSlots",
    "memory-mapped batch slots per task; 2 lets the JVM fill one while TensorFlow runs the other",
    ParamValidators.gt(0)
  )

  final val intraOpThreads = new IntParam(
    this,
    "intraOpThreads",
    "TensorFlow intra-op threads; 0 means spark.task.cpus",
    ParamValidators.gtEq(0)
  )

  final val interOpThreads = new IntParam(
    this,
    "interOpThreads",
    "TensorFlow inter-op threads; 0 means the number of tasks an executor runs at once",
    ParamValidators.gtEq(0)
  )

  final val tags = new StringArrayParam(this, "tags", "MetaGraph tags to load")

  final val opLibraries = new StringArrayParam(
    this,
    "opLibraries",
    "custom op libraries (.so, on any Hadoop FileSystem or local) that the model's ops need, e.g. tensorflow-text's:" +
      " shipped to the executors and loaded into TensorFlow once per JVM before the model (see docs/custom-ops.md)"
  )

  final val imageChannelOrder = new Param[String](
    this,
    "imageChannelOrder",
    "channel order an image column (Spark's image source, BGR) is fed in: BGR as it is, or RGB",
    ParamValidators.inArray(Array("BGR", "RGB"))
  )

  final val nestedOutputs = new BooleanParam(
    this,
    "nestedOutputs",
    "outputs of rank 3 and more as arrays nested to the tensor's shape, instead of flat row-major arrays"
  )

  final val columnar = new BooleanParam(
    this,
    "columnar",
    "read column batches a vector at a time where the input produces them (the vectorized Parquet and ORC readers, " +
      "cached relations) and hand column batches on; false: always row by row (see docs/user-guide.md)"
  )

  final val binaryOutputs = new StringArrayParam(
    this,
    "binaryOutputs",
    "string outputs to return as BinaryType columns (bytes as they are) instead of StringType (UTF-8 text)"
  )

  final val exampleFeatures = new StringMapParam(
    this,
    "exampleFeatures",
    "tf.Example feature -> DataFrame column; when set, the signature's one string input takes a serialized " +
      "tf.Example per row, built from these columns"
  )

  final val variableLengthBytes = new LongParam(
    this,
    "variableLengthBytes",
    "bytes per batch for each input of strings or ragged rows (a batch that fills them runs early); 0 sizes them " +
      "from the partition's first row",
    ParamValidators.inRange(0, 0xffffffffL)
  )

  final val padValue = new DoubleParam(
    this,
    "padValue",
    "value that pads ragged rows (inputs whose inner size is unknown) to the longest row of their batch"
  )

  setDefault(
    binaryOutputs -> Array.empty[String],
    exampleFeatures -> Map.empty[String, String],
    variableLengthBytes -> 0L,
    padValue -> 0.0,
    signature -> "serving_default",
    inputCols -> Map.empty[String, String],
    packedInputCols -> Map.empty[String, Seq[String]],
    outputCols -> Map.empty[String, String],
    batchSize -> 256,
    numSlots -> 2,
    intraOpThreads -> 0,
    interOpThreads -> 0,
    tags -> Array("serve"),
    opLibraries -> Array.empty[String],
    nestedOutputs -> false,
    columnar -> true,
    imageChannelOrder -> "BGR"
  )

  def getModelPath: String = $(modelPath)
  def getSignature: String = $(signature)
  def getInputCols: Map[String, String] = $(inputCols)
  def getPackedInputCols: Map[String, Seq[String]] = $(packedInputCols)
  def getOutputCols: Map[String, String] = $(outputCols)
  def getBatchSize: Int = $(batchSize)
  def getNumSlots: Int = $(numSlots)
  def getIntraOpThreads: Int = $(intraOpThreads)
  def getInterOpThreads: Int = $(interOpThreads)
  def getTags: Array[String] = $(tags)
  def getOpLibraries: Array[String] = $(opLibraries)
  def getNestedOutputs: Boolean = $(nestedOutputs)
  def getColumnar: Boolean = $(columnar)
  def getImageChannelOrder: String = $(imageChannelOrder)
  def getBinaryOutputs: Array[String] = $(binaryOutputs)
  def getExampleFeatures: Map[String, String] = $(exampleFeatures)
  def getVariableLengthBytes: Long = $(variableLengthBytes)
  def getPadValue: Double = $(padValue)

  // Setters live with their Params, so the model and the estimator share them (and Python's, generated from these
  // traits, match them one to one).
  def setModelPath(value: String): Stage = set(modelPath, value)
  def setSignature(value: String): Stage = set(signature, value)
  def setInputCols(value: Map[String, String]): Stage = set(inputCols, value)
  def setInputCols(value: java.util.Map[String, String]): Stage = set(inputCols, value.asScala.toMap)
  def setPackedInputCols(value: Map[String, Seq[String]]): Stage = set(packedInputCols, value)
  def setPackedInputCols(value: java.util.Map[String, java.util.List[String]]): Stage =
    set(packedInputCols, value.asScala.map { case (k, v) => k -> v.asScala.toList }.toMap)
  def setOutputCols(value: Map[String, String]): Stage = set(outputCols, value)
  def setOutputCols(value: java.util.Map[String, String]): Stage = set(outputCols, value.asScala.toMap)
  def setBatchSize(value: Int): Stage = set(batchSize, value)
  def setNumSlots(value: Int): Stage = set(numSlots, value)
  def setIntraOpThreads(value: Int): Stage = set(intraOpThreads, value)
  def setInterOpThreads(value: Int): Stage = set(interOpThreads, value)
  def setTags(value: Array[String]): Stage = set(tags, value)
  def setOpLibraries(value: Array[String]): Stage = set(opLibraries, value)
  def setNestedOutputs(value: Boolean): Stage = set(nestedOutputs, value)
  def setColumnar(value: Boolean): Stage = set(columnar, value)
  def setImageChannelOrder(value: String): Stage = set(imageChannelOrder, value)
  def setBinaryOutputs(value: Array[String]): Stage = set(binaryOutputs, value)
  def setExampleFeatures(value: Map[String, String]): Stage = set(exampleFeatures, value)
  def setExampleFeatures(value: java.util.Map[String, String]): Stage = set(exampleFeatures, value.asScala.toMap)
  def setVariableLengthBytes(value: Long): Stage = set(variableLengthBytes, value)
  def setPadValue(value: Double): Stage = set(padValue, value)

  /** The one place these Params become what [[io.spindle.internal.Plan]] needs beyond the column mappings. */
  protected def planOptions: PlanOptions =
    PlanOptions(
      getNestedOutputs,
      getImageChannelOrder == "RGB",
      getBinaryOutputs.toSet,
      getExampleFeatures,
      getPackedInputCols
    )

  /** Java-friendly views. */
  def getInputColsJava: java.util.Map[String, String] = getInputCols.asJava
  def getOutputColsJava: java.util.Map[String, String] = getOutputCols.asJava
  def getPackedInputColsJava: java.util.Map[String, java.util.List[String]] =
    getPackedInputCols.map { case (k, v) => k -> v.asJava }.asJava
}
