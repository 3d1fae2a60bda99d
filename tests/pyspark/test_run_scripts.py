"""spindle.run with scripts as they are written, on local-cluster[2,2,2048] (two executor JVMs): TensorFlow's two-file
multi-worker Keras tutorial (tests/pyspark/scripts/tutorial, only its dataset line and model path changed) trains
from a DataFrame; the script's folder ships with it; py_files and archives mean what they mean to spark-submit; a
Keras 3 model.fit under MultiWorkerMirroredStrategy fails at once, saying what to do.
"""

import importlib
import io
import os
import subprocess
import sys
import tarfile
import textwrap
import time
import zipfile

import numpy as np
import pytest
from conftest import counting_rows

import spindle

MASTER = "local-cluster[2,2,2048]"
SPARK_CONF = {"spark.executor.memory": "2048m"}
# Both executor JVMs up before the first test submits a job.
pytestmark = pytest.mark.usefixtures("executors")
TUTORIAL = os.path.join(os.path.dirname(__file__), "scripts", "tutorial", "main.py")
# tf.keras as Keras 2 (tf-keras), as the tutorial needs under MultiWorkerMirroredStrategy.
ENV = {"TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}

# Seven-segment digits: the segments each digit lights, of a (top), b (top right), c (bottom right), d (bottom),
# e (bottom left), f (top left) and g (middle).
SEGMENTS = ["abcdef", "bc", "abdeg", "abcdg", "bcfg", "acdfg", "acdefg", "abc", "abcdefg", "abcdfg"]


def synthetic_digits(n, seed):
    """``n`` 28x28 float32 images in [0, 1] of seven-segment digits (bold strokes, moved by up to a pixel, of random
    brightness, with noise) and their int64 labels.

    Easy enough for the tutorial's short schedule (SGD at 0.001, 3 x 70 steps): 0.79 to 0.95 held-out in six runs of
    its model on two MWMS workers (four outside Spark, two of this test), where fainter, noisier digits (noise 0.1)
    gave 0.57 to 0.86.
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    images = np.zeros((n, 28, 28), np.float32)
    stroke, half, width = 5, 10, 20
    for i, label in enumerate(labels):
        top, left = 1 + rng.integers(-1, 2), 4 + rng.integers(-1, 2)
        middle, bottom, right = top + half, top + 2 * half, left + width
        boxes = {
            "a": (top, top + stroke, left, right),
            "b": (top, middle + stroke, right - stroke, right),
            "c": (middle, bottom + stroke, right - stroke, right),
            "d": (bottom, bottom + stroke, left, right),
            "e": (middle, bottom + stroke, left, left + stroke),
            "f": (top, middle + stroke, left, left + stroke),
            "g": (middle, middle + stroke, left, right),
        }
        for segment in SEGMENTS[label]:
            r0, r1, c0, c1 = boxes[segment]
            images[i, r0:r1, c0:c1] = rng.uniform(0.9, 1.0)
    images = np.clip(images + rng.normal(0, 0.05, images.shape), 0, 1).astype(np.float32)
    return images, labels.astype(np.int64)


@pytest.fixture(scope="module")
def images(spark):
    """1024 training digits as a DataFrame (image: 28 x 28 floats, label: long), cached."""
    from pyspark.sql.types import ArrayType, FloatType, LongType, StructField, StructType

    x, y = synthetic_digits(1024, seed=0)
    schema = StructType(
        [StructField("image", ArrayType(ArrayType(FloatType(), False), False), False), StructField("label", LongType())]
    )
    frame = spark.createDataFrame([(image.tolist(), int(label)) for image, label in zip(x, y)], schema).cache()
    frame.count()
    yield frame
    frame.unpersist()


def job_ids(spark):
    return set(spark.sparkContext.statusTracker().getJobIdsForGroup())


def test_a_keras_3_fit_under_mwms_fails_at_once_saying_what_to_do_and_the_session_runs_on(spark, images, tmp_path):
    # The tutorial as it is, without TF_USE_LEGACY_KERAS: tf.keras is Keras 3, whose fit fails under MWMS.
    started = time.monotonic()
    with pytest.raises(spindle.RunError) as failure:
        spindle.run(
            TUTORIAL,
            num_workers=2,
            data=images,
            batch_size=128,
            args=[str(tmp_path / "keras-model")],
            env={"TF_CPP_MIN_LOG_LEVEL": "2"},
        )
    elapsed = time.monotonic() - started
    message = str(failure.value)
    assert "Keras 3" in message and "does not run model.fit under MultiWorkerMirroredStrategy" in message, message
    assert "TF_USE_LEGACY_KERAS=1" in message and "tf_keras" in message, message
    # And the way that trains Keras 3 itself across executors.
    assert "KERAS_BACKEND" in message and "keras.distribution.initialize()" in message, message
    # Raised by fit before its first step, from the script's own line.
    assert "multi_worker_model.fit(multi_worker_dataset, epochs=3, steps_per_epoch=70)" in message, message
    # A guard against a hang or a crash left to time out, not a speed target.
    assert elapsed < 120, f"the run failed after {elapsed:.1f} s"

    task, rows = spindle.run(counting_rows(), num_workers=2, data=images, batch_size=128)
    rank = task["index"]
    # 1024 rows over two readers, in equal numbers of batches.
    assert rank == 0 and 384 < rows <= 512, (rank, rows)


def test_the_two_file_tutorial_trains_for_its_own_epochs_and_steps(spark, images, tmp_path):
    model_path = str(tmp_path / "keras-model")
    started = time.monotonic()
    # batch_size: the tutorial's global batch (64 per worker x 2), which MWMS splits across the workers. Each worker's
    # 512 rows make 4 batches per pass; repeat=True replays them for its 3 x 70 steps.
    spindle.run(TUTORIAL, num_workers=2, data=images, batch_size=128, args=[model_path], env=ENV)
    print(f"tutorial run: {time.monotonic() - started:.1f} s")
    # Worker 1 saved into a temporary folder, which it removed, as the tutorial's snippet does.
    assert sorted(os.listdir(tmp_path)) == ["keras-model"]

    # The saved model's accuracy on held-out digits, in a process of its own: TensorFlow stays out of the driver.
    x, y = synthetic_digits(500, seed=1)
    np.savez(tmp_path / "held_out.npz", x=x, y=y)
    evaluate = textwrap.dedent(
        """
        import sys
        import numpy as np
        import tensorflow as tf
        model = tf.keras.models.load_model(sys.argv[1])
        held_out = np.load(sys.argv[2])
        predicted = np.argmax(model.predict(held_out["x"], verbose=0), axis=1)
        print(float(np.mean(predicted == held_out["y"])))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", evaluate, model_path, str(tmp_path / "held_out.npz")],
        env={**os.environ, **ENV},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    accuracy = float(done.stdout.strip().splitlines()[-1])
    print(f"tutorial held-out accuracy {accuracy:.3f}")
    # Chance is 0.1; the tutorial's schedule reaches 0.79 to 0.95 on these digits (TensorFlow's initial weights vary).
    assert accuracy >= 0.5


def write_zip(path, files):
    with zipfile.ZipFile(path, "w") as archive:
        for name, (text, mode) in files.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            archive.writestr(info, text)


def write_tar_gz(path, files):
    with tarfile.open(path, "w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


@pytest.fixture()
def shipped(tmp_path):
    """A script folder (a sibling module, a subpackage, a data file, a __pycache__), a .py and a .zip of modules, and
    two archives: a .tar.gz and a .zip holding an executable."""
    job = tmp_path / "job"
    (job / "pkg").mkdir(parents=True)
    (job / "__pycache__").mkdir()
    (job / "__pycache__" / "stale.cpython-311.pyc").write_bytes(b"not shipped")
    (job / "sibling.py").write_text("NAME = 'sibling'\n")
    (job / "pkg" / "__init__.py").write_text("")
    (job / "pkg" / "deep.py").write_text("from sibling import NAME\n\nDEEP = NAME + '/deep'\n")
    (job / "settings.txt").write_text("lr=0.01\n")
    (job / "main.py").write_text(
        textwrap.dedent(
            """
            import os
            import sys

            import helper
            import zipped
            from pkg.deep import DEEP

            here = os.path.dirname(os.path.abspath(__file__))
            assert sys.path[0] == here, sys.path[:3]
            assert os.path.basename(here) == "job" and os.path.dirname(here) == os.environ["SPINDLE_RUN_DIR"]
            assert os.getcwd() == os.environ["SPINDLE_RUN_DIR"]
            assert not os.path.exists(os.path.join(here, "__pycache__", "stale.cpython-311.pyc"))
            assert DEEP == "sibling/deep", DEEP
            with open(os.path.join(here, "settings.txt")) as f:
                assert f.read() == "lr=0.01\\n"
            assert helper.observed() == ("zipped", "hello", "tool"), helper.observed()
            assert zipped.VALUE == "zipped" and sys.argv[1:] == ["--epochs", "3"], sys.argv
            """
        )
    )
    driver = tmp_path / "driver"
    driver.mkdir()
    # A .py of py_files: its folder goes on sys.path.
    (driver / "helper.py").write_text(
        textwrap.dedent(
            """
            import os

            def observed():
                import zipped
                with open("assets/hello.txt") as f:
                    hello = f.read()
                tool = "tools.zip/bin/tool.sh"
                assert os.access(tool, os.X_OK), "the executable's mode came through"
                with open(tool) as f:
                    return zipped.VALUE, hello, f.read().split()[-1]
            """
        )
    )
    write_zip(driver / "modules.zip", {"zipped/__init__.py": ("VALUE = 'zipped'\n", 0o644)})
    write_tar_gz(driver / "assets.tar.gz", {"hello.txt": "hello"})
    write_zip(driver / "tools.zip", {"bin/tool.sh": ("#!/bin/sh\necho tool\n", 0o755)})
    return {
        "script": str(job / "main.py"),
        "driver": driver,
        "py_files": [str(driver / "helper.py"), str(driver / "modules.zip")],
        # With an alias, as spark-submit's path#alias, and without one: a folder named as the file.
        "archives": [str(driver / "assets.tar.gz") + "#assets", str(driver / "tools.zip")],
    }


def test_a_script_imports_its_folder_and_py_files_and_reads_archives(spark, shipped):
    # The script checks, on both ranks, what it sees; a failed check fails the run with its traceback.
    spindle.run(
        shipped["script"],
        num_workers=2,
        args=["--epochs", 3],
        py_files=shipped["py_files"],
        archives=shipped["archives"],
    )


def test_a_function_of_a_py_files_module_is_unpickled_once_py_files_are_importable(spark, shipped, monkeypatch):
    monkeypatch.syspath_prepend(str(shipped["driver"]))
    helper = importlib.import_module("helper")
    # cloudpickle ships helper.observed by reference (module helper), which only py_files make importable.
    result = spindle.run(helper.observed, num_workers=2, py_files=shipped["py_files"], archives=shipped["archives"])
    assert result == ("zipped", "hello", "tool")


def test_missing_or_wrong_paths_fail_on_the_driver_before_any_job(spark, images, shipped, tmp_path):
    before = job_ids(spark)
    missing = str(tmp_path / "no_such_module.zip")
    cases = [
        (dict(py_files=[missing]), f"py_files names {missing}, which is not a file on the driver"),
        (dict(archives=[missing + "#data"]), f"archives names {missing}, which is not a file on the driver"),
        (dict(py_files=[str(shipped["driver"] / "assets.tar.gz")]), "py_files takes .py, .zip, .egg, .whl files"),
        (dict(archives=[str(shipped["driver"] / "helper.py")]), "archives takes .zip, .tar.gz, .tgz, .tar files"),
        (dict(archives=[str(shipped["driver"] / "tools.zip") + "#payload.bin"]), "archive folder 'payload.bin'"),
    ]
    for options, expected in cases:
        with pytest.raises(spindle.RunError) as failure:
            spindle.run(shipped["script"], num_workers=2, data=images, **options)
        assert expected in str(failure.value)
    with pytest.raises(spindle.RunError) as failure:
        spindle.run(str(tmp_path / "no_such_script.py"), num_workers=2, data=images)
    assert f"the script names {tmp_path / 'no_such_script.py'}, which is not a file" in str(failure.value)
    assert job_ids(spark) == before


def test_a_script_folder_over_the_limit_is_refused_naming_it_and_its_size(spark, tmp_path):
    limit = importlib.import_module("spindle._ship").MAX_BYTES
    job = tmp_path / "big"
    job.mkdir()
    (job / "main.py").write_text("print('never runs')\n")
    # Sparse: sized over the limit without writing it.
    with open(job / "weights.bin", "wb") as f:
        f.truncate(limit + 1)
    with pytest.raises(spindle.RunError) as failure:
        spindle.run(str(job / "main.py"), num_workers=2)
    message = str(failure.value)
    assert f"{job} holds more than 64.0 MiB" in message and "ship_folder=False" in message, message
    # ship_folder=False ships the script alone.
    spindle.run(str(job / "main.py"), num_workers=1, ship_folder=False)
