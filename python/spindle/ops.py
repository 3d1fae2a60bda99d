"""Custom op libraries of installed wheels, for the stages' ``opLibraries`` Param.

.. code-block:: python

    import spindle.ops
    from spindle.ml import SpindleModel

    model = SpindleModel.load("/models/tokenizer").setOpLibraries(spindle.ops.tensorflow_text())

The paths are those of the installed wheel, so that Spindle's driver finds the wheel's ``*.dist-info`` beside them and
checks the TensorFlow release it was built for before loading (see ``docs/custom-ops.md``). Finding them imports
neither TensorFlow nor tensorflow-text.
"""

import importlib.metadata
import os

__all__ = ["tensorflow_text", "wheel_op_libraries"]


def wheel_op_libraries(distribution: str, folder: str) -> list[str]:
    """The op libraries (``*.so``) an installed wheel holds under ``folder``.

    Parameters
    ----------
    distribution : str
        The wheel's distribution name, as pip knows it (``tensorflow-text``).
    folder : str
        The package folder holding its op libraries, ``/``-separated (``tensorflow_text/python/ops``).

    Returns
    -------
    list of str
        Absolute paths, sorted.

    Raises
    ------
    LookupError
        When the distribution is not installed, or holds no op library there.
    """
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise LookupError(f"{distribution} is not installed: pip install --no-deps {distribution}") from None
    prefix = folder.rstrip("/") + "/"
    paths = sorted(
        os.path.abspath(str(dist.locate_file(f)))
        for f in dist.files or []
        if str(f).startswith(prefix) and str(f).endswith(".so")
    )
    if not paths:
        raise LookupError(f"{distribution} {dist.version} holds no op library under {folder}")
    return paths


def tensorflow_text() -> list[str]:
    """The op libraries of the installed tensorflow-text wheel (``tensorflow_text/python/ops/*.so``).

    Pass the list to ``setOpLibraries``; every tokenizer's library is in it, and each is loaded once per JVM.

    Returns
    -------
    list of str
        Absolute paths of the ``.so`` files, sorted.
    """
    return wheel_op_libraries("tensorflow-text", "tensorflow_text/python/ops")
