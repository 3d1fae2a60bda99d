package io.spindle

import scala.jdk.CollectionConverters._
import scala.util.control.NonFatal

import com.google.protobuf.ByteString
import org.apache.hadoop.fs.{Path => HPath}
import org.apache.spark.ml.Estimator
import org.apache.spark.ml.param.{Param, ParamMap}
import org.apache.spark.ml.util.{DefaultParamsReadable, DefaultParamsWritable, Identifiable}
import org.apache.spark.sql.{DataFrame, Dataset, SparkSession, SpindleSqlShim}
import org.apache.spark.sql.types.StructType
import org.apache.spark.util.SerializableConfiguration

import io.spindle.internal.{
  Attempts,
  BarrierTraining,
  Channel,
  Checkpoints,
  Elastic,
  Export,
  InputPlan,
  MlflowLog,
  MlflowModel,
  ModelCache,
  OpLibraries,
  PartitionFeed,
  Plan,
  Progress,
  Secrets,
  TrainJob
}
import io.spindle.proto.TrainerConfig

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
    with SpindleTrainingParams[SpindleEstimator]
    with DefaultParamsWritable {

  def this() = this(Identifiable.randomUID("spindleEstimator"))

  /** Early stopping (Keras's `EarlyStopping` with `restore_best_weights`): after every epoch, `metric` is compared with
    * the best epoch's; once `patience` epochs in a row have not beaten it by more than `minDelta`, every worker stops,
    * and the best epoch's weights are exported.
    */
  def setEarlyStopping(metric: String, patience: Int, minDelta: Double): SpindleEstimator =
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
    val (inputs, packed) = servingInputs(model)
    val options = planOptions.copy(packedInputs = packed)
    Plan.build(schema, model.signature(getSignature), inputs, getOutputCols, options).schema
  }

  override def fit(dataset: Dataset[_]): SpindleModel = {
    val df = dataset.toDF()
    val spark = df.sparkSession
    val sc = spark.sparkContext
    val workers = getNumWorkers
    // Elastic training goes on with two or more workers: one runs another signature, planned for at the start.
    val minWorkers = if (getMinWorkers == 0) workers else getMinWorkers
    if (minWorkers > workers || (minWorkers < 2 && minWorkers != workers))
      throw new IllegalArgumentException(
        s"minWorkers=$getMinWorkers must be 0 (no elastic training) or between 2 and numWorkers=$workers"
      )
    // Validate: everything a user can get wrong fails here, before any job.
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
    val modelInputs = Seq("modelPath" -> getModelPath) ++ get(checkpointDir).map("checkpointDir" -> _)
    Export.check(target, getOverwriteExport, modelInputs, sc.hadoopConfiguration)
    val checkpoints = if (isDefined(checkpointDir)) Some(checkpointStore(sc)) else None
    // Plan: what every worker runs.
    val secret = Secrets.fresh()
    val encrypt = getEncryptChannels || Channel.sparkEncrypts(sc.getConf)
    val job = TrainJob(
      ModelCache.qualify(getModelPath, sc.hadoopConfiguration),
      threads(spark),
      inputs,
      validationInputs,
      trainerConfig(secret, encrypt, validating = validation.isDefined).toByteArray,
      Some(target),
      getOverwriteExport,
      new SerializableConfiguration(sc.hadoopConfiguration),
      checkpoints,
      Progress.register(sc, validationMetrics),
      get(tensorboardDir),
      getVariableLengthBytes,
      getPadValue,
      gatherAddress = None
    )
    // Run.
    log.info(s"training $getModelPath on $workers workers, $getEpochs epochs, batch $getBatchSize per worker")
    val description = s"train $getModelPath on $workers workers"
    val newest = () => checkpoints.flatMap(_.newest()).map(_.toString)
    // MLflow last: its run starts only once everything else checked out (a failed start fails fit, before any job).
    val mlflow = MlflowLog.trackingUri(get(mlflowTrackingUri)).map { uri =>
      val experiment = get(mlflowExperiment).orElse(sys.env.get("MLFLOW_EXPERIMENT_NAME")).filter(_.nonEmpty)
      MlflowLog.start(uri, experiment, uid, mlflowParams, log)
    }
    val attempts = new Attempts(sc, job.progress.step.id, newest)
    val (reports, changes) =
      try
        job.progress.watchEpochs(sc)((epoch, loss, validation) => mlflow.foreach(_.epoch(epoch, loss, validation))) {
          Elastic.run(workers, minWorkers, newest) { n =>
            val stage =
              BarrierTraining.Stage(getGpusPerWorker, getExecutorWaitTimeout * 1000L, encrypt, attempts, description)
            BarrierTraining.run(sc, parts(train, validation, n), job, stage, secret)
          }
        }
      catch {
        case NonFatal(e) =>
          mlflow.foreach(_.finish(Nil, sc.hadoopConfiguration, "FAILED"))
          throw e
      } finally attempts.close()
    // Summary.
    val lastStep = reports.headOption.flatMap(_.getStepsList.asScala.lastOption).fold(0L)(_.getStep)
    val summary = TrainingSummary.of(reports, target, changes, attempts.all(lastStep))
    logSummary(summary, target)
    val (servingCols, servingPacked) = servingInputs(model)
    val fitted = copyValues(new SpindleModel(uid))
      .setModelPath(target)
      .setInputCols(servingCols)
      .setPackedInputCols(servingPacked)
      .setParent(this)
    fitted.setSummary(summary)
    mlflow.foreach(MlflowModel.finish(_, fitted, train, target, log))
    fitted
  }

  /** The Params an MLflow run records: every one set or defaulted, but the MLflow ones (a tracking URI may carry
    * credentials). Strings as they are, the rest as their JSON (a map param: `{"features":"pixels"}`).
    */
  private def mlflowParams: Seq[(String, String)] =
    extractParamMap().toSeq
      .filterNot(p => Set[Param[_]](mlflowTrackingUri, mlflowExperiment).contains(p.param))
      .map { p =>
        p.param.name -> (p.value match {
          case s: String => s
          case v         => p.param.asInstanceOf[Param[Any]].jsonEncode(v)
        })
      }
      .sortBy(_._1)

  /** What the native trainer of every worker is told: the one place the training Params become its config. */
  private def trainerConfig(secret: Array[Byte], encrypt: Boolean, validating: Boolean): TrainerConfig = {
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
      .setAllReduceAlgorithm(getAllReduceAlgorithm)
      .setEncryptChannels(encrypt)
      .setCheckpointEverySteps(getCheckpointEverySteps)
      .setCheckpointEveryMillis(getCheckpointEverySeconds * 1000L)
      .setTerminateOnNan(getTerminateOnNaN)
      .setValidate(validating)
    if (isDefined(earlyStoppingMetric))
      config
        .setEarlyStoppingMetric(getEarlyStoppingMetric)
        .setEarlyStoppingPatience(getEarlyStoppingPatience)
        .setEarlyStoppingMinDelta(getEarlyStoppingMinDelta)
        .setEarlyStoppingMaximize(earlyStoppingMaximizes)
    config.build()
  }

  /** One element per worker: its partition's training rows and its validation rows, read in that order by its task (a
    * zip of iterators, so no row is wrapped or copied). A DataFrame whose plan ends in column batches, already in one
    * partition per worker, is read a batch at a time (unless `columnar` is off); any other, as rows, regrouped for
    * fewer workers after a loss ([[Elastic]]).
    */
  private def parts(train: DataFrame, validation: Option[DataFrame], workers: Int): BarrierTraining.Parts = {
    def batches(df: DataFrame) =
      if (getColumnar && workers == getNumWorkers) SpindleSqlShim.columnarBatches(df, workers) else None
    def feeds(df: DataFrame) = batches(df) match {
      case Some(b) => b.mapPartitions(it => Iterator.single(PartitionFeed.batches(it)))
      case None =>
        val first = SpindleSqlShim.internalRows(df, getNumWorkers)
        val rows = if (workers == getNumWorkers) first else Elastic.regroup(first, workers)
        rows.mapPartitions(r => Iterator.single(PartitionFeed.rows(r)))
    }
    val trainFeeds = feeds(train)
    validation match {
      case Some(v) =>
        trainFeeds.zipPartitions(feeds(v), preservesPartitioning = false)((t, v) =>
          Iterator.single((t.next(), v.next()))
        )
      case None => trainFeeds.map(t => (t, PartitionFeed.rows(Iterator.empty)))
    }
  }

  private def logSummary(summary: TrainingSummary, target: String): Unit = {
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

  /** `inputCols` and `packedInputCols` of the serving signature's inputs only: the training signatures' labels go. */
  private def servingInputs(model: internal.LoadedModel): (Map[String, String], Map[String, Seq[String]]) = {
    val names = model.signature(getSignature).getInputsList.asScala.map(_.getName).toSet
    def serving[V](columns: Map[String, V]): Map[String, V] = columns.filter { case (input, _) =>
      names.contains(input)
    }
    (serving(getInputCols), serving(getPackedInputCols))
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
    val libraries = OpLibraries.ship(spark.sparkContext, getOpLibraries.toSeq)
    ModelCache.Key("", getTags.toSeq, intra, inter, opLibraries = libraries)
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
}
