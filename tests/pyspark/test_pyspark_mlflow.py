"""MLflow from PySpark: a fit with ``mlflowTrackingUri`` logs to a real ``mlflow server`` (SQLite, local artifacts,
127.0.0.1, started here), checked through its REST API; ``mlflow.spark.load_model`` brings the fitted stage back as a
PipelineModel of the Python ``spindle.ml`` stage, which scores as the fitted model does."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest
from conftest import INIT
from digits import estimator, held_out, training
from spindle.ml import SpindleModel

MASTER = "local[2]"
EPOCHS = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(uri: str, endpoint: str, **query) -> dict:
    url = f"{uri}/api/2.0/mlflow/{endpoint}?{urllib.parse.urlencode(query)}"
    with urllib.request.urlopen(url, timeout=30) as reply:
        return json.load(reply)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The .venv's ``mlflow server`` on a free loopback port; stopped with the module."""
    root = tmp_path_factory.mktemp("mlflow")
    port = _free_port()
    mlflow = os.path.join(os.path.dirname(sys.executable), "mlflow")
    with open(root / "server.log", "wb") as log:
        process = subprocess.Popen(
            [mlflow, "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination",
             str(root / "artifacts"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2):
                break
        except OSError:
            assert process.poll() is None and time.monotonic() < deadline, (
                f"mlflow server did not start: see {root / 'server.log'}"
            )
            time.sleep(0.3)
    yield uri
    # The server's web workers are in its session: end them all.
    os.killpg(process.pid, 15)
    process.wait(timeout=60)


def test_fit_logs_to_mlflow_and_the_stage_loads_back(spark, digits, server, tmp_path):
    import mlflow.spark

    fitted = (
        estimator(INIT, str(tmp_path / "export"))
        .setNumWorkers(1)
        .setEpochs(EPOCHS)
        .setMlflowTrackingUri(server)
        .setMlflowExperiment("pyspark")
        .fit(training(digits))
    )
    experiment = _get(server, "experiments/get-by-name", experiment_name="pyspark")
    request = urllib.request.Request(
        f"{server}/api/2.0/mlflow/runs/search",
        data=json.dumps(
            {"experiment_ids": [experiment["experiment"]["experiment_id"]]}
        ).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as reply:
        (run,) = json.load(reply)["runs"]
    run_id = run["info"]["run_id"]
    assert run["info"]["status"] == "FINISHED"
    params = {p["key"]: p["value"] for p in run["data"]["params"]}
    assert params["epochs"] == str(EPOCHS) and params["numWorkers"] == "1"
    history = _get(server, "metrics/get-history", run_id=run_id, metric_key="loss")[
        "metrics"
    ]
    logged = sorted((m["step"], m["value"]) for m in history)
    assert logged == [
        (i + 1, loss) for i, loss in enumerate(fitted.summary.epochLosses)
    ]

    mlflow.set_tracking_uri(server)
    loaded = mlflow.spark.load_model(
        f"runs:/{run_id}/model", dfs_tmpdir=str(tmp_path / "dfs")
    )
    (stage,) = loaded.stages
    assert isinstance(stage, SpindleModel)
    rows = held_out(digits).limit(20)
    expected = {
        r["index"]: r["probabilities"] for r in fitted.transform(rows).collect()
    }
    got = {r["index"]: r["probabilities"] for r in loaded.transform(rows).collect()}
    assert len(got) == 20 and got == expected
