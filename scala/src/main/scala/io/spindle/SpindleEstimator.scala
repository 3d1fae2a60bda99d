package io.spindle

import scala.jdk.CollectionConverters._

import com.google.protobuf.ByteString
import org.apache.hadoop.fs.{Path => HPath}
import org.apache.spark.{SparkException, SpindleCoreShim}
import org.apache.spark.ml.Estimator
import org.apache.spark.ml.param.{BooleanParam, DoubleParam, IntParam, LongParam, Param, ParamMap, ParamValidators}
import org.apache.spark.ml.util.{DefaultParamsReadable, DefaultParamsWritable, Identifiable}
import org.apache.spark.resource.{ResourceProfileBuilder, TaskResourceRequests}
import org.apache.spark.sql.{DataFrame, Dataset, SparkSession, SpindleSqlShim}
import org.apache.spark.sql.catalyst.InternalRow
import org.apache.spark.sql.types.StructType
import org.apache.spark.util.SerializableConfiguration
import org.slf4j.LoggerFactory

import io.spindle.internal.{
  Checkpoints,
  Export,
  HelloGather,
  InputPlan,
  ModelCache,
  Plan,
  Progress,
  RetryWatch,
  Secrets,
  Slots,
  TrainJob,
  TrainTask
}
import io.spindle.proto.{TrainerConfig, TrainingReport}

/** Params of [[SpindleEstimator]], on top of those its fitted [[SpindleModel]] keeps. */
trait SpindleTrainingParams extends SpindleParams {

  final val numWorkers = new IntParam(
    this,
    "numWorkers",
    "training workers: one barrier task each, all running at once",
    ParamValidators.gt(0)
  )

  final val epochs = new IntParam(this, "epochs", "passes over the data", ParamValidators.gt(0))

  final val shuffle = new BooleanParam(this, "shuffle", "shuffle the batch order of every epoch after the first")

  final val seed = new LongParam(this, "seed", "seed of the shuffle")

  final val exportPath = new Param[String](
    this,
    "exportPath",
    "where the trained SavedModel goes (any Hadoop FileSystem path); unset: a new directory under /tmp of the " +
      "default FileSystem"
  )

  final val overwriteExport = new BooleanParam(
    this,
    "overwriteExport",
    "replace an exportPath that already holds files (the old content goes only once the new export is complete); " +
      "false: such an exportPath fails fit before any job starts"
  )

  final val terminateOnNaN = new BooleanParam(
    this,
    "terminateOnNaN",
    "stop training at the first step whose loss is NaN or infinite, with a SpindleTrainingException naming the step " +
      "and the last finite loss (like Keras's TerminateOnNaN); the checkpoints already written stay"
  )

  final val rendezvousTimeout = new IntParam(
    this,
    "rendezvousTimeout",
    "seconds the workers may take to connect to each other",
    ParamValidators.gt(0)
  )

  final val gpusPerWorker = new IntParam(
    this,
    "gpusPerWorker",
    "GPUs each training worker asks Spark for, for the training stage only (a stage-level task resource profile; " +
      "the executors must have them: spark.executor.resource.gpu.amount); 0: the application's " +
      "spark.task.resource.gpu.amount, if any",
    ParamValidators.gtEq(0)
  )

  final val peerTimeout = new IntParam(
    this,
    "peerTimeout",
    "seconds a worker waits for a peer within a step (a peer still computing its Spark partition counts)",
    ParamValidators.gt(0)
  )

  final val heartbeatTimeout = new IntParam(
    this,
    "heartbeatTimeout",
    "seconds a worker's ring neighbour may send no heartbeat (its process stopped, the network cut) before the job " +
      "fails naming it; heartbeats flow while steps compute, so a long step never trips it",
    ParamValidators.gt(0)
  )

  final val checkpointDir = new Param[String](
    this,
    "checkpointDir",
    "where the chief keeps checkpoints (any Hadoop FileSystem path); fit resumes from the newest one there, as does a " +
      "barrier stage Spark retries after a failure; unset: no checkpoints"
  )

  final val checkpointEverySteps =
    new IntParam(
      this,
      "checkpointEverySteps",
      "checkpoint every this many steps (0: not by steps)",
      ParamValidators.gtEq(0)
    )

  final val checkpointEverySeconds = new IntParam(
    this,
    "checkpointEverySeconds",
    "checkpoint when this many seconds have passed since the last one (0: not by time)",
    ParamValidators.gtEq(0)
  )

  final val keepCheckpoints =
    new IntParam(this, "keepCheckpoints", "how many of the newest checkpoints to keep", ParamValidators.gt(0))

  final val tensorboardDir = new Param[String](
    this,
    "tensorboardDir",
    "where the chief writes TensorBoard event files (loss, examples/s, the step-time split): live on the local " +
      "filesystem, copied when training ends on any other Hadoop FileSystem; unset: none"
  )

  final val validationFraction = new DoubleParam(
    this,
    "validationFraction",
    "fraction of the rows held out (a seeded random split) and evaluated after every epoch instead of trained on; " +
      "0: none, unless setValidationData gives a DataFrame",
    ParamValidators.inRange(0.0, 1.0, lowerInclusive = true, upperInclusive = false)
  )

  final val earlyStoppingMetric = new Param[String](
    this,
    "earlyStoppingMetric",
    "the epoch metric early stopping watches: 'loss' (the epoch's mean training loss), 'val_loss' or " +
      "'val_<metric>' (a metric the export names); unset: no early stopping"
  )

  final val earlyStoppingPatience = new IntParam(
    this,
    "earlyStoppingPatience",
    "epochs without an improvement tolerated before training stops (Keras's patience)",
    ParamValidators.gtEq(0)
  )

  final val earlyStoppingMinDelta = new DoubleParam(
    this,
    "earlyStoppingMinDelta",
    "how much the metric must beat the best epoch's to count as an improvement",
    ParamValidators.gtEq(0.0)
  )

  final val earlyStoppingMode = new Param[String](
    this,
    "earlyStoppingMode",
    "'min', 'max', or 'auto': smaller is better for a metric whose name ends in 'loss' or holds 'error', larger " +
      "for any other",
    ParamValidators.inArray(Array("auto", "min", "max"))
  )

  // Training windows are pages of the spill file, not heap: 8 of them let the JVM run ahead far enough that a
  // stall of the Spark scan (a GC pause, a cached block opening) does not stall the step. Two, as for inference,
  // left the trainer waiting 100-400 ms per epoch 1 in benches/training.sh.
  setDefault(
    numSlots -> 8,
    numWorkers -> 1,
    epochs -> 1,
    shuffle -> true,
    seed -> getClass.getName.hashCode.toLong,
    overwriteExport -> false,
    terminateOnNaN -> true,
    rendezvousTimeout -> 120,
    gpusPerWorker -> 0,
    peerTimeout -> 600,
    heartbeatTimeout -> 30,
    checkpointEverySteps -> 100,
    checkpointEverySeconds -> 0,
    keepCheckpoints -> 3,
    validationFraction -> 0.0,
    earlyStoppingPatience -> 0,
    earlyStoppingMinDelta -> 0.0,
    earlyStoppingMode -> "auto"
  )

  def getNumWorkers: Int = $(numWorkers)
  def getEpochs: Int = $(epochs)
  def getShuffle: Boolean = $(shuffle)
  def getSeed: Long = $(seed)
  def getExportPath: String = $(exportPath)
  def getOverwriteExport: Boolean = $(overwriteExport)
  def getTerminateOnNaN: Boolean = $(terminateOnNaN)
  def getRendezvousTimeout: Int = $(rendezvousTimeout)
  def getGpusPerWorker: Int = $(gpusPerWorker)
  def getPeerTimeout: Int = $(peerTimeout)
  def getHeartbeatTimeout: Int = $(heartbeatTimeout)
  def getCheckpointDir: String = $(checkpointDir)
  def getCheckpointEverySteps: Int = $(checkpointEverySteps)
  def getCheckpointEverySeconds: Int = $(checkpointEverySeconds)
  def getKeepCheckpoints: Int = $(keepCheckpoints)
  def getTensorboardDir: String = $(tensorboardDir)
  def getValidationFraction: Double = $(validationFraction)
  def getEarlyStoppingMetric: String = $(earlyStoppingMetric)
  def getEarlyStoppingPatience: Int = $(earlyStoppingPatience)
  def getEarlyStoppingMinDelta: Double = $(earlyStoppingMinDelta)
  def getEarlyStoppingMode: String = $(earlyStoppingMode)

  /** Whether early stopping treats larger values of its metric as better. */
  protected def earlyStoppingMaximizes: Boolean = getEarlyStoppingMode match {
    case "max" => true
    case "min" => false
    case _ =>
      val name = getEarlyStoppingMetric
      !(name.endsWith("loss") || name.contains("error"))
  }
}

/** Synchronous data-parallel training of a trainable SavedModel (signatures `train`, `gradients`, `apply_gradients` and
  * a serving signature; see `python/spindle/keras`), as a Spark ML `Estimator`.
  *
  * {{{
  * val fitted = new SpindleEstimator()
  *   .setModelPath("hdfs:///models/mlp-init")
  *   .setInputCols(Map("features" -> "pixels", "labels" -> "label"))
  *   .setNumWorkers(4).setEpochs(3).setBatchSize(128)
  *   .setExportPath("hdfs:///models/mlp")
  *   .fit(trainDf)
  * fitted.summary.lossHistory
  * }}}
  *
  * `fit` runs one barrier stage of `numWorkers` tasks (the DataFrame is repartitioned to `numWorkers` partitions unless
  * it has exactly that many, in which case its partitions, and their order, are kept). It fails at once when the
  * cluster cannot run them all together. Each worker loads the SavedModel into a session of its own, the workers join
  * an authenticated TCP ring, and every step averages the gradients of all workers (weighted by their rows) before
  * applying them, so every worker holds the same weights. `batchSize` is per worker. The first epoch streams the
  * partition through memory-mapped batches spilled to a local file; later epochs replay that file, in a shuffled batch
  * order when `shuffle` is set. The chief (worker 0) exports the trained SavedModel to `exportPath`, and `fit` returns
  * a [[SpindleModel]] for it, fed by the `inputCols` its serving signature has.
  */
class SpindleEstimator(override val uid: String)
    extends Estimator[SpindleModel]
    with SpindleTrainingParams
    with DefaultParamsWritable {

  def this() = this(Identifiable.randomUID("spindleEstimator"))

  def setModelPath(value: String): this.type = set(modelPath, value)
  def setSignature(value: String): this.type = set(signature, value)
  def setInputCols(value: Map[String, String]): this.type = set(inputCols, value)
  def setInputCols(value: java.util.Map[String, String]): this.type = set(inputCols, value.asScala.toMap)
  def setOutputCols(value: Map[String, String]): this.type = set(outputCols, value)
  def setOutputCols(value: java.util.Map[String, String]): this.type = set(outputCols, value.asScala.toMap)
  def setBatchSize(value: Int): this.type = set(batchSize, value)
  def setNumSlots(value: Int): this.type = set(numSlots, value)
  def setIntraOpThreads(value: Int): this.type = set(intraOpThreads, value)
  def setInterOpThreads(value: Int): this.type = set(interOpThreads, value)
  def setTags(value: Array[String]): this.type = set(tags, value)
  def setImageChannelOrder(value: String): this.type = set(imageChannelOrder, value)
  def setExampleFeatures(value: Map[String, String]): this.type = set(exampleFeatures, value)
  def setExampleFeatures(value: java.util.Map[String, String]): this.type = set(exampleFeatures, value.asScala.toMap)
  def setVariableLengthBytes(value: Long): this.type = set(variableLengthBytes, value)
  def setPadValue(value: Double): this.type = set(padValue, value)
  def setNumWorkers(value: Int): this.type = set(numWorkers, value)
  def setEpochs(value: Int): this.type = set(epochs, value)
  def setShuffle(value: Boolean): this.type = set(shuffle, value)
  def setSeed(value: Long): this.type = set(seed, value)
  def setExportPath(value: String): this.type = set(exportPath, value)
  def setOverwriteExport(value: Boolean): this.type = set(overwriteExport, value)
  def setTerminateOnNaN(value: Boolean): this.type = set(terminateOnNaN, value)
  def setRendezvousTimeout(seconds: Int): this.type = set(rendezvousTimeout, seconds)
  def setGpusPerWorker(value: Int): this.type = set(gpusPerWorker, value)
  def setPeerTimeout(seconds: Int): this.type = set(peerTimeout, seconds)
  def setHeartbeatTimeout(seconds: Int): this.type = set(heartbeatTimeout, seconds)
  def setCheckpointDir(value: String): this.type = set(checkpointDir, value)
  def setCheckpointEverySteps(value: Int): this.type = set(checkpointEverySteps, value)
  def setCheckpointEverySeconds(value: Int): this.type = set(checkpointEverySeconds, value)
  def setKeepCheckpoints(value: Int): this.type = set(keepCheckpoints, value)
  def setTensorboardDir(value: String): this.type = set(tensorboardDir, value)
  def setValidationFraction(value: Double): this.type = set(validationFraction, value)
  def setEarlyStoppingMetric(value: String): this.type = set(earlyStoppingMetric, value)
  def setEarlyStoppingPatience(value: Int): this.type = set(earlyStoppingPatience, value)
  def setEarlyStoppingMinDelta(value: Double): this.type = set(earlyStoppingMinDelta, value)
  def setEarlyStoppingMode(value: String): this.type = set(earlyStoppingMode, value)

  /** Early stopping (Keras's `EarlyStopping` with `restore_best_weights`): after every epoch, `metric` is compared with
    * the best epoch's; once `patience` epochs in a row have not beaten it by more than `minDelta`, every worker stops,
    * and the best epoch's weights are exported.
    */
  def setEarlyStopping(metric: String, patience: Int, minDelta: Double): this.type =
    setEarlyStoppingMetric(metric).setEarlyStoppingPatience(patience).setEarlyStoppingMinDelta(minDelta)

  // A DataFrame is no Param (Params are saved as JSON): it stays with this instance, and `copy` passes it on.
  private var validationData: Option[DataFrame] = None

  /** Rows evaluated after every epoch, by all workers together: their loss and the export's metrics, as `val_loss`,
    * `val_<metric>` in the summary, the driver log and TensorBoard. Takes the place of `validationFraction`.
    */
  def setValidationData(df: Dataset[_]): this.type = {
    validationData = Option(df).map(_.toDF())
    this
  }

  def getValidationData: Option[DataFrame] = validationData

  /** The fitted model's output schema; also checks the training inputs and labels. */
  override def transformSchema(schema: StructType): StructType = {
    val model = driverModel(SparkSession.active)
    Plan.inputsOf(schema, model.signature(trainingSignature), getInputCols, planOptions)
    Plan.build(schema, model.signature(getSignature), servingInputs(model), getOutputCols, planOptions).schema
  }

  override def fit(dataset: Dataset[_]): SpindleModel = {
    val df = dataset.toDF()
    val spark = df.sparkSession
    val sc = spark.sparkContext
    val workers = getNumWorkers
    val model = driverModel(spark)
    transformSchema(df.schema)
    if (workers > 1) model.signature("apply_gradients")
    val (train, validation) = split(df)
    val inputs = Plan.inputsOf(df.schema, model.signature(trainingSignature), getInputCols, planOptions)
    val validationInputs = validation.map(v => validationPlan(model, inputs, v))
    val validationMetrics =
      if (validation.isDefined) model.signature("metrics").getOutputsList.asScala.map("val_" + _.getName).toSeq
      else Nil
    checkEarlyStopping("loss" +: validationMetrics, validation.isDefined)
    val target = if (isDefined(exportPath)) getExportPath else SpindleEstimator.defaultExportPath(spark, uid)
    Export.check(
      target,
      getOverwriteExport,
      Seq("modelPath" -> getModelPath) ++ get(checkpointDir).map("checkpointDir" -> _),
      sc.hadoopConfiguration
    )
    // Asked for the training stage alone: scans before it and transforms after it run without GPUs.
    val profile = if (getGpusPerWorker > 0) {
      val task =
        new TaskResourceRequests().cpus(sc.getConf.getInt("spark.task.cpus", 1)).resource("gpu", getGpusPerWorker)
      val p = new ResourceProfileBuilder().require(task).build()
      try SpindleCoreShim.registerProfile(sc, p)
      catch {
        case e: SparkException =>
          throw new SpindleClusterException(
            s"gpusPerWorker=$getGpusPerWorker: Spark refuses the training stage's resource profile: ${e.getMessage}",
            e
          )
      }
      Some(p)
    } else None
    Slots.require(sc, workers, Slots.FirstAttemptGraceMs, profile)
    val checkpoints = if (isDefined(checkpointDir)) Some(checkpointStore(sc)) else None
    val trainRows = SpindleSqlShim.internalRows(train, workers)
    // One element per partition: the partition's training rows and its validation rows, read in that order by the
    // barrier task (a zip of iterators, so no row is wrapped or copied).
    val parts = validation match {
      case Some(v) =>
        trainRows.zipPartitions(SpindleSqlShim.internalRows(v, workers), preservesPartitioning = false) { (t, v) =>
          Iterator.single((t, v))
        }
      case None => trainRows.mapPartitions(t => Iterator.single((t, Iterator[InternalRow]())))
    }
    val secret = Secrets.fresh()
    val config = TrainerConfig
      .newBuilder()
      .setBatchSize(getBatchSize)
      .setNumSlots(getNumSlots)
      .setEpochs(getEpochs)
      .setShuffle(getShuffle)
      .setSeed(getSeed)
      .setSecret(ByteString.copyFrom(secret))
      .setConnectTimeoutMs(getRendezvousTimeout * 1000L)
      .setIoTimeoutMs(getPeerTimeout * 1000L)
      .setHeartbeatTimeoutMs(getHeartbeatTimeout * 1000L)
      .setCheckpointEverySteps(getCheckpointEverySteps)
      .setCheckpointEveryMillis(getCheckpointEverySeconds * 1000L)
      .setTerminateOnNan(getTerminateOnNaN)
      .setValidate(validation.isDefined)
    if (isDefined(earlyStoppingMetric))
      config
        .setEarlyStoppingMetric(getEarlyStoppingMetric)
        .setEarlyStoppingPatience(getEarlyStoppingPatience)
        .setEarlyStoppingMinDelta(getEarlyStoppingMinDelta)
        .setEarlyStoppingMaximize(earlyStoppingMaximizes)
    val gather = if (workers > 1) {
      val host = sc.getConf.get("spark.driver.host", "127.0.0.1")
      Some(new HelloGather(sc.getConf.get("spark.driver.bindAddress", host), host, workers, secret))
    } else None
    val job = TrainJob(
      ModelCache.qualify(getModelPath, sc.hadoopConfiguration),
      threads(spark),
      inputs,
      validationInputs,
      config.build().toByteArray,
      Some(target),
      getOverwriteExport,
      new SerializableConfiguration(sc.hadoopConfiguration),
      checkpoints,
      Progress.register(sc, validationMetrics),
      get(tensorboardDir),
      getVariableLengthBytes,
      getPadValue,
      gather.map(_.address)
    )
    val log = LoggerFactory.getLogger(getClass)
    log.info(s"training $getModelPath on $workers workers, $getEpochs epochs, batch $getBatchSize per worker")
    val (previous, previousTag) =
      (sc.getLocalProperty("spark.job.description"), sc.getLocalProperty(RetryWatch.Property))
    val tag = s"$uid-${System.nanoTime()}"
    sc.setJobDescription(s"Spindle: train $getModelPath on $workers workers")
    sc.setLocalProperty(RetryWatch.Property, tag)
    val retries = new RetryWatch(sc, workers, tag, profile)
    val reports =
      try
        SpindleCoreShim.withTaskFailures(sc, SpindleEstimator.hasRootCause)(job.progress.logged(sc, log) {
          // The shuffle after the barrier stage makes it a map stage: Spark aborts a failed barrier result stage,
          // but retries a failed barrier map stage whole (up to spark.stage.maxConsecutiveAttempts), so workers
          // lost with an executor come back and resume from the newest checkpoint.
          profile.fold(parts)(parts.withResources).barrier().mapPartitions(new TrainTask(job)).repartition(1).collect()
        }) match {
          case Right(r) => r
          case Left((e, taskFailures)) =>
            throw retries.cancelled
              .map { c => c.addSuppressed(e); c }
              .getOrElse(SpindleEstimator.rootCause(e, taskFailures))
        }
      finally {
        gather.foreach(_.close())
        retries.close()
        sc.setJobDescription(previous)
        sc.setLocalProperty(RetryWatch.Property, previousTag)
      }
    val summary = TrainingSummary.of(reports.toSeq.map(TrainingReport.parseFrom), target)
    if (log.isDebugEnabled) summary.steps.foreach { s =>
      log.debug(
        f"step ${s.step}%d epoch ${s.epoch}%d: loss ${s.loss}%.6f, ${s.examples}%d examples, " +
          f"${s.examplesPerSecond}%.0f examples/s, input wait ${s.inputWaitMs}%.2f ms, compute ${s.computeMs}%.2f ms, " +
          f"all-reduce ${s.allReduceMs}%.2f ms, checkpoint ${s.checkpointMs}%.2f ms"
      )
    }
    summary.epochs.foreach { e =>
      val shown = e.validation.toSeq.sortBy(_._1).map { case (k, v) => f", $k $v%.5f" }.mkString
      log.info(f"epoch ${e.epoch}%d: mean loss ${e.loss}%.5f$shown")
    }
    if (summary.bestEpoch > 0)
      log.info(
        s"early stopping on $getEarlyStoppingMetric: best epoch ${summary.bestEpoch}" +
          (if (summary.stoppedEarly) s", stopped after epoch ${summary.epochs.last.epoch}" else "") +
          "; its weights are exported"
      )
    log.info(
      f"trained ${summary.steps.size}%d steps at ${summary.examplesPerSecond}%.0f examples/s; " +
        s"rows per worker ${summary.rowsPerWorker.mkString(", ")}; " +
        f"fed ${summary.rowsFedPerSecond}%.0f rows/s; model exported to $target"
    )
    val fitted = copyValues(new SpindleModel(uid))
      .setModelPath(target)
      .setInputCols(getInputCols.filter { case (input, _) => servingInputs(model).contains(input) })
      .setParent(this)
    fitted.setSummary(summary)
  }

  /** The training rows and the validation rows, if any. */
  private def split(df: DataFrame): (DataFrame, Option[DataFrame]) = validationData match {
    case Some(v) => (df, Some(v))
    case None if getValidationFraction > 0 =>
      val Array(train, held) = df.randomSplit(Array(1 - getValidationFraction, getValidationFraction), getSeed)
      (train, Some(held))
    case None => (df, None)
  }

  /** The validation rows' input plan: the same tensors, dtypes and shapes as the training rows', whatever the order of
    * their columns (the validation batches fill the same windows).
    */
  private def validationPlan(model: internal.LoadedModel, inputs: Seq[InputPlan], v: DataFrame): Seq[InputPlan] = {
    model.signature("evaluate")
    val plan = Plan.inputsOf(v.schema, model.signature(trainingSignature), getInputCols, planOptions)
    def form(p: InputPlan): Any = (p.tensor, p.dtype, p.rowShape, p.areas.filter(_ ne p).map(form))
    for ((t, w) <- inputs.zip(plan) if form(t) != form(w))
      throw new SpindleInputException(
        s"validation column '${w.column}' does not match training column '${t.column}' for input '${t.tensor}': " +
          s"${w.dtype} ${w.rowShape.mkString("[", ", ", "]")} against ${t.dtype} ${t.rowShape.mkString("[", ", ", "]")}"
      )
    plan
  }

  /** Fails before any job when early stopping watches a metric that no epoch will have (not one of `known`). */
  private def checkEarlyStopping(known: Seq[String], validating: Boolean): Unit =
    if (isDefined(earlyStoppingMetric)) {
      val metric = getEarlyStoppingMetric
      if (metric.startsWith("val_") && !validating)
        throw new SpindleInputException(
          s"earlyStoppingMetric '$metric' is a validation metric, but there is no validation data: set " +
            "validationFraction or setValidationData, or watch 'loss'"
        )
      if (!known.contains(metric))
        throw new SpindleInputException(
          s"earlyStoppingMetric '$metric' is not one of the epoch metrics: ${known.mkString(", ")}"
        )
    }

  private def checkpointStore(sc: org.apache.spark.SparkContext): Checkpoints = {
    if (getCheckpointEverySteps == 0 && getCheckpointEverySeconds == 0)
      throw new SpindleInputException(
        s"checkpointDir $getCheckpointDir is set, but checkpointEverySteps and checkpointEverySeconds are both 0"
      )
    val store =
      new Checkpoints(getCheckpointDir, getKeepCheckpoints, new SerializableConfiguration(sc.hadoopConfiguration))
    store.requireWritable()
    store
  }

  private def trainingSignature: String = if (getNumWorkers > 1) "gradients" else "train"

  private def servingInputs(model: internal.LoadedModel): Map[String, String] = {
    val names = model.signature(getSignature).getInputsList.asScala.map(_.getName).toSet
    getInputCols.filter { case (input, _) => names.contains(input) }
  }

  private def driverModel(spark: SparkSession) = {
    if (!isDefined(modelPath)) throw new SpindleModelException("modelPath is not set")
    val local = ModelCache.localize(getModelPath, spark.sparkContext.hadoopConfiguration)
    ModelCache.acquire(threads(spark).copy(localPath = local))
  }

  // Each worker has a session of its own: by default its task's cores for both pools.
  private def threads(spark: SparkSession): ModelCache.Key = {
    val taskCpus = spark.sparkContext.getConf.getInt("spark.task.cpus", 1)
    val intra = if (getIntraOpThreads > 0) getIntraOpThreads else taskCpus
    val inter = if (getInterOpThreads > 0) getInterOpThreads else taskCpus
    ModelCache.Key("", getTags.toSeq, intra, inter)
  }

  override def copy(extra: ParamMap): SpindleEstimator = {
    val copied = defaultCopy[SpindleEstimator](extra)
    copied.validationData = validationData
    copied
  }
}

object SpindleEstimator extends DefaultParamsReadable[SpindleEstimator] {

  private def defaultExportPath(spark: SparkSession, uid: String): String = {
    val fs = org.apache.hadoop.fs.FileSystem.get(spark.sparkContext.hadoopConfiguration)
    fs.makeQualified(new HPath(s"/tmp/spindle-export-$uid-${System.currentTimeMillis()}")).toString
  }

  /** Whether `failures` hold an exception other than a peer's ring error, which only follows another failure. */
  private def hasRootCause(failures: Seq[Throwable]): Boolean =
    failures.exists(f => !f.isInstanceOf[SpindleClusterException])

  /** The Spindle exception a worker threw, rather than Spark's job-abort wrapper around it. When one worker fails, its
    * peers fail too, with a cluster error about the ring it left: the first other error is the cause.
    */
  private def rootCause(e: SparkException, taskFailures: Seq[Throwable]): Throwable = {
    val thrown = Iterator.iterate[Throwable](e)(_.getCause).takeWhile(_ != null).toSeq ++ taskFailures
    val spindle = thrown.collect { case s: SpindleException => s }
    spindle
      .find(!_.isInstanceOf[SpindleClusterException])
      .orElse(spindle.headOption)
      .map { s => s.addSuppressed(e); s }
      .getOrElse(e)
  }
}
