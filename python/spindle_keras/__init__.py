"""Exports Keras models as SavedModels that Spindle (TensorFlow's C API) can run and train."""

from .export import export_inference, export_trainable

__all__ = ["export_inference", "export_trainable"]
