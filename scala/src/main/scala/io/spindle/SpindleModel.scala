package io.spindle

import scala.jdk.CollectionConverters._

import org.apache.hadoop.fs.{FileUtil, Path => HPath}
import org.apache.spark.TaskContext
import org.apache.spark.ml.{Model, SpindleMLShim}
import org.apache.spark.ml.param.ParamMap
import org.apache.spark.ml.util.{Identifiable, MLReadable, MLReader, MLWritable, MLWriter}
import org.apache.spark.sql.{DataFrame, Dataset, SparkSession, SpindleSqlShim}
import org.apache.spark.sql.types.StructType
import org.apache.spark.util.SerializableConfiguration

import io.spindle.internal.{
  ColumnarInference,
  InferenceIterator,
  MemoryBudget,
  ModelCache,
  OpLibraries,
  Plan,
  Scoring,
  TensorType
}

/** Batch inference with any TensorFlow SavedModel, as a Spark ML `Model`.
  *
  * {{{
  * val scored = SpindleModel.load("hdfs:///models/ranker")
  *   .setInputCols(Map("features" -> "feature_vec"))
  *   .setOutputCols(Map("probabilities" -> "probs"))
  *   .transform(df)
  * }}}
  *
  * Each executor JVM loads the SavedModel once into one TensorFlow session shared by its tasks. Each task streams its
  * rows through a ring of memory-mapped slots (`batchSize` rows each) that TensorFlow reads in place. Unmapped
  * signature inputs read the column of the same name; an empty `outputCols` adds every output as a column named after
  * it. An output with one value per row becomes a number column; any other shape becomes a flat array column
  * (row-major).
  */
class SpindleModel(override val uid: String)
    extends Model[SpindleModel]
    with SpindleParams[SpindleModel]
    with MLWritable {

  def this() = this(Identifiable.randomUID("spindle"))

  @transient private var trainingSummary: Option[TrainingSummary] = None

  private[spindle] def setSummary(value: TrainingSummary): this.type = {
    trainingSummary = Some(value)
    this
  }

  /** Whether this model came from [[SpindleEstimator.fit]] in this session, which leaves a [[summary]]. */
  def hasSummary: Boolean = trainingSummary.isDefined

  /** How training went: per-step loss and timings, rows per worker. */
  def summary: TrainingSummary = trainingSummary.getOrElse {
    throw new SpindleModelException("this model has no training summary: it was not fitted in this session")
  }

  override def transformSchema(schema: StructType): StructType = plan(SparkSession.active, schema).schema

  override def transform(dataset: Dataset[_]): DataFrame = {
    val df = dataset.toDF()
    val spark = df.sparkSession
    val thePlan = plan(spark, df.schema)
    val key = cacheKey(spark, "")
    val path = ModelCache.qualify(getModelPath, spark.sparkContext.hadoopConfiguration)
    val hadoopConf = new SerializableConfiguration(spark.sparkContext.hadoopConfiguration)
    val (sig, batch, slots) = (getSignature, getBatchSize, getNumSlots)
    val (variableBytes, pad) = (getVariableLengthBytes, getPadValue)
    val added = StructType(thePlan.schema.fields.drop(df.schema.length))
    val columnar = getColumnar
    // Each task's scoring: the model from this JVM's cache, closed with the task.
    def scoring(): Scoring = {
      val local = ModelCache.localize(path, hadoopConf.value)
      val model = ModelCache.acquire(key.copy(localPath = local, gpus = ModelCache.gpusOfTask()))
      Scoring(model, thePlan, sig, batch, slots, variableBytes, pad)
    }
    def closedWithTask[T <: AutoCloseable](scored: T): T = {
      Option(TaskContext.get()).foreach(_.addTaskCompletionListener[Unit](_ => scored.close()))
      scored
    }
    val reads = thePlan.inputs.flatMap(_.ordinals).distinct
    SpindleSqlShim.scoreInPlan(
      df,
      reads,
      added,
      (passed, it) => closedWithTask(new InferenceIterator(it, scoring(), passed)),
      if (columnar) Some((passed, it) => closedWithTask(new ColumnarInference(it, scoring(), passed))) else None
    )
  }

  /** The signature's inputs and outputs, as `name: dtype shape` lines (handy in spark-shell). Every TensorFlow dtype
    * prints under its own name (`float32`, `string`, `bool`, ...), whether Spindle moves it or not.
    */
  def describeSignature(): String = {
    val sig = driverModel(SparkSession.active).signature(getSignature)
    def fmt(t: io.spindle.proto.TensorSpec) = {
      val shape = t.getShapeList.asScala.map(d => if (d < 0) "?" else d.toString).mkString("[", ", ", "]")
      s"  ${t.getName}: ${TensorType.tfName(t.getTfDtype)} ${if (t.getUnknownRank) "unknown rank" else shape}"
    }
    (Seq(s"signature ${sig.getName}", " inputs:") ++ sig.getInputsList.asScala.map(fmt) ++
      Seq(" outputs:") ++ sig.getOutputsList.asScala.map(fmt)).mkString("\n")
  }

  private def plan(spark: SparkSession, schema: StructType): Plan = {
    if (!isDefined(modelPath)) throw new SpindleModelException("modelPath is not set")
    Plan.build(schema, driverModel(spark).signature(getSignature), getInputCols, getOutputCols, planOptions)
  }

  // The driver reads signatures from the same per-JVM session cache the tasks use, so local mode loads once.
  private def driverModel(spark: SparkSession) = {
    val local = ModelCache.localize(getModelPath, spark.sparkContext.hadoopConfiguration)
    ModelCache.acquire(cacheKey(spark, local))
  }

  // Threads default to the task's cores (intra-op) and to the number of tasks an executor runs at once
  // (inter-op), so that concurrent tasks sharing a session do not oversubscribe the executor's cores.
  private def cacheKey(spark: SparkSession, localPath: String): ModelCache.Key = {
    val conf = spark.sparkContext.getConf
    val intra = if (getIntraOpThreads > 0) getIntraOpThreads else conf.getInt("spark.task.cpus", 1)
    val inter = if (getInterOpThreads > 0) getInterOpThreads else MemoryBudget.concurrentTasks(conf)
    val libraries = OpLibraries.ship(spark.sparkContext, getOpLibraries.toSeq)
    ModelCache.Key(localPath, getTags.toSeq, intra, inter, opLibraries = libraries)
  }

  override def copy(extra: ParamMap): SpindleModel = defaultCopy(extra)

  override def write: MLWriter = new SpindleModel.Writer(this)
}

object SpindleModel extends MLReadable[SpindleModel] {

  /** Where `write.save` puts a copy of the SavedModel, so that a saved stage is self-contained. */
  val SavedModelDir = "savedmodel"

  /** A model for the SavedModel at `path` (any Hadoop FileSystem), or a stage saved with `write.save`. Fails at once,
    * naming the path, when `path` is neither.
    */
  override def load(path: String): SpindleModel = {
    val spark = SparkSession.active
    val p = new HPath(path)
    val fs = p.getFileSystem(spark.sparkContext.hadoopConfiguration)
    if (fs.exists(new HPath(p, "metadata"))) read.load(path) else fromSavedModel(path)
  }

  /** A model for the SavedModel at `path`, with default params. Fails at once, naming the path, when `path` is not a
    * SavedModel directory (one holding `saved_model.pb` or `saved_model.pbtxt`).
    */
  def fromSavedModel(path: String): SpindleModel = {
    requireSavedModel(path, SparkSession.getActiveSession.map(_.sparkContext.hadoopConfiguration))
    new SpindleModel().setModelPath(path)
  }

  private def requireSavedModel(path: String, conf: Option[org.apache.hadoop.conf.Configuration]): Unit = {
    val p = new HPath(path)
    val fs = p.getFileSystem(conf.getOrElse(new org.apache.hadoop.conf.Configuration()))
    val why =
      if (!fs.exists(p)) Some("it does not exist")
      else if (!fs.getFileStatus(p).isDirectory) Some("it is a file, not a directory (a .keras or .h5 file is not one)")
      else if (!Seq("saved_model.pb", "saved_model.pbtxt").exists(f => fs.exists(new HPath(p, f))))
        Some(fs.listStatus(p).map(_.getPath.getName).sorted match {
          case Array() => "the directory is empty"
          case names   => s"it holds no saved_model.pb (it holds: ${names.mkString(", ")})"
        })
      else None
    why.foreach { w =>
      throw new SpindleModelException(
        s"$path is not a TensorFlow SavedModel: $w. A SavedModel directory holds saved_model.pb (or saved_model.pbtxt) " +
          s"and, for a model with variables, variables/variables.index and its data files; export one with " +
          s"tf.saved_model.save or model.export(path) in Keras 3"
      )
    }
  }

  /** Releases the TensorFlow sessions this JVM holds (they are otherwise kept until the JVM exits). */
  def releaseSessions(): Unit = ModelCache.clear()

  override def read: MLReader[SpindleModel] = new Reader

  private class Writer(instance: SpindleModel) extends MLWriter {
    override protected def saveImpl(path: String): Unit = {
      val conf = sparkSession.sparkContext.hadoopConfiguration
      val target = new HPath(path, SavedModelDir)
      val source = new HPath(instance.getModelPath)
      val copied = FileUtil.copy(source.getFileSystem(conf), source, target.getFileSystem(conf), target, false, conf)
      if (!copied) throw new SpindleModelException(s"copying SavedModel ${instance.getModelPath} to $target failed")
      SpindleMLShim.saveMetadata(instance.copy(ParamMap.empty).setModelPath(target.toString), path, sparkSession)
    }
  }

  private class Reader extends MLReader[SpindleModel] {
    override def load(path: String): SpindleModel = {
      val model = SpindleMLShim.load(path, sparkSession, classOf[SpindleModel].getName)(new SpindleModel(_))
      // The copy beside the metadata, wherever the saved stage has been moved since.
      model.setModelPath(new HPath(path, SavedModelDir).toString)
    }
  }
}
