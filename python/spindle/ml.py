"""PySpark ML stages over Spindle's JVM classes: :class:`SpindleModel` and :class:`SpindleEstimator`.

Both wrap the Scala stages of the same names (``io.spindle.SpindleModel``, ``io.spindle.SpindleEstimator``). Their
Params, getters and setters are generated from the Scala param traits (``spindle._params``; ``docs/params.md`` lists
them), and their defaults are read from the JVM stage: one source of each. They need a session with Spindle's jars
(:func:`spindle.session`).

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

Map params (``inputCols``, ``outputCols``, ``exampleFeatures``) take a ``dict`` of ``str`` to ``str``, and
``packedInputCols`` a ``dict`` of ``str`` to ``list[str]``; they cross to the JVM as the JSON their Scala param reads
and writes (``StringMapParam.jsonDecode``, ``StringSeqMapParam.jsonDecode``), so they reach it as Scala maps.

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
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
from pyspark import SparkContext
from pyspark.ml.common import _java2py
from pyspark.ml.param import Param, TypeConverters
from pyspark.ml.util import JavaMLReadable, JavaMLReader, JavaMLWritable
from pyspark.ml.wrapper import JavaEstimator, JavaModel, JavaParams, JavaWrapper
from pyspark.sql import DataFrame

from ._params import _SpindleParams, _SpindleTrainingParams, to_string_list_map, to_string_map

__all__ = [
    "SpindleModel",
    "SpindleEstimator",
    "TrainingSummary",
    "StepSummary",
    "EpochSummary",
    "WorkerChange",
    "TrainingAttempt",
]

# Params that cross py4j as the JSON of their Scala param (a py4j dict would reach the JVM as a java.util.HashMap).
_JSON_CONVERTERS = (to_string_map, to_string_list_map)

_MODEL_CLASS = "io.spindle.SpindleModel"
_ESTIMATOR_CLASS = "io.spindle.SpindleEstimator"


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


class _SpindleJavaParams(JavaParams):
    """How Spindle's params cross py4j: map params as the JSON their Scala param decodes; everything else as PySpark
    sends it. Also: ``setParams`` by keyword, and the reader that names the JVM class."""

    _java_class_name: str = ""

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
        if param.typeConverter in _JSON_CONVERTERS:
            assert self._java_obj is not None
            java_param = self._java_obj.getParam(param.name)
            return java_param.w(java_param.jsonDecode(json.dumps(value)))
        return super()._make_java_param_pair(param, value)

    def _value_from_java(self, param: Param, java_param: Any, java_value: Any) -> Any:
        if param.typeConverter in _JSON_CONVERTERS:
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


@dataclass(frozen=True)
class WorkerChange:
    """A change of the number of workers during ``fit`` (elastic training, ``minWorkers``; Scala's
    ``io.spindle.WorkerChange``): from how many to how many, the checkpoint resumed from (empty: none yet), why, and
    when (Unix milliseconds)."""

    from_: int
    to: int
    resumedFrom: str
    cause: str
    atMillis: int


@dataclass(frozen=True)
class TrainingAttempt:
    """One attempt of the training stage (Scala's ``io.spindle.TrainingAttempt``): Spark runs a failed barrier stage
    again whole, and elastic training starts one with fewer workers. Its number (from 1), workers, start and end (Unix
    milliseconds), the checkpoint it resumed from (empty: none), the steps it ran past it (for a failed attempt, as of
    the chief's last heartbeat), and ``completed`` or why it failed."""

    number: int
    workers: int
    startMillis: int
    endMillis: int
    resumedFrom: str
    stepsDone: int
    ended: str


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
    def workerChanges(self) -> list[WorkerChange]:
        """Each change of the number of workers, in order (elastic training)."""
        return [
            WorkerChange(
                int(getattr(c, "from")()), int(c.to()), str(c.resumedFrom()), str(c.cause()), int(c.atMillis())
            )
            for c in _seq(self._java_obj.workerChanges())
        ]

    @property
    def attempts(self) -> list[TrainingAttempt]:
        """Every attempt of the training stage, in order; the steps and epochs cover the whole training across them."""
        fields = list(TrainingAttempt.__dataclass_fields__)
        return [TrainingAttempt(*(getattr(a, f)() for f in fields)) for a in _seq(self._java_obj.attempts())]

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
