"""Spindle for PySpark: TensorFlow inference and training on Spark DataFrames, run by Spindle's JVM library.

.. code-block:: python

    import spindle
    from spindle.ml import SpindleModel

    spark = spindle.session()  # local[2], with Spindle's jars on the driver and executors
    model = SpindleModel.load("/models/digits").setInputCols({"features": "pixels"})
    model.transform(df)

* :func:`jars` and :func:`session`: the jars a PySpark session needs, and a session that has them.
* :mod:`spindle.ml`: ``SpindleModel`` and ``SpindleEstimator``, PySpark ML stages over the JVM's own (also reachable as
  ``spindle.SpindleModel``, ``spindle.SpindleEstimator``).
* :mod:`spindle.ops`: the op libraries of installed wheels (tensorflow-text) for the stages' ``opLibraries``.
* :mod:`spindle.keras`: exports Keras models as SavedModels Spindle can run and train (needs TensorFlow).

Importing this package needs neither PySpark nor TensorFlow; :mod:`spindle.ml` needs PySpark.
"""

import glob
import os
from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "jars", "session"]

#: Where ``pip install`` puts the jars packed into the wheel (``./sbt core/pythonJars`` fills it in a checkout).
PACKAGE_JARS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "jars")


def jars() -> list[str]:
    """The jars a Spark session needs for Spindle: its assembly and libtensorflow, as absolute paths.

    ``SPINDLE_JARS`` (paths separated by ``os.pathsep``) wins when set; otherwise the jars packed into this package.

    Returns
    -------
    list of str
        Absolute paths of the jars, in a stable order.

    Raises
    ------
    FileNotFoundError
        When ``SPINDLE_JARS`` names a file that does not exist, or neither place holds a jar.
    """
    listed = os.environ.get("SPINDLE_JARS", "")
    if listed.strip():
        paths = [os.path.abspath(p) for p in listed.split(os.pathsep) if p.strip()]
        missing = [p for p in paths if not os.path.isfile(p)]
        if missing:
            raise FileNotFoundError(f"SPINDLE_JARS names jars that do not exist: {', '.join(missing)}")
        return paths
    found = sorted(glob.glob(os.path.join(PACKAGE_JARS, "*.jar")))
    if not found:
        raise FileNotFoundError(
            f"no Spindle jars: SPINDLE_JARS is not set and {PACKAGE_JARS} holds no .jar. In a checkout, run "
            "`./sbt core/pythonJars` and then `pip install ./python`; or set SPINDLE_JARS to the Spindle assembly and "
            f"libtensorflow jars, separated by {os.pathsep!r}"
        )
    return found


def session(master: str = "local[2]", app_name: str = "spindle", **conf: Any) -> "Any":
    """A SparkSession with Spindle's jars (``spark.jars``), on ``master``.

    Spark's own launcher (``spark-submit``, which PySpark starts) already opens the JDK modules Spindle needs on the
    driver and executors, so no JVM option is added here. Addresses are left to Spark: set ``SPARK_LOCAL_IP`` (and
    ``spark.driver.host``) to keep a session on loopback.

    Parameters
    ----------
    master : str
        The Spark master: ``local[2]``, ``local-cluster[2,1,1024]``, ``spark://host:port``, ...
    app_name : str
        The application's name.
    **conf
        Further Spark settings, by their full names: ``**{"spark.ui.enabled": "false"}``. A ``spark.jars`` given here
        keeps its jars, Spindle's added after them.

    Returns
    -------
    pyspark.sql.SparkSession

    Raises
    ------
    RuntimeError
        When a SparkContext without Spindle's jars is already running: jars join a context only when it starts.
    """
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    from . import ml  # noqa: F401  (lets PySpark's Pipeline readers find Spindle's stages: see spindle.ml)

    ours = jars()
    theirs = [j for j in str(conf.pop("spark.jars", "")).split(",") if j.strip()]
    running = SparkContext._active_spark_context
    if running is not None:
        loaded = running.getConf().get("spark.jars", "")
        absent = [j for j in ours if os.path.basename(j) not in loaded]
        if absent:
            raise RuntimeError(
                f"a SparkContext is already running without Spindle's jars ({', '.join(absent)}); stop it first "
                "(spark.stop()), or start it with spark.jars set to spindle.jars()"
            )
    builder = SparkSession.builder.master(master).appName(app_name).config("spark.jars", ",".join(theirs + ours))
    for key, value in conf.items():
        builder = builder.config(key, str(value) if not isinstance(value, bool) else str(value).lower())
    return builder.getOrCreate()


def __getattr__(name: str) -> Any:
    # The stages import PySpark: only when asked for, so that `import spindle` (and spindle.keras) does not need it.
    if name in ("SpindleModel", "SpindleEstimator", "TrainingSummary"):
        from . import ml

        return getattr(ml, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---- spindle.run and spindle.data: their imports go here (`from .run import run`, `from . import data`). ----------
from . import data  # noqa: E402
from .run import RunError, run  # noqa: E402

__all__ += ["data", "run", "RunError"]
