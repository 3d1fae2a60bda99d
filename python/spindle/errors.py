"""Errors of Spindle's Python side."""


class RunError(RuntimeError):
    """A process of :func:`spindle.run` failed (its traceback is in the message), or the run could not start."""
