"""Exports Keras models as SavedModels that Spindle (TensorFlow's C API) can run and train.

Needs TensorFlow and Keras 3 (``pip install "spindle-spark[tensorflow]"``); importing :mod:`spindle` alone does not.
"""

from .export import export_inference, export_trainable

__all__ = ["export_inference", "export_trainable"]
