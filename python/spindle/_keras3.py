"""Keras 3's ``fit`` refused, with what to do, under MultiWorkerMirroredStrategy with several workers: it fails there
converting ``PerReplica`` values (TensorFlow 2.21), and a clear error before the first step beats a crash inside it.
Keras 3 on the JAX backend, with Keras's distribution API, is what trains across executors instead (docs/keras3.md);
its trainer is another module, which this guard leaves alone.
"""

import functools
import importlib.abc
import importlib.util
import sys
from typing import Any, Optional

# The module of Keras 3 that defines fit for TensorFlow (keras.Model's base class with that backend).
_KERAS3_TRAINER = "keras.src.backend.tensorflow.trainer"


class Keras3Guard(importlib.abc.MetaPathFinder):
    """Wraps Keras 3's TensorFlow ``fit`` as soon as Keras loads it, so that under MultiWorkerMirroredStrategy with
    several workers it raises before the first step, saying what to do, instead of failing inside ``fit``.

    An import hook rather than an import: a payload that never imports Keras 3 never loads TensorFlow for it, and
    tf_keras (Keras 2, ``TF_USE_LEGACY_KERAS=1``) has its own trainer, which stays as it is.
    """

    def find_spec(self, name: str, path: Any, target: Any = None) -> Optional[Any]:
        if name != _KERAS3_TRAINER:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        load = spec.loader.exec_module

        def exec_module(module: Any) -> None:
            load(module)
            module.TensorFlowTrainer.fit = _refusing_multi_worker(module.TensorFlowTrainer.fit)

        spec.loader.exec_module = exec_module
        return spec


def _refusing_multi_worker(fit: Any) -> Any:
    @functools.wraps(fit)
    def guarded_fit(model: Any, *args: Any, **kwargs: Any) -> Any:
        import tensorflow as tf  # loaded already: Keras 3 imported it

        strategy = model.distribute_strategy
        # One worker's MWMS is a local strategy, which Keras 3 trains under.
        if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
            cluster = strategy.cluster_resolver.cluster_spec().as_dict()
            if len(cluster.get("worker", ())) + len(cluster.get("chief", ())) > 1:
                raise RuntimeError(_keras3_message())
        return fit(model, *args, **kwargs)

    return guarded_fit


def _keras3_message() -> str:
    import keras

    installed = importlib.util.find_spec("tf_keras") is not None
    return (
        f"Keras 3 (keras {keras.__version__}, what tf.keras is since TensorFlow 2.16) does not run model.fit under "
        "MultiWorkerMirroredStrategy with several workers: it fails converting PerReplica values. Train Keras 3 on "
        "the JAX backend instead: spindle.run(..., env={'KERAS_BACKEND': 'jax'}) with jax installed on the executors, "
        "and in the script keras.distribution.initialize() (Spindle sets its KERAS_DISTRIBUTION_* variables) then "
        "keras.distribution.set_distribution(keras.distribution.DataParallel(auto_shard_dataset=False)), without a "
        "tf.distribute strategy (docs/keras3.md). Or train with Keras 2: set TF_USE_LEGACY_KERAS=1 for the processes "
        "(spindle.run(..., env={'TF_USE_LEGACY_KERAS': '1'})) with "
        f"tf_keras installed on the executors ({'it is' if installed else 'it is not'} in this interpreter), and "
        "build the model with tf.keras (or import tf_keras); or train in a custom loop (strategy.run)."
    )
