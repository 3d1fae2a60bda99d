package io.spindle

import org.apache.spark.ml.param.{BooleanParam, DoubleParam, IntParam, LongParam, Param, ParamValidators}

/** Params of [[SpindleEstimator]], on top of those its fitted [[SpindleModel]] keeps. */
trait SpindleTrainingParams[Stage <: SpindleTrainingParams[Stage]] extends SpindleParams[Stage] { self: Stage =>

  final val numWorkers = new IntParam(
    this,
    "numWorkers",
    "training workers: one barrier task each, all running at once",
    ParamValidators.gt(0)
  )

  final val minWorkers = new IntParam(
    this,
    "minWorkers",
    "elastic training: when workers are lost for good (an executor or host gone) and at least this many task slots " +
      "remain, the survivors go on from the newest checkpoint, each with its batch size and its rows plus a share of " +
      "the lost ones; 0: numWorkers, so a lost worker fails fit",
    ParamValidators.gtEq(0)
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

  final val executorWaitTimeout = new IntParam(
    this,
    "executorWaitTimeout",
    "seconds fit waits for executors YARN or Kubernetes was asked for (spark.executor.instances) but has not started " +
      "yet, when the registered ones have fewer task slots than workers; it logs 'waiting for N more executors (have " +
      "M of K slots)'. With none pending, missing slots fail fit at once",
    ParamValidators.gtEq(0)
  )

  final val encryptChannels = new BooleanParam(
    this,
    "encryptChannels",
    "encrypt every frame on Spindle's own connections (the workers' ring and mesh, the driver's rendezvous) with " +
      "AES-256-GCM under keys derived per connection from the fit's secret; also on whenever Spark encrypts its " +
      "own (spark.network.crypto.enabled or spark.ssl.enabled)"
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

  final val allReduceAlgorithm = new Param[String](
    this,
    "allReduceAlgorithm",
    "how the workers sum their gradients: 'auto' (the algorithm a cost model, fed by timings the workers take " +
      "when they connect, predicts fastest for the buffer's size), 'ring', 'halving-doubling', " +
      "'recursive-doubling', or 'two-level' (one worker per host crosses the network; hosts are the executors' " +
      "addresses)",
    ParamValidators.inArray(Array("auto", "ring", "halving-doubling", "recursive-doubling", "two-level"))
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

  final val mlflowTrackingUri = new Param[String](
    this,
    "mlflowTrackingUri",
    "MLflow tracking server (http:// or https://) that fit logs a run to: the Params, every epoch's loss and " +
      "validation metrics, the exported SavedModel and the fitted stage (docs/mlflow.md); unset: the driver's " +
      "MLFLOW_TRACKING_URI, if any, else no MLflow"
  )

  final val mlflowExperiment = new Param[String](
    this,
    "mlflowExperiment",
    "name of the MLflow experiment the run goes to, created when missing; unset: the driver's " +
      "MLFLOW_EXPERIMENT_NAME, if any, else MLflow's default experiment (id 0)"
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
    minWorkers -> 0,
    epochs -> 1,
    shuffle -> true,
    seed -> getClass.getName.hashCode.toLong,
    overwriteExport -> false,
    terminateOnNaN -> true,
    rendezvousTimeout -> 120,
    executorWaitTimeout -> io.spindle.internal.Slots.DefaultWaitSeconds,
    encryptChannels -> false,
    gpusPerWorker -> 0,
    peerTimeout -> 600,
    heartbeatTimeout -> 30,
    allReduceAlgorithm -> "auto",
    checkpointEverySteps -> 100,
    checkpointEverySeconds -> 0,
    keepCheckpoints -> 3,
    validationFraction -> 0.0,
    earlyStoppingPatience -> 0,
    earlyStoppingMinDelta -> 0.0,
    earlyStoppingMode -> "auto"
  )

  def getNumWorkers: Int = $(numWorkers)
  def getMinWorkers: Int = $(minWorkers)
  def getEpochs: Int = $(epochs)
  def getShuffle: Boolean = $(shuffle)
  def getSeed: Long = $(seed)
  def getExportPath: String = $(exportPath)
  def getOverwriteExport: Boolean = $(overwriteExport)
  def getTerminateOnNaN: Boolean = $(terminateOnNaN)
  def getRendezvousTimeout: Int = $(rendezvousTimeout)
  def getExecutorWaitTimeout: Int = $(executorWaitTimeout)
  def getEncryptChannels: Boolean = $(encryptChannels)
  def getGpusPerWorker: Int = $(gpusPerWorker)
  def getPeerTimeout: Int = $(peerTimeout)
  def getHeartbeatTimeout: Int = $(heartbeatTimeout)
  def getAllReduceAlgorithm: String = $(allReduceAlgorithm)
  def getCheckpointDir: String = $(checkpointDir)
  def getCheckpointEverySteps: Int = $(checkpointEverySteps)
  def getCheckpointEverySeconds: Int = $(checkpointEverySeconds)
  def getKeepCheckpoints: Int = $(keepCheckpoints)
  def getTensorboardDir: String = $(tensorboardDir)
  def getMlflowTrackingUri: String = $(mlflowTrackingUri)
  def getMlflowExperiment: String = $(mlflowExperiment)
  def getValidationFraction: Double = $(validationFraction)
  def getEarlyStoppingMetric: String = $(earlyStoppingMetric)
  def getEarlyStoppingPatience: Int = $(earlyStoppingPatience)
  def getEarlyStoppingMinDelta: Double = $(earlyStoppingMinDelta)
  def getEarlyStoppingMode: String = $(earlyStoppingMode)

  def setNumWorkers(value: Int): Stage = set(numWorkers, value)
  def setMinWorkers(value: Int): Stage = set(minWorkers, value)
  def setEpochs(value: Int): Stage = set(epochs, value)
  def setShuffle(value: Boolean): Stage = set(shuffle, value)
  def setSeed(value: Long): Stage = set(seed, value)
  def setExportPath(value: String): Stage = set(exportPath, value)
  def setOverwriteExport(value: Boolean): Stage = set(overwriteExport, value)
  def setTerminateOnNaN(value: Boolean): Stage = set(terminateOnNaN, value)
  def setRendezvousTimeout(seconds: Int): Stage = set(rendezvousTimeout, seconds)
  def setExecutorWaitTimeout(seconds: Int): Stage = set(executorWaitTimeout, seconds)
  def setEncryptChannels(value: Boolean): Stage = set(encryptChannels, value)
  def setGpusPerWorker(value: Int): Stage = set(gpusPerWorker, value)
  def setPeerTimeout(seconds: Int): Stage = set(peerTimeout, seconds)
  def setHeartbeatTimeout(seconds: Int): Stage = set(heartbeatTimeout, seconds)
  def setAllReduceAlgorithm(value: String): Stage = set(allReduceAlgorithm, value)
  def setCheckpointDir(value: String): Stage = set(checkpointDir, value)
  def setCheckpointEverySteps(value: Int): Stage = set(checkpointEverySteps, value)
  def setCheckpointEverySeconds(value: Int): Stage = set(checkpointEverySeconds, value)
  def setKeepCheckpoints(value: Int): Stage = set(keepCheckpoints, value)
  def setTensorboardDir(value: String): Stage = set(tensorboardDir, value)
  def setMlflowTrackingUri(value: String): Stage = set(mlflowTrackingUri, value)
  def setMlflowExperiment(value: String): Stage = set(mlflowExperiment, value)
  def setValidationFraction(value: Double): Stage = set(validationFraction, value)
  def setEarlyStoppingMetric(value: String): Stage = set(earlyStoppingMetric, value)
  def setEarlyStoppingPatience(value: Int): Stage = set(earlyStoppingPatience, value)
  def setEarlyStoppingMinDelta(value: Double): Stage = set(earlyStoppingMinDelta, value)
  def setEarlyStoppingMode(value: String): Stage = set(earlyStoppingMode, value)

  /** Whether early stopping treats larger values of its metric as better. */
  protected def earlyStoppingMaximizes: Boolean = getEarlyStoppingMode match {
    case "max" => true
    case "min" => false
    case _ =>
      val name = getEarlyStoppingMetric
      !(name.endsWith("loss") || name.contains("error"))
  }
}
