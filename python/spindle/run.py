"""``spindle.run``: an unmodified TensorFlow training function or script on Spark executors, one process per task of a
barrier stage, with ``TF_CONFIG`` from Spindle's rendezvous, fed a DataFrame through Spindle's memory-mapped batches
(:mod:`spindle.data`).
"""

import base64
import json
import os
import pickle
import sys
from collections.abc import Sequence
from typing import Any, Callable, Optional, Union

from . import _ship
from .errors import RunError

__all__ = ["RunError", "run"]

# Spark SQL types -> the dtype the script reads.
_DTYPES = {
    "FloatType": "float32",
    "DoubleType": "float64",
    "IntegerType": "int32",
    "LongType": "int64",
    "ShortType": "int16",
    "ByteType": "int8",
    "BooleanType": "bool",
}


def run(
    main: Union[Callable[..., Any], str],
    num_workers: int = 2,
    *,
    data: Any = None,
    args: Sequence[Any] = (),
    kwargs: Optional[dict] = None,
    num_ps: int = 0,
    chief: Optional[bool] = None,
    evaluator: bool = False,
    columns: Optional[Sequence[str]] = None,
    batch_size: int = 64,
    num_slots: int = 8,
    env: Optional[dict] = None,
    py_files: Union[str, Sequence[str]] = (),
    archives: Union[str, Sequence[str]] = (),
    ship_folder: bool = True,
    python: Optional[str] = None,
    startup_timeout: float = 120.0,
    spark: Any = None,
) -> Any:
    """Runs ``main`` on the executors: one process per TF_CONFIG task, all at once (a barrier stage).

    Parameters
    ----------
    main
        A function (pickled with cloudpickle, called with ``args`` and ``kwargs``) or the path of a script on the
        driver, which runs as ``__main__`` with ``sys.argv[1:] = args``. The script's folder ships with it (see
        ``ship_folder``), so the modules beside it import as they do on the driver.
    num_workers
        Tasks of type ``worker``. With ``MultiWorkerMirroredStrategy`` worker 0 is the chief.
    data
        A DataFrame whose rows the readers get through :func:`spindle.data.dataset`: every worker (MWMS) or, with
        parameter servers, the chief. Repartitioned to the readers unless it already has one partition per reader.
    num_ps, chief, evaluator
        Parameter servers, a ``chief`` task (default: when there are parameter servers) and an ``evaluator`` task.
        Parameter servers, and the workers of a parameter-server cluster, are TensorFlow servers: Spindle stops them
        once the other processes have ended.
    columns
        The columns fed (default: all of ``data``'s). Numbers, fixed-length arrays (nested too) and ML vectors; the
        row shape is read from the first row and checked on every row.
    batch_size, num_slots
        Rows per batch (TensorFlow's *global* batch under MWMS, which splits it across replicas) and batches the JVM
        may write ahead of the script.
    env
        Environment variables of the processes (``TF_USE_LEGACY_KERAS``, ``TF_CPP_MIN_LOG_LEVEL``, ...).
    py_files
        ``.py``, ``.zip``, ``.egg`` and ``.whl`` files on the driver (a list, or one string of paths separated by
        commas), put on the processes' ``sys.path`` (and ``PYTHONPATH``) as spark-submit's ``--py-files``: a ``.py``
        file's folder, or the archive itself, which Python imports from as it is (zipimport; pure-Python wheels
        only). They are in place before a function is unpickled, so a function of a module they hold ships by
        reference.
    archives
        ``.zip``, ``.tar.gz``, ``.tgz`` and ``.tar`` files on the driver (a list, or one string separated by commas),
        as spark-submit's ``--archives``: each is unpacked into a folder of the task's working directory named after
        the file, or ``alias`` when given as ``path#alias``.
    ship_folder
        For a script: ship the folder holding it (its files and subfolders but ``__pycache__`` and ``.git``) and run
        the script from the copy, whose folder is ``sys.path[0]`` as when Python runs a script. The copy lies in the
        task's working directory (the processes' ``SPINDLE_RUN_DIR``) under the folder's own name, beside the
        unpacked ``archives``. False ships the script alone. Everything shipped (folder, ``py_files`` and
        ``archives``) must come to 64 MiB at most (``spindle._ship.MAX_BYTES``).
    python
        The executors' interpreter: ``spark.pyspark.python``, ``PYSPARK_PYTHON``, or this one.
    startup_timeout
        Seconds for every process to start; a rank that does not fails the run, naming it and its host.

    Returns
    -------
    What ``main`` returned on rank 0 (None for a script).

    Raises
    ------
    RunError
        When a process raised (with its traceback) or exited non-zero, a rank never started, or the input is wrong;
        on the driver, before any Spark job, when a path of ``main``, ``py_files`` or ``archives`` is missing or of a
        kind they do not take, or what they ship is over 64 MiB.
    """
    from pyspark import cloudpickle
    from pyspark.sql import SparkSession

    spark = spark or SparkSession.getActiveSession()
    if spark is None:
        raise RunError("spindle.run needs an active SparkSession (spindle.session() makes one)")
    # Plain values, which the worker unpickles before anything is on its sys.path: a function travels as cloudpickle's
    # bytes inside, unpickled once py_files are importable.
    shipped = _ship.pack(None if callable(main) else main, ship_folder, py_files, archives)
    if callable(main):
        payload = ("function", shipped, cloudpickle.dumps((main, tuple(args), dict(kwargs or {}))))
    else:
        payload = ("script", shipped, os.path.basename(main), [str(a) for a in args])
    python = (
        python or spark.conf.get("spark.pyspark.python", None) or os.environ.get("PYSPARK_PYTHON") or sys.executable
    )
    spec = {
        "command": [python, "-u", "-m", "spindle._worker"],
        "payload": base64.b64encode(pickle.dumps(payload)).decode("ascii"),
        "workers": num_workers,
        "ps": num_ps,
        "chief": bool(num_ps > 0 if chief is None else chief),
        "evaluator": evaluator,
        "env": {k: str(v) for k, v in (env or {}).items()},
        "inputs": _inputs(data, columns) if data is not None else [],
        "batch_size": batch_size,
        "num_slots": num_slots,
        "startup_timeout": startup_timeout,
    }
    jvm = spark.sparkContext._jvm
    from py4j.protocol import Py4JJavaError

    try:
        result = jvm.io.spindle.run.SpindleRun.run(
            spark._jsparkSession, data._jdf if data is not None else None, json.dumps(spec)
        )
    except Py4JJavaError as e:
        raise RunError(_message(e.java_exception)) from None
    if not result:
        return None
    return pickle.loads(bytes(result))


def _message(java_exception: Any) -> str:
    """The Spindle exception in a JVM error's causes, else the error itself."""
    e = java_exception
    while e is not None:
        if e.getClass().getName().startswith("io.spindle."):
            return f"{e.getClass().getSimpleName()}: {e.getMessage()}"
        e = e.getCause()
    return str(java_exception.toString())


def _inputs(data: Any, columns: Optional[Sequence[str]]) -> list:
    """Each column's dtype and row shape: from the schema, and from the first row for arrays and vectors."""
    names = list(columns) if columns is not None else list(data.columns)
    missing = [c for c in names if c not in data.columns]
    if missing:
        raise RunError(f"spindle.run: no column {', '.join(map(repr, missing))} in the data; columns: {data.columns}")
    first = data.select(*names).first()
    if first is None:
        raise RunError("spindle.run: the data has no rows")
    inputs = []
    for name in names:
        field = data.schema[name].dataType
        value, shape = first[name], []
        while type(field).__name__ == "ArrayType":
            if value is None:
                raise RunError(f"column '{name}': the first row is null, so its shape is unknown")
            shape.append(len(value))
            field, value = field.elementType, (value[0] if len(value) else None)
        kind = type(field).__name__
        if kind == "VectorUDT":
            shape, dtype = [int(first[name].size)], "float64"
        elif kind in _DTYPES:
            dtype = _DTYPES[kind]
        else:
            raise RunError(
                f"column '{name}' is {data.schema[name].dataType.simpleString()}; spindle.data feeds numbers, "
                "fixed-length arrays of numbers and ML vectors"
            )
        inputs.append({"column": name, "dtype": dtype, "shape": shape})
    return inputs
