"""Shared by the PySpark suites, which test the *installed* spindle package (`.venv/bin/pip install ./python`):
loopback only, the repository's fixtures, and one SparkSession per test module.

A Python process has one SparkContext at a time: each module's session stops when the module ends, before the next
module starts its own (on its own master). The JVM PySpark starts stays for the whole run, with Spindle's jars on its
class path from the first session.
"""

import os
import sys
import time

import pyspark
import pytest

# Loopback only (as every suite of the project): Spark would otherwise bind and advertise the host's first
# non-loopback address. Set before the first session starts the JVM, which inherits them.
os.environ.update(
    SPARK_LOCAL_IP="127.0.0.1",
    SPARK_LOCAL_HOSTNAME="127.0.0.1",
    TF_CPP_MIN_LOG_LEVEL="2",
)
# The Spark distribution of local-cluster's executor JVMs: the installed pyspark package has bin/ and jars/.
os.environ["SPARK_HOME"] = os.path.dirname(os.path.abspath(pyspark.__file__))

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
TRAINED = os.path.join(FIXTURES, "digits_mlp_trained")
INIT = os.path.join(FIXTURES, "digits_mlp_init")
# The main example's digits helpers (load, held_out, training, with_prediction, accuracy), as the JVM suites share
# Digits.scala with the examples.
sys.path.insert(0, os.path.join(ROOT, "examples", "python"))

import spindle  # noqa: E402

if os.path.dirname(os.path.abspath(spindle.__file__)) == os.path.join(
    ROOT, "python", "spindle"
):
    pytest.exit(
        "tests/pyspark imported spindle from the checkout's python/, not the installed package: run them with "
        "`.venv/bin/pip install ./python && .venv/bin/python -m pytest tests/pyspark` (and apart from tests/python, "
        "whose conftest puts python/ on sys.path)",
        returncode=4,
    )

SESSION_CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.sql.shuffle.partitions": "4",
    "spark.executorEnv.TF_CPP_MIN_LOG_LEVEL": "2",
}


@pytest.fixture(scope="module")
def spark(request):
    """The module's session, on the module's ``MASTER`` (``local[2]`` by default), with ``SPARK_CONF`` added."""
    master = getattr(request.module, "MASTER", "local[2]")
    conf = {**SESSION_CONF, **getattr(request.module, "SPARK_CONF", {})}
    session = spindle.session(master, request.module.__name__, **conf)
    session.sparkContext.setLogLevel("WARN")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def executors(spark):
    """Waits (at most 120 s) for a local-cluster's two executor JVMs: on a loaded machine they start after a job would
    be submitted. Modules on ``local-cluster[2,...]`` use it with ``pytestmark = pytest.mark.usefixtures("executors")``.
    """
    status = spark.sparkContext._jsc.sc().getExecutorMemoryStatus
    deadline = time.monotonic() + 120
    # The driver's block manager is listed too.
    while status().size() - 1 < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert status().size() - 1 == 2, "the local cluster started both executors within 120 s"


def counting_rows():
    """A function for ``spindle.run`` (nested, so that cloudpickle ships it by value: the executors cannot import
    this module) returning the task's TF_CONFIG entry and how many rows its feed gave it."""

    def count_rows():
        import json
        import os

        import spindle.data

        rows = sum(len(b["label"]) for b in spindle.data.batches())
        return json.loads(os.environ["TF_CONFIG"])["task"], rows

    return count_rows


@pytest.fixture(scope="module")
def digits(spark):
    """scikit-learn's digits as (index, features, label), cached: two partitions in file order."""
    import digits as helpers

    frame = helpers.load(spark, helpers.digits_csv()).cache()
    yield frame
    frame.unpersist()
