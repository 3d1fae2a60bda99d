"""spindle.run on local-cluster[2,1,1024] (two executor JVMs): unmodified TensorFlow scripts with TF_CONFIG from
Spindle, fed a DataFrame through spindle.data, for MultiWorkerMirroredStrategy and ParameterServerStrategy; a worker
that raises, before or while it is fed, fails the run at once with its traceback, and the executors go on.

local[N] would run every process on one executor; a local-cluster has two, as a cluster's workers would.
"""

import os
import time

import numpy as np
import pytest
from conftest import counting_rows
from digits import held_out, training

import spindle

MASTER = "local-cluster[2,2,2048]"
SPARK_CONF = {"spark.executor.memory": "2048m"}
# Both executor JVMs up before the first test submits a job.
pytestmark = pytest.mark.usefixtures("executors")
SCRIPTS = os.path.join(os.path.dirname(__file__), "scripts")
# tf.keras as Keras 2 (tf-keras): Keras 3 does not train under MultiWorkerMirroredStrategy.
ENV = {"TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}


@pytest.fixture(scope="module")
def driver_log(spark, tmp_path_factory):
    """The driver's log of the processes' output (logger io.spindle.run.worker, at INFO), also written to a file."""
    jvm = spark.sparkContext._jvm
    log4j = jvm.org.apache.logging.log4j
    log4j.core.config.Configurator.setLevel("io.spindle", log4j.Level.INFO)
    path = str(tmp_path_factory.mktemp("log") / "driver.log")
    context = log4j.LogManager.getContext(False)
    appender = (
        log4j.core.appender.FileAppender.newBuilder()
        .withFileName(path)
        .setName("spindle-test")
        .setLayout(
            log4j.core.layout.PatternLayout.newBuilder().withPattern("%c %m%n").build()
        )
        .build()
    )
    appender.start()
    context.getConfiguration().addLoggerAppender(
        context.getLogger("io.spindle.run.worker"), appender
    )
    yield path
    appender.stop()


def held_out_accuracy(digits, weights_npz):
    """The accuracy of the saved MLP on the held-out digits, computed with NumPy (relu, then the largest logit)."""
    w = np.load(weights_npz)
    w1, b1, w2, b2 = (w[f"arr_{i}"] for i in range(4))
    rows = held_out(digits).select("features", "label").collect()
    x = np.array([r.features for r in rows], dtype=np.float32)
    y = np.array([r.label for r in rows])
    predicted = np.argmax(np.maximum(x @ w1 + b1, 0) @ w2 + b2, axis=1)
    return float(np.mean(predicted == y))


def test_an_mwms_keras_script_trains_on_two_executor_jvms_from_a_dataframe(
    spark, digits, tmp_path, driver_log
):
    weights = str(tmp_path / "mwms.npz")
    spindle.run(
        os.path.join(SCRIPTS, "mwms_digits.py"),
        num_workers=2,
        data=training(digits).select("features", "label"),
        args=[weights, 12],
        batch_size=32,
        env=ENV,
    )
    # Each process's output reached the driver's log, with its rank, role and host.
    with open(driver_log, encoding="utf-8") as f:
        log = f.read()
    for rank in (0, 1):
        assert f"[rank {rank} worker {rank} on 127.0.0.1] workers in sync: 2" in log
    accuracy = held_out_accuracy(digits, weights)
    print(f"MWMS held-out accuracy {accuracy:.4f}")
    assert accuracy >= 0.95


def test_a_parameter_server_run_with_one_ps_and_two_workers_learns(
    spark, digits, tmp_path
):
    weights = str(tmp_path / "ps.npz")
    # chief + 2 workers + 1 ps: four processes on the cluster's four cores.
    spindle.run(
        os.path.join(SCRIPTS, "ps_digits.py"),
        num_workers=2,
        num_ps=1,
        data=training(digits).select("features", "label"),
        args=[weights, 10],
        env=ENV,
    )
    accuracy = held_out_accuracy(digits, weights)
    print(f"parameter-server held-out accuracy {accuracy:.4f}")
    assert accuracy >= 0.9


def test_a_worker_that_raises_fails_the_run_within_30_s_with_its_traceback(spark):
    started = time.monotonic()
    with pytest.raises(spindle.RunError) as failure:
        spindle.run(os.path.join(SCRIPTS, "raises.py"), num_workers=2, env=ENV)
    elapsed = time.monotonic() - started
    message = str(failure.value)
    assert "rank 1 (worker 1" in message
    assert "ValueError: worker 1 cannot go on: bad hyperparameter 42" in message
    assert "Traceback (most recent call last)" in message
    assert elapsed < 30, f"the run failed after {elapsed:.1f} s"


@pytest.mark.parametrize(
    "script, error",
    [
        ("reads_one_then_raises.py", "RuntimeError: rank {rank} read 16 rows, then its training step broke"),
        ("raises_before_reading.py", "ImportError: rank {rank}: No module named 'a_module_with_a_typo'"),
    ],
)
def test_a_script_that_fails_while_it_is_fed_fails_the_run_and_the_executors_go_on(spark, digits, script, error):
    # About 670 rows per reader in batches of 16: some 42 batches against 4 slots, so the JVM task is blocked on a
    # full feed when the script exits (it crashed the executor JVMs, or waited for ever, before).
    data = training(digits).select("features", "label")
    started = time.monotonic()
    with pytest.raises(spindle.RunError) as failure:
        spindle.run(os.path.join(SCRIPTS, script), num_workers=2, data=data, batch_size=16, num_slots=4, env=ENV)
    elapsed = time.monotonic() - started
    message = str(failure.value)
    # Whichever rank failed first names itself, its host and its own traceback.
    rank = 0 if "rank 0 (worker 0 on 127.0.0.1) exited with code 1" in message else 1
    assert f"rank {rank} (worker {rank} on 127.0.0.1) exited with code 1" in message, message
    assert "Traceback (most recent call last)" in message, message
    assert error.format(rank=rank) in message, message
    # A guard against a hang, not a speed target.
    assert elapsed < 90, f"the run failed after {elapsed:.1f} s"
    # Both executor JVMs are alive and run the next job, fed as before.
    executors = spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size() - 1
    assert executors == 2
    task, rows = spindle.run(counting_rows(), num_workers=2, data=data, batch_size=50)
    assert task == {"type": "worker", "index": 0} and rows > 0


def test_a_function_runs_on_every_worker_and_returns_rank_0s_value(spark, digits):
    task, rows = spindle.run(
        counting_rows(),
        num_workers=2,
        data=training(digits).select("features", "label"),
        batch_size=50,
    )
    assert task == {"type": "worker", "index": 0}
    # 1347 training rows over two readers, in equal numbers of batches: rank 0 feeds its whole partition or its
    # agreed share.
    assert 500 <= rows <= 700
