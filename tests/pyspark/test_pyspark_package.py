"""The installed package: where its jars are, and what spindle.session() refuses."""

import os

import pytest
from conftest import ROOT, SESSION_CONF
from pyspark.sql import SparkSession

import spindle


def test_the_installed_package_carries_both_jars():
    found = spindle.jars()
    assert all(os.path.isabs(j) and os.path.isfile(j) for j in found)
    assert all(os.path.dirname(j) == spindle.PACKAGE_JARS for j in found)
    assert not spindle.PACKAGE_JARS.startswith(os.path.join(ROOT, "python"))
    names = [os.path.basename(j) for j in found]
    assert any(n.startswith("spindle-libtensorflow-") for n in names), names
    assert any(n.startswith("spindle-spark") for n in names), names


def test_spindle_jars_wins(monkeypatch, tmp_path):
    a, b = tmp_path / "a.jar", tmp_path / "b.jar"
    a.write_bytes(b"")
    b.write_bytes(b"")
    monkeypatch.setenv("SPINDLE_JARS", f"{a}{os.pathsep}{b}")
    assert spindle.jars() == [str(a), str(b)]
    monkeypatch.setenv("SPINDLE_JARS", str(tmp_path / "missing.jar"))
    with pytest.raises(FileNotFoundError, match="missing.jar"):
        spindle.jars()


def test_no_jars_anywhere_names_both_places(monkeypatch, tmp_path):
    monkeypatch.delenv("SPINDLE_JARS", raising=False)
    monkeypatch.setattr(spindle, "PACKAGE_JARS", str(tmp_path))
    with pytest.raises(FileNotFoundError) as failure:
        spindle.jars()
    assert "SPINDLE_JARS" in str(failure.value) and str(tmp_path) in str(failure.value)


def test_session_refuses_a_running_context_without_the_jars():
    # spark.jars set empty: a JVM that an earlier session started holds the jars as a system property, which every
    # new SparkConf would read.
    plain = (
        SparkSession.builder.master("local[1]")
        .appName("plain")
        .config("spark.jars", "")
    )
    for key, value in SESSION_CONF.items():
        plain = plain.config(key, value)
    running = plain.getOrCreate()
    try:
        with pytest.raises(
            RuntimeError, match="already running without Spindle's jars"
        ):
            spindle.session()
    finally:
        running.stop()


def test_stages_import_lazily_from_the_package():
    from spindle.ml import SpindleEstimator, SpindleModel

    assert (
        spindle.SpindleModel is SpindleModel
        and spindle.SpindleEstimator is SpindleEstimator
    )
    assert spindle.__version__ == "0.1.0"
