"""The Keras export helper, against real TensorFlow: signatures, the split training step, learning."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.datasets import load_digits

from spindle.keras import export_inference, export_trainable

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures")


def mlp(seed=3, inputs=8):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [keras.Input((inputs,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3, activation="softmax")]
    )


def batch(n=32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype("float32")
    y = (x[:, 0] > 0).astype("int64") + (x[:, 1] > 0).astype("int64")  # learnable: 3 classes
    return x, y


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("export") / "mlp")
    model = mlp()
    export_trainable(model, keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(), path)
    return path, model


def test_signatures_names_dtypes_and_shapes(exported):
    path, _ = exported
    loaded = tf.saved_model.load(path)
    assert set(loaded.signatures) == {
        "train", "gradients", "apply_gradients", "predict", "serving_default", "variables", "evaluate", "metrics"
    }
    _, inputs = loaded.signatures["train"].structured_input_signature
    assert inputs["features"].dtype == tf.float32 and inputs["features"].shape.as_list() == [None, 8]
    assert inputs["labels"].dtype == tf.int64 and inputs["labels"].shape.as_list() == [None]
    grads = loaded.signatures["gradients"].structured_outputs
    assert sorted(grads) == ["grad_000", "grad_001", "grad_002", "grad_003", "loss"]
    assert loaded.signatures["apply_gradients"].structured_outputs["step"].dtype == tf.int64
    assert list(loaded.signatures["serving_default"].structured_outputs) == ["probabilities"]


def test_split_step_equals_train_bit_for_bit(exported):
    path, _ = exported
    a, b = tf.saved_model.load(path), tf.saved_model.load(path)
    for step in range(5):
        x, y = batch(seed=step)
        loss_a = a.signatures["train"](features=x, labels=y)["loss"].numpy()
        grads = b.signatures["gradients"](features=x, labels=y)
        loss_b = grads.pop("loss").numpy()
        assert loss_a.tobytes() == loss_b.tobytes()
        out = b.signatures["apply_gradients"](**grads)
        assert int(out["step"]) == step + 1
    x, _ = batch(seed=99)
    pa = a.signatures["predict"](features=x)["probabilities"].numpy()
    pb = b.signatures["predict"](features=x)["probabilities"].numpy()
    assert pa.tobytes() == pb.tobytes()


def test_variables_are_the_trainable_weights_and_follow_training(exported):
    path, model = exported
    loaded = tf.saved_model.load(path)
    before = loaded.signatures["variables"]()
    assert sorted(before) == ["var_000", "var_001", "var_002", "var_003"]
    for i, w in enumerate(model.trainable_weights):
        np.testing.assert_array_equal(before[f"var_{i:03d}"].numpy(), w.numpy())
    x, y = batch(seed=7)
    grads = loaded.signatures["gradients"](features=x, labels=y)
    grads.pop("loss")
    loaded.signatures["apply_gradients"](**grads)
    after = loaded.signatures["variables"]()
    assert all(after[k].shape == grads[f"grad_{k[4:]}"].shape for k in after)
    assert not np.array_equal(after["var_000"].numpy(), before["var_000"].numpy())


def test_train_learns(exported):
    path, _ = exported
    loaded = tf.saved_model.load(path)
    x, y = batch(n=256, seed=1)
    losses = [float(loaded.signatures["train"](features=x, labels=y)["loss"]) for _ in range(60)]
    assert losses[-1] < 0.5 * losses[0]


def test_predict_equals_the_keras_model(exported):
    path, model = exported
    x, _ = batch(seed=5)
    got = tf.saved_model.load(path).signatures["predict"](features=x)["probabilities"].numpy()
    np.testing.assert_allclose(got, model(x).numpy(), rtol=1e-6, atol=1e-7)


def test_multi_input_names_and_output_override(tmp_path):
    keras.utils.set_random_seed(0)
    a, b = keras.Input((2,), name="left"), keras.Input((3,), name="right")
    out = keras.layers.Dense(1)(keras.layers.Concatenate()([a, b]))
    model = keras.Model([a, b], out)
    export_trainable(model, keras.optimizers.SGD(0.1), keras.losses.MeanSquaredError(), str(tmp_path), output_name="score")
    loaded = tf.saved_model.load(str(tmp_path))
    _, inputs = loaded.signatures["train"].structured_input_signature
    assert set(inputs) == {"left", "right", "labels"}
    assert inputs["labels"].dtype == tf.float32 and inputs["labels"].shape.as_list() == [None, 1]
    res = loaded.signatures["serving_default"](left=np.ones((4, 2), "float32"), right=np.ones((4, 3), "float32"))
    assert res["score"].shape == (4, 1)


def test_export_inference(tmp_path):
    model = mlp()
    export_inference(model, str(tmp_path))
    loaded = tf.saved_model.load(str(tmp_path))
    assert set(loaded.signatures) == {"serving_default", "predict"}
    x, _ = batch(seed=2)
    got = loaded.signatures["serving_default"](features=x)["probabilities"].numpy()
    np.testing.assert_allclose(got, model(x).numpy(), rtol=1e-6, atol=1e-7)


def test_checked_in_digits_model_is_accurate_on_held_out_rows():
    d = load_digits()
    held = np.arange(len(d.target)) % 4 == 0
    loaded = tf.saved_model.load(os.path.join(FIXTURES, "digits_mlp_trained"))
    probs = loaded.signatures["serving_default"](features=(d.data[held] / 16.0).astype("float32"))["probabilities"]
    assert float((probs.numpy().argmax(axis=1) == d.target[held]).mean()) >= 0.95


def test_checked_in_dtypes_model():
    loaded = tf.saved_model.load(os.path.join(FIXTURES, "dtypes_model"))
    out = loaded.signatures["serving_default"](
        x_f32=tf.constant([[1, 2, 3, 4]], tf.float32),
        x_f64=tf.constant([[1, 2, 3]], tf.float64),
        x_i32=tf.constant([7], tf.int32),
        x_i64=tf.constant([[2, -2]], tf.int64),
    )
    assert out["y_f32"].numpy().tolist() == [[2, 4, 6, 8]]
    assert out["y_f64"].numpy().tolist() == [6.0]
    assert out["y_i32"].numpy().tolist() == [8]
    assert out["y_i64"].numpy().tolist() == [[6, -6]]


def test_text_model_with_a_lookup_table_splits_its_step_and_loads_in_the_session_loader(tmp_path):
    # TextVectorization's table must be tracked; the Embedding's sparse gradient must come back as one tensor.
    keras.utils.set_random_seed(5)
    text = keras.Input((), dtype="string")
    ids = keras.layers.TextVectorization(vocabulary=["good", "bad", "fine"])(text)
    x = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(5, 4, mask_zero=True)(ids))
    model = keras.Model(text, keras.layers.Dense(2, activation="softmax")(x))
    path = str(tmp_path / "text")
    export_trainable(model, keras.optimizers.SGD(0.1), keras.losses.SparseCategoricalCrossentropy(), path)
    texts, labels = np.array([b"good fine", b"bad", b"bad bad good"]), np.array([1, 0, 0])
    # The loader Spindle uses (TensorFlow's session loader, as the C API's) restores tables and variables.
    with tf.compat.v1.Session(graph=tf.Graph()) as session:
        meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], path)
        grads = meta.signature_def["gradients"]
        feed = {grads.inputs["features"].name: texts, grads.inputs["labels"].name: labels}
        out = session.run({k: v.name for k, v in grads.outputs.items()}, feed)
    assert out["grad_000"].shape == (5, 4)  # the embedding's gradient, dense
    assert np.isfinite(out["loss"]) and out["loss"] > 0


def test_evaluate_sums_over_batches_equal_keras_metrics_over_all_rows(tmp_path):
    """Summing `evaluate` over uneven batches, then `metrics`, gives Keras's own figures over all the rows."""
    path = str(tmp_path / "mlp")
    model = mlp(seed=5)
    metrics = [
        keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
        keras.metrics.SparseTopKCategoricalAccuracy(k=2, name="top2"),
        "sparse_categorical_crossentropy",
    ]
    loss = keras.losses.SparseCategoricalCrossentropy()
    export_trainable(model, keras.optimizers.Adam(1e-2), loss, path, metrics=metrics)
    loaded = tf.saved_model.load(path)
    evaluate, figures = loaded.signatures["evaluate"], loaded.signatures["metrics"]
    x, y = batch(n=203, seed=9)
    sums = {}
    for lo, hi in [(0, 64), (64, 128), (128, 203)]:
        for k, v in evaluate(features=tf.constant(x[lo:hi]), labels=tf.constant(y[lo:hi])).items():
            sums[k] = sums.get(k, 0.0) + v.numpy().astype("float64")
    got = {k: float(v) for k, v in figures(**{k: tf.constant(v, tf.float32) for k, v in sums.items()}).items()}

    pred = model(x, training=False)
    want = {"loss": float(loss(y, pred))}
    for m in [keras.metrics.SparseCategoricalAccuracy(), keras.metrics.SparseTopKCategoricalAccuracy(k=2)]:
        m.update_state(y, pred)
        want["accuracy" if m.name == "sparse_categorical_accuracy" else "top2"] = float(m.result())
    want["sparse_categorical_crossentropy"] = want["loss"]
    assert sorted(got) == sorted(want)
    for k in want:
        assert got[k] == pytest.approx(want[k], rel=1e-5), k
    assert 0.0 < want["accuracy"] < 1.0  # neither trivially right nor wrong: the comparison means something


def test_binary_auc_sums_over_batches(tmp_path):
    """AUC's state (thresholded confusion counts) adds up over batches: the summed figure is Keras's."""
    keras.utils.set_random_seed(2)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1, activation="sigmoid")])
    path = str(tmp_path / "logistic")
    loss = keras.losses.BinaryCrossentropy()
    export_trainable(
        model,
        keras.optimizers.SGD(0.1),
        loss,
        path,
        label_spec=tf.TensorSpec([None, 1], tf.float32),
        metrics=[keras.metrics.AUC(name="auc")],
    )
    loaded = tf.saved_model.load(path)
    x, y3 = batch(n=150, seed=4)
    y = (y3 > 0).astype("float32").reshape(-1, 1)
    sums = {}
    for lo, hi in [(0, 100), (100, 150)]:
        for k, v in loaded.signatures["evaluate"](features=tf.constant(x[lo:hi]), labels=tf.constant(y[lo:hi])).items():
            sums[k] = sums.get(k, 0.0) + v.numpy().astype("float64")
    got = loaded.signatures["metrics"](**{k: tf.constant(v, tf.float32) for k, v in sums.items()})
    auc = keras.metrics.AUC()
    auc.update_state(y, model(x, training=False))
    assert float(got["auc"]) == pytest.approx(float(auc.result()), rel=1e-5)
    assert 0.05 < float(auc.result()) < 0.95
