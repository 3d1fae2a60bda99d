"""PySpark ML stages over Spindle's JVM classes: :class:`SpindleModel` and :class:`SpindleEstimator`.

Both wrap the Scala stages of the same names (``io.spindle.SpindleModel``, ``io.spindle.SpindleEstimator``) and have
their Params one to one, under the same names, with the same docs and the JVM's defaults (read from the JVM stage, so
there is one source of them). They need a session with Spindle's jars (:func:`spindle.session`).

.. code-block:: python

    import spindle
    from spindle.ml import SpindleEstimator, SpindleModel

    spark = spindle.session()
    scored = SpindleModel.load("/models/ranker").setInputCols({"features": "feature_vec"}).transform(df)
    fitted = (
        SpindleEstimator()
        .setModelPath("/models/mlp-init")  # a trainable SavedModel: spindle.keras.export_trainable
        .setInputCols({"features": "pixels", "labels": "digit"})
        .setNumWorkers(2)
        .setEpochs(10)
        .fit(train_df)
    )
    fitted.summary.lossHistory

Map params (``inputCols``, ``outputCols``, ``exampleFeatures``) take a ``dict`` of ``str`` to ``str``; they cross to the
JVM as the JSON their Scala param reads and writes (``StringMapParam.jsonDecode``), so they reach it as Scala maps.

Persistence: ``write().save(path)`` and ``load(path)`` are the JVM stages' own, so a stage saved from Python loads in
Scala and the other way round, and a ``Pipeline`` or ``PipelineModel`` holding Spindle's stages saves and loads in
PySpark. PySpark finds the Python class of a saved JVM stage from its class name with ``org.apache.spark`` replaced by
``pyspark`` (``JavaParams._from_java``, ``DefaultParamsReader.loadParamsInstance``); ``io.spindle.SpindleModel`` names
no Python module, so importing this module registers it as ``io.spindle`` in ``sys.modules`` too (``spindle.session``
imports it). That is the one name it takes: ``io`` itself stays the standard library's.

JVM errors (``io.spindle.SpindleInputException`` and the other ``SpindleException`` types) reach Python as
``py4j.protocol.Py4JJavaError``, whose text names the exception, the column, tensor or path at fault.
"""

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
from pyspark import SparkContext
from pyspark.ml.common import _java2py
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.util import JavaMLReadable, JavaMLReader, JavaMLWritable
from pyspark.ml.wrapper import JavaEstimator, JavaModel, JavaParams, JavaWrapper
from pyspark.sql import DataFrame

__all__ = ["SpindleModel", "SpindleEstimator", "TrainingSummary", "StepSummary", "EpochSummary"]

_MODEL_CLASS = "io.spindle.SpindleModel"
_ESTIMATOR_CLASS = "io.spindle.SpindleEstimator"


def _to_string_map(value: Any) -> dict[str, str]:
    """Type converter of the map params: a mapping of str to str, as a plain dict."""
    if isinstance(value, Mapping) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        return dict(value)
    raise TypeError(f"expected a dict of str -> str, got {value!r}")


def _jvm() -> Any:
    sc = SparkContext._active_spark_context
    if sc is None or sc._jvm is None:
        raise RuntimeError("Spindle's stages need an active SparkSession with Spindle's jars: spindle.session()")
    return sc._jvm


def _java_class(name: str) -> Any:
    found = _jvm()
    for part in name.split("."):
        found = getattr(found, part)
    return found


def _seq(java_seq: Any) -> list[Any]:
    """A Scala Seq's elements, as Python values."""
    return [java_seq.apply(i) for i in range(java_seq.length())]


def _array(java_array: Any, kind: str) -> np.ndarray:
    """A JVM ``double[]`` (kind ``"d"``) or ``float[]`` (``"f"``) in one transfer: its bytes through a ByteBuffer
    (big-endian), rather than a py4j call per element."""
    n = len(java_array)
    size = 8 if kind == "d" else 4
    buffer = _jvm().java.nio.ByteBuffer.allocate(size * n)
    (buffer.asDoubleBuffer() if kind == "d" else buffer.asFloatBuffer()).put(java_array)
    dtype = np.float64 if kind == "d" else np.float32
    return np.frombuffer(bytes(buffer.array()), dtype=">f8" if kind == "d" else ">f4").astype(dtype)


class _SpindleParams(Params):
    """Params shared by inference (:class:`SpindleModel`) and training (:class:`SpindleEstimator`): Scala's
    ``io.spindle.SpindleParams``."""

    modelPath = Param(
        Params._dummy(), "modelPath", "SavedModel directory (any Hadoop FileSystem path)", TypeConverters.toString
    )
    signature = Param(Params._dummy(), "signature", "signature to run", TypeConverters.toString)
    inputCols = Param(Params._dummy(), "inputCols", "signature input name -> DataFrame column", _to_string_map)
    outputCols = Param(
        Params._dummy(),
        "outputCols",
        "signature output name -> new column; empty means every output, named after the output",
        _to_string_map,
    )
    batchSize = Param(Params._dummy(), "batchSize", "rows per TensorFlow run", TypeConverters.toInt)
    numSlots = Param(
        Params._dummy(),
        "numSlots",
        "memory-mapped batch slots per task; 2 lets the JVM fill one while TensorFlow runs the other",
        TypeConverters.toInt,
    )
    intraOpThreads = Param(
        Params._dummy(), "intraOpThreads", "TensorFlow intra-op threads; 0 means spark.task.cpus", TypeConverters.toInt
    )
    interOpThreads = Param(
        Params._dummy(),
        "interOpThreads",
        "TensorFlow inter-op threads; 0 means the number of tasks an executor runs at once",
        TypeConverters.toInt,
    )
    tags = Param(Params._dummy(), "tags", "MetaGraph tags to load", TypeConverters.toListString)
    imageChannelOrder = Param(
        Params._dummy(),
        "imageChannelOrder",
        "channel order an image column (Spark's image source, BGR) is fed in: BGR as it is, or RGB",
        TypeConverters.toString,
    )
    nestedOutputs = Param(
        Params._dummy(),
        "nestedOutputs",
        "outputs of rank 3 and more as arrays nested to the tensor's shape, instead of flat row-major arrays",
        TypeConverters.toBoolean,
    )
    binaryOutputs = Param(
        Params._dummy(),
        "binaryOutputs",
        "string outputs to return as BinaryType columns (bytes as they are) instead of StringType (UTF-8 text)",
        TypeConverters.toListString,
    )
    exampleFeatures = Param(
        Params._dummy(),
        "exampleFeatures",
        "tf.Example feature -> DataFrame column; when set, the signature's one string input takes a serialized "
        "tf.Example per row, built from these columns",
        _to_string_map,
    )
    variableLengthBytes = Param(
        Params._dummy(),
        "variableLengthBytes",
        "bytes per batch for each input of strings or ragged rows (a batch that fills them runs early); 0 sizes them "
        "from the partition's first row",
        TypeConverters.toInt,
    )
    padValue = Param(
        Params._dummy(),
        "padValue",
        "value that pads ragged rows (inputs whose inner size is unknown) to the longest row of their batch",
        TypeConverters.toFloat,
    )

    def getModelPath(self) -> str:
        return self.getOrDefault(self.modelPath)

    def getSignature(self) -> str:
        return self.getOrDefault(self.signature)

    def getInputCols(self) -> dict[str, str]:
        return dict(self.getOrDefault(self.inputCols))

    def getOutputCols(self) -> dict[str, str]:
        return dict(self.getOrDefault(self.outputCols))

    def getBatchSize(self) -> int:
        return self.getOrDefault(self.batchSize)

    def getNumSlots(self) -> int:
        return self.getOrDefault(self.numSlots)

    def getIntraOpThreads(self) -> int:
        return self.getOrDefault(self.intraOpThreads)

    def getInterOpThreads(self) -> int:
        return self.getOrDefault(self.interOpThreads)

    def getTags(self) -> list[str]:
        return list(self.getOrDefault(self.tags))

    def getNestedOutputs(self) -> bool:
        return self.getOrDefault(self.nestedOutputs)

    def getImageChannelOrder(self) -> str:
        return self.getOrDefault(self.imageChannelOrder)

    def getBinaryOutputs(self) -> list[str]:
        return list(self.getOrDefault(self.binaryOutputs))

    def getExampleFeatures(self) -> dict[str, str]:
        return dict(self.getOrDefault(self.exampleFeatures))

    def getVariableLengthBytes(self) -> int:
        return self.getOrDefault(self.variableLengthBytes)

    def getPadValue(self) -> float:
        return self.getOrDefault(self.padValue)


class _SpindleTrainingParams(_SpindleParams):
    """Params of :class:`SpindleEstimator` on top of those its fitted model keeps: Scala's
    ``io.spindle.SpindleTrainingParams``."""

    numWorkers = Param(
        Params._dummy(),
        "numWorkers",
        "training workers: one barrier task each, all running at once",
        TypeConverters.toInt,
    )
    epochs = Param(Params._dummy(), "epochs", "passes over the data", TypeConverters.toInt)
    shuffle = Param(
        Params._dummy(), "shuffle", "shuffle the batch order of every epoch after the first", TypeConverters.toBoolean
    )
    seed = Param(Params._dummy(), "seed", "seed of the shuffle", TypeConverters.toInt)
    exportPath = Param(
        Params._dummy(),
        "exportPath",
        "where the trained SavedModel goes (any Hadoop FileSystem path); unset: a new directory under /tmp of the "
        "default FileSystem",
        TypeConverters.toString,
    )
    overwriteExport = Param(
        Params._dummy(),
        "overwriteExport",
        "replace an exportPath that already holds files (the old content goes only once the new export is complete); "
        "false: such an exportPath fails fit before any job starts",
        TypeConverters.toBoolean,
    )
    terminateOnNaN = Param(
        Params._dummy(),
        "terminateOnNaN",
        "stop training at the first step whose loss is NaN or infinite, with a SpindleTrainingException naming the "
        "step and the last finite loss (like Keras's TerminateOnNaN); the checkpoints already written stay",
        TypeConverters.toBoolean,
    )
    rendezvousTimeout = Param(
        Params._dummy(),
        "rendezvousTimeout",
        "seconds the workers may take to connect to each other",
        TypeConverters.toInt,
    )
    gpusPerWorker = Param(
        Params._dummy(),
        "gpusPerWorker",
        "GPUs each training worker asks Spark for, for the training stage only (a stage-level task resource profile; "
        "the executors must have them: spark.executor.resource.gpu.amount); 0: the application's "
        "spark.task.resource.gpu.amount, if any",
        TypeConverters.toInt,
    )
    peerTimeout = Param(
        Params._dummy(),
        "peerTimeout",
        "seconds a worker waits for a peer within a step (a peer still computing its Spark partition counts)",
        TypeConverters.toInt,
    )
    heartbeatTimeout = Param(
        Params._dummy(),
        "heartbeatTimeout",
        "seconds a worker's ring neighbour may send no heartbeat (its process stopped, the network cut) before the job "
        "fails naming it; heartbeats flow while steps compute, so a long step never trips it",
        TypeConverters.toInt,
    )
    checkpointDir = Param(
        Params._dummy(),
        "checkpointDir",
        "where the chief keeps checkpoints (any Hadoop FileSystem path); fit resumes from the newest one there, as "
        "does a barrier stage Spark retries after a failure; unset: no checkpoints",
        TypeConverters.toString,
    )
    checkpointEverySteps = Param(
        Params._dummy(),
        "checkpointEverySteps",
        "checkpoint every this many steps (0: not by steps)",
        TypeConverters.toInt,
    )
    checkpointEverySeconds = Param(
        Params._dummy(),
        "checkpointEverySeconds",
        "checkpoint when this many seconds have passed since the last one (0: not by time)",
        TypeConverters.toInt,
    )
    keepCheckpoints = Param(
        Params._dummy(), "keepCheckpoints", "how many of the newest checkpoints to keep", TypeConverters.toInt
    )
    tensorboardDir = Param(
        Params._dummy(),
        "tensorboardDir",
        "where the chief writes TensorBoard event files (loss, examples/s, the step-time split): live on the local "
        "filesystem, copied when training ends on any other Hadoop FileSystem; unset: none",
        TypeConverters.toString,
    )

    validationFraction = Param(
        Params._dummy(),
        "validationFraction",
        "fraction of the rows held out (a seeded random split) and evaluated after every epoch instead of trained on; "
        "0: none, unless setValidationData gives a DataFrame",
        TypeConverters.toFloat,
    )
    earlyStoppingMetric = Param(
        Params._dummy(),
        "earlyStoppingMetric",
        "the epoch metric early stopping watches: 'loss' (the epoch's mean training loss), 'val_loss' or "
        "'val_<metric>' (a metric the export names); unset: no early stopping",
        TypeConverters.toString,
    )
    earlyStoppingPatience = Param(
        Params._dummy(),
        "earlyStoppingPatience",
        "epochs without an improvement tolerated before training stops (Keras's patience)",
        TypeConverters.toInt,
    )
    earlyStoppingMinDelta = Param(
        Params._dummy(),
        "earlyStoppingMinDelta",
        "how much the metric must beat the best epoch's to count as an improvement",
        TypeConverters.toFloat,
    )
    earlyStoppingMode = Param(
        Params._dummy(),
        "earlyStoppingMode",
        "'min', 'max', or 'auto': smaller is better for a metric whose name ends in 'loss' or holds 'error', larger "
        "for any other",
        TypeConverters.toString,
    )

    def getNumWorkers(self) -> int:
        return self.getOrDefault(self.numWorkers)

    def getEpochs(self) -> int:
        return self.getOrDefault(self.epochs)

    def getShuffle(self) -> bool:
        return self.getOrDefault(self.shuffle)

    def getSeed(self) -> int:
        return self.getOrDefault(self.seed)

    def getExportPath(self) -> str:
        return self.getOrDefault(self.exportPath)

    def getOverwriteExport(self) -> bool:
        return self.getOrDefault(self.overwriteExport)

    def getTerminateOnNaN(self) -> bool:
        return self.getOrDefault(self.terminateOnNaN)

    def getRendezvousTimeout(self) -> int:
        return self.getOrDefault(self.rendezvousTimeout)

    def getPeerTimeout(self) -> int:
        return self.getOrDefault(self.peerTimeout)

    def getHeartbeatTimeout(self) -> int:
        return self.getOrDefault(self.heartbeatTimeout)

    def getGpusPerWorker(self) -> int:
        return self.getOrDefault(self.gpusPerWorker)

    def getCheckpointDir(self) -> str:
        return self.getOrDefault(self.checkpointDir)

    def getCheckpointEverySteps(self) -> int:
        return self.getOrDefault(self.checkpointEverySteps)

    def getCheckpointEverySeconds(self) -> int:
        return self.getOrDefault(self.checkpointEverySeconds)

    def getKeepCheckpoints(self) -> int:
        return self.getOrDefault(self.keepCheckpoints)

    def getTensorboardDir(self) -> str:
        return self.getOrDefault(self.tensorboardDir)

    def getValidationFraction(self) -> float:
        return self.getOrDefault(self.validationFraction)

    def getEarlyStoppingMetric(self) -> str:
        return self.getOrDefault(self.earlyStoppingMetric)

    def getEarlyStoppingPatience(self) -> int:
        return self.getOrDefault(self.earlyStoppingPatience)

    def getEarlyStoppingMinDelta(self) -> float:
        return self.getOrDefault(self.earlyStoppingMinDelta)

    def getEarlyStoppingMode(self) -> str:
        return self.getOrDefault(self.earlyStoppingMode)


class _SpindleJavaParams(JavaParams):
    """How Spindle's params cross py4j: map params as the JSON their Scala param decodes; everything else as PySpark
    sends it. Also: ``setParams`` by keyword, and the reader that names the JVM class."""

    _java_class_name: str = ""
    _map_params = ("inputCols", "outputCols", "exampleFeatures")

    def setParams(self, **params: Any) -> "_SpindleJavaParams":
        """Sets params by name (``setParams(batchSize=128, inputCols={"features": "pixels"})``).

        Raises
        ------
        TypeError
            For a name that is not a param of this stage.
        """
        unknown = sorted(name for name in params if not self.hasParam(name))
        if unknown:
            names = ", ".join(sorted(p.name for p in self.params))
            raise TypeError(f"{type(self).__name__} has no param {', '.join(unknown)} (its params: {names})")
        return self._set(**params)

    def _make_java_param_pair(self, param: Any, value: Any) -> Any:
        param = self._resolveParam(param)
        if param.name in self._map_params:
            assert self._java_obj is not None
            java_param = self._java_obj.getParam(param.name)
            return java_param.w(java_param.jsonDecode(json.dumps(value)))
        return super()._make_java_param_pair(param, value)

    def _value_from_java(self, param: Param, java_param: Any, java_value: Any) -> Any:
        if param.name in self._map_params:
            return json.loads(java_param.jsonEncode(java_value))
        if param.typeConverter is TypeConverters.toListString:
            return [str(x) for x in java_value]
        return _java2py(SparkContext._active_spark_context, java_value)

    def _transfer_params_from_java(self) -> None:
        # PySpark's loop, with the map params decoded from their JSON: the set values, then the JVM's defaults for
        # every param Python has none for (all of them, on a new stage).
        java = self._java_obj
        assert java is not None
        for param in self.params:
            if not java.hasParam(param.name):
                continue
            java_param = java.getParam(param.name)
            if java.isSet(java_param):
                self._set(**{param.name: self._value_from_java(param, java_param, java.getOrDefault(java_param))})
            if java.hasDefault(java_param) and not self.isDefined(param):
                default = java.getDefault(java_param).get()
                self._setDefault(**{param.name: self._value_from_java(param, java_param, default)})

    @classmethod
    def read(cls) -> JavaMLReader:
        """The JVM stage's reader (``write().save(path)`` wrote what it reads)."""
        return _SpindleReader(cls)


class _SpindleReader(JavaMLReader):
    """JavaMLReader naming the JVM class itself: PySpark's default derives it from the Python module's name."""

    @classmethod
    def _java_loader_class(cls, clazz: Any) -> str:
        return clazz._java_class_name


@dataclass(frozen=True)
class StepSummary:
    """One synchronous training step (Scala's ``io.spindle.StepSummary``). Times are the slowest worker's.

    Attributes
    ----------
    loss : float
        Mean loss over every worker's rows of the step.
    examples : int
        Rows of the step over all workers.
    checkpointMs : float
        Time the chief spent checkpointing after the step (part of the step's time, so of ``examplesPerSecond``).
    """

    step: int
    epoch: int
    loss: float
    examples: int
    examplesPerSecond: float
    inputWaitMs: float
    computeMs: float
    allReduceMs: float
    checkpointMs: float


@dataclass(frozen=True)
class EpochSummary:
    """One epoch (Scala's ``io.spindle.EpochSummary``).

    Attributes
    ----------
    loss : float
        Row-weighted mean of the epoch's step losses.
    validation : dict of str to float
        The validation metrics after the epoch (``val_loss``, ``val_<metric>``); empty without validation data.
    """

    epoch: int
    loss: float
    validation: dict[str, float]


class TrainingSummary(JavaWrapper):
    """What :meth:`SpindleEstimator.fit` saw (Scala's ``io.spindle.TrainingSummary``): every step, the rows each worker
    fed, and the trained variables when the model has a ``variables`` signature. Read from the JVM once, when first
    asked for."""

    def __init__(self, java_summary: Any):
        super().__init__(java_summary)
        self._steps: Optional[list[StepSummary]] = None
        self._epochs: Optional[list[EpochSummary]] = None

    @property
    def steps(self) -> list[StepSummary]:
        """Every step, in order."""
        if self._steps is None:
            fields = [f for f in StepSummary.__dataclass_fields__]
            self._steps = [StepSummary(*(getattr(s, f)() for f in fields)) for s in _seq(self._java_obj.steps())]
        return self._steps

    @property
    def lossHistory(self) -> list[float]:
        """Loss of every step, in order."""
        return _array(self._java_obj.lossHistory(), "d").tolist()

    @property
    def epochLosses(self) -> list[float]:
        """Mean loss of each epoch (over its rows: each step's loss weighted by its examples), in order. Python only:
        computed from :attr:`steps`."""
        totals: dict[int, list[float]] = {}
        for s in self.steps:
            total = totals.setdefault(s.epoch, [0.0, 0.0])
            total[0] += s.loss * s.examples
            total[1] += s.examples
        return [loss / max(n, 1.0) for _, (loss, n) in sorted(totals.items())]

    @property
    def epochs(self) -> list[EpochSummary]:
        """Every epoch run, in order, with its validation metrics."""
        if self._epochs is None:
            self._epochs = [
                EpochSummary(int(e.epoch()), float(e.loss()), {str(k): float(v) for k, v in e.validationJava().items()})
                for e in _seq(self._java_obj.epochs())
            ]
        return self._epochs

    def validationHistory(self, name: str) -> list[float]:
        """The validation metric ``name`` (``val_loss``, ``val_accuracy``, ...) after every epoch, in order."""
        return [e.validation[name] for e in self.epochs if name in e.validation]

    @property
    def bestEpoch(self) -> int:
        """With early stopping, the epoch whose weights were exported; 0 without."""
        return int(self._java_obj.bestEpoch())

    @property
    def stoppedEarly(self) -> bool:
        """Whether early stopping ended training before its last epoch."""
        return bool(self._java_obj.stoppedEarly())

    @property
    def numWorkers(self) -> int:
        return self._java_obj.numWorkers()

    @property
    def rowsPerWorker(self) -> list[int]:
        """Rows each worker fed, by rank."""
        return [int(r) for r in _seq(self._java_obj.rowsPerWorker())]

    @property
    def feedSecondsPerWorker(self) -> list[float]:
        """Time each worker's task spent reading its rows from Spark and writing them into batches (first epoch)."""
        return [float(s) for s in _seq(self._java_obj.feedSecondsPerWorker())]

    @property
    def feedWaitSecondsPerWorker(self) -> list[float]:
        """Time each worker's task waited for a free batch window, held back by training."""
        return [float(s) for s in _seq(self._java_obj.feedWaitSecondsPerWorker())]

    @property
    def variables(self) -> dict[str, np.ndarray]:
        """The trained variables (``var_000``, ...) as float32 arrays, flat; empty without a ``variables`` signature."""
        java_map = self._java_obj.variablesJava()
        return {str(name): _array(java_map[name], "f") for name in sorted(java_map.keySet())}

    @property
    def exportPath(self) -> str:
        return self._java_obj.exportPath()

    @property
    def firstStepDoneMillis(self) -> int:
        """Unix time in milliseconds when the first step was done (on the chief; 0 when none ran)."""
        return int(self._java_obj.firstStepDoneMillis())

    @property
    def examplesPerSecond(self) -> float:
        """Examples per second over the whole run (sum of examples over sum of step times)."""
        return self._java_obj.examplesPerSecond()

    @property
    def rowsFedPerSecond(self) -> float:
        """Rows per second the workers together could feed when not held back by training (sum over workers)."""
        return self._java_obj.rowsFedPerSecond()


class SpindleModel(_SpindleJavaParams, JavaModel, _SpindleParams, JavaMLReadable["SpindleModel"], JavaMLWritable):
    """Batch inference with any TensorFlow SavedModel, as a PySpark ML ``Model`` (Scala's ``io.spindle.SpindleModel``).

    ``SpindleModel.load(path)`` reads a saved stage or a bare SavedModel; ``SpindleModel(modelPath=...)`` makes one
    from params. An unmapped signature input reads the column of the same name; an empty ``outputCols`` adds every
    output as a column named after it.

    Parameters
    ----------
    java_model : py4j JavaObject, optional
        The JVM ``SpindleModel`` to wrap; a new one when omitted.
    **params
        Params to set, by name.
    """

    _java_class_name = _MODEL_CLASS

    def __init__(self, java_model: Optional[Any] = None, **params: Any):
        super().__init__(java_model if java_model is not None else JavaWrapper._new_java_obj(_MODEL_CLASS))
        self._transfer_params_from_java()
        self.setParams(**params)

    @classmethod
    def load(cls, path: str) -> "SpindleModel":
        """A model for the SavedModel at ``path`` (any Hadoop FileSystem), or a stage saved with ``write().save``.

        Fails at once (``SpindleModelException`` naming the path) when ``path`` is neither.
        """
        return cls(_java_class(_MODEL_CLASS).load(path))

    @classmethod
    def fromSavedModel(cls, path: str) -> "SpindleModel":
        """A model for the SavedModel at ``path``, with default params; fails at once when it is not one."""
        return cls(_java_class(_MODEL_CLASS).fromSavedModel(path))

    @staticmethod
    def releaseSessions() -> None:
        """Releases the TensorFlow sessions the driver JVM holds (they are otherwise kept until it exits)."""
        _java_class(_MODEL_CLASS).releaseSessions()

    @classmethod
    def _from_java(cls, java_stage: Any) -> "SpindleModel":
        return cls(java_stage)

    def setModelPath(self, value: str) -> "SpindleModel":
        return self._set(modelPath=value)

    def setSignature(self, value: str) -> "SpindleModel":
        return self._set(signature=value)

    def setInputCols(self, value: Mapping[str, str]) -> "SpindleModel":
        """Signature input -> DataFrame column."""
        return self._set(inputCols=value)

    def setOutputCols(self, value: Mapping[str, str]) -> "SpindleModel":
        """Signature output -> new column."""
        return self._set(outputCols=value)

    def setBatchSize(self, value: int) -> "SpindleModel":
        return self._set(batchSize=value)

    def setNumSlots(self, value: int) -> "SpindleModel":
        return self._set(numSlots=value)

    def setIntraOpThreads(self, value: int) -> "SpindleModel":
        return self._set(intraOpThreads=value)

    def setInterOpThreads(self, value: int) -> "SpindleModel":
        return self._set(interOpThreads=value)

    def setTags(self, value: list[str]) -> "SpindleModel":
        return self._set(tags=value)

    def setNestedOutputs(self, value: bool) -> "SpindleModel":
        return self._set(nestedOutputs=value)

    def setImageChannelOrder(self, value: str) -> "SpindleModel":
        return self._set(imageChannelOrder=value)

    def setBinaryOutputs(self, value: list[str]) -> "SpindleModel":
        return self._set(binaryOutputs=value)

    def setExampleFeatures(self, value: Mapping[str, str]) -> "SpindleModel":
        return self._set(exampleFeatures=value)

    def setVariableLengthBytes(self, value: int) -> "SpindleModel":
        return self._set(variableLengthBytes=value)

    def setPadValue(self, value: float) -> "SpindleModel":
        return self._set(padValue=value)

    def describeSignature(self) -> str:
        """The signature's inputs and outputs, as ``name: dtype shape`` lines."""
        self._transfer_params_to_java()
        return self._java_obj.describeSignature()

    @property
    def hasSummary(self) -> bool:
        """Whether this model came from :meth:`SpindleEstimator.fit` in this session, which leaves a :attr:`summary`."""
        return bool(self._java_obj.hasSummary())

    @property
    def summary(self) -> TrainingSummary:
        """How training went: per-step loss and timings, rows per worker.

        Raises
        ------
        py4j.protocol.Py4JJavaError
            ``SpindleModelException`` when the model was not fitted in this session.
        """
        return TrainingSummary(self._java_obj.summary())


class SpindleEstimator(
    _SpindleJavaParams,
    JavaEstimator[SpindleModel],
    _SpindleTrainingParams,
    JavaMLReadable["SpindleEstimator"],
    JavaMLWritable,
):
    """Synchronous data-parallel training of a trainable SavedModel, as a PySpark ML ``Estimator`` (Scala's
    ``io.spindle.SpindleEstimator``): signatures ``train``, ``gradients``, ``apply_gradients`` and a serving one, as
    :func:`spindle.keras.export_trainable` writes them.

    ``fit`` runs one barrier stage of ``numWorkers`` tasks; ``batchSize`` is per worker. It returns a
    :class:`SpindleModel` for the exported SavedModel, fed by the ``inputCols`` its serving signature has, with a
    :attr:`SpindleModel.summary`.

    Parameters
    ----------
    **params
        Params to set, by name: ``SpindleEstimator(modelPath="/models/mlp-init", numWorkers=2)``.
    """

    _java_class_name = _ESTIMATOR_CLASS

    def __init__(self, **params: Any):
        super().__init__()
        self._java_obj = self._new_java_obj(_ESTIMATOR_CLASS, self.uid)
        self._transfer_params_from_java()
        self.setParams(**params)

    @classmethod
    def _from_java(cls, java_stage: Any) -> "SpindleEstimator":
        estimator = cls()
        estimator._java_obj = java_stage
        estimator._resetUid(java_stage.uid())
        estimator._transfer_params_from_java()
        return estimator

    def _create_model(self, java_model: Any) -> SpindleModel:
        return SpindleModel(java_model)

    def _fit(self, dataset: DataFrame) -> SpindleModel:
        # The model's params come from the JVM's fitted model alone: PySpark's usual copy of the estimator's params
        # onto it would put back the untrained modelPath (not the export) and the labels input, which the serving
        # signature does not have.
        return self._create_model(self._fit_java(dataset))

    def setModelPath(self, value: str) -> "SpindleEstimator":
        return self._set(modelPath=value)

    def setSignature(self, value: str) -> "SpindleEstimator":
        return self._set(signature=value)

    def setInputCols(self, value: Mapping[str, str]) -> "SpindleEstimator":
        """Training (and serving) signature input -> DataFrame column, labels included."""
        return self._set(inputCols=value)

    def setOutputCols(self, value: Mapping[str, str]) -> "SpindleEstimator":
        return self._set(outputCols=value)

    def setBatchSize(self, value: int) -> "SpindleEstimator":
        """Rows per step of each worker."""
        return self._set(batchSize=value)

    def setNumSlots(self, value: int) -> "SpindleEstimator":
        return self._set(numSlots=value)

    def setIntraOpThreads(self, value: int) -> "SpindleEstimator":
        return self._set(intraOpThreads=value)

    def setInterOpThreads(self, value: int) -> "SpindleEstimator":
        return self._set(interOpThreads=value)

    def setTags(self, value: list[str]) -> "SpindleEstimator":
        return self._set(tags=value)

    def setImageChannelOrder(self, value: str) -> "SpindleEstimator":
        return self._set(imageChannelOrder=value)

    def setExampleFeatures(self, value: Mapping[str, str]) -> "SpindleEstimator":
        return self._set(exampleFeatures=value)

    def setVariableLengthBytes(self, value: int) -> "SpindleEstimator":
        return self._set(variableLengthBytes=value)

    def setPadValue(self, value: float) -> "SpindleEstimator":
        return self._set(padValue=value)

    def setNumWorkers(self, value: int) -> "SpindleEstimator":
        return self._set(numWorkers=value)

    def setEpochs(self, value: int) -> "SpindleEstimator":
        return self._set(epochs=value)

    def setShuffle(self, value: bool) -> "SpindleEstimator":
        return self._set(shuffle=value)

    def setSeed(self, value: int) -> "SpindleEstimator":
        return self._set(seed=value)

    def setExportPath(self, value: str) -> "SpindleEstimator":
        return self._set(exportPath=value)

    def setOverwriteExport(self, value: bool) -> "SpindleEstimator":
        return self._set(overwriteExport=value)

    def setTerminateOnNaN(self, value: bool) -> "SpindleEstimator":
        return self._set(terminateOnNaN=value)

    def setRendezvousTimeout(self, seconds: int) -> "SpindleEstimator":
        return self._set(rendezvousTimeout=seconds)

    def setPeerTimeout(self, seconds: int) -> "SpindleEstimator":
        return self._set(peerTimeout=seconds)

    def setHeartbeatTimeout(self, seconds: int) -> "SpindleEstimator":
        return self._set(heartbeatTimeout=seconds)

    def setGpusPerWorker(self, value: int) -> "SpindleEstimator":
        return self._set(gpusPerWorker=value)

    def setCheckpointDir(self, value: str) -> "SpindleEstimator":
        return self._set(checkpointDir=value)

    def setCheckpointEverySteps(self, value: int) -> "SpindleEstimator":
        return self._set(checkpointEverySteps=value)

    def setCheckpointEverySeconds(self, value: int) -> "SpindleEstimator":
        return self._set(checkpointEverySeconds=value)

    def setKeepCheckpoints(self, value: int) -> "SpindleEstimator":
        return self._set(keepCheckpoints=value)

    def setTensorboardDir(self, value: str) -> "SpindleEstimator":
        return self._set(tensorboardDir=value)

    def setValidationFraction(self, value: float) -> "SpindleEstimator":
        return self._set(validationFraction=value)

    def setEarlyStoppingMetric(self, value: str) -> "SpindleEstimator":
        return self._set(earlyStoppingMetric=value)

    def setEarlyStoppingPatience(self, value: int) -> "SpindleEstimator":
        return self._set(earlyStoppingPatience=value)

    def setEarlyStoppingMinDelta(self, value: float) -> "SpindleEstimator":
        return self._set(earlyStoppingMinDelta=value)

    def setEarlyStoppingMode(self, value: str) -> "SpindleEstimator":
        return self._set(earlyStoppingMode=value)

    def setEarlyStopping(self, metric: str, patience: int, minDelta: float) -> "SpindleEstimator":
        """Early stopping (Keras's ``EarlyStopping`` with ``restore_best_weights``): after every epoch ``metric`` is
        compared with the best epoch's; after ``patience`` epochs without an improvement of more than ``minDelta``,
        every worker stops and the best epoch's weights are exported."""
        return self.setEarlyStoppingMetric(metric).setEarlyStoppingPatience(patience).setEarlyStoppingMinDelta(minDelta)

    def setValidationData(self, df: Optional[DataFrame]) -> "SpindleEstimator":
        """Rows evaluated after every epoch by all workers together: their loss and the export's metrics, as
        ``val_loss``, ``val_<metric>`` in the summary, the driver log and TensorBoard. Takes the place of
        ``validationFraction``; ``None`` clears it. A DataFrame is no Param: it is not saved with the stage."""
        self._validation_data = df
        self._java_obj.setValidationData(None if df is None else df._jdf)
        return self

    def getValidationData(self) -> Optional[DataFrame]:
        return getattr(self, "_validation_data", None)


# PySpark loads a saved stage's Python class by its JVM class name (see the module doc): io.spindle.* -> this module.
sys.modules.setdefault("io.spindle", sys.modules[__name__])
