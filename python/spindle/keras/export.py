"""Export of Keras models for Spindle.

Spindle runs SavedModels through TensorFlow's C API. Two facts shape this module:

* A SavedModel that tracks Keras 3 layer or optimizer objects fails to load there ("Could not find
  variable ..."): Keras writes every variable twice. So the exported object is a bare ``tf.Module``
  that tracks only the underlying ``tf.Variable`` of each Keras variable, and whose ``tf.function``s call
  the Keras model, which is itself never tracked.
* Synchronous data-parallel training needs the optimizer step split in two: ``gradients`` on every worker,
  an all-reduce between them, then ``apply_gradients``. Both halves run the same ops as ``train``, so the
  split gives the same loss and weights, bit for bit.

Signatures of a trainable export (batch dimension ``None`` everywhere):

* ``train(<inputs>, labels) -> {"loss"}``: one optimizer step.
* ``gradients(<inputs>, labels) -> {"loss", "grad_000", ...}``: one gradient per trainable variable,
  in ``model.trainable_variables`` order.
* ``apply_gradients(grad_000, ...) -> {"step"}``: applies them; ``step`` is the optimizer's iteration count.
* ``predict(<inputs>)`` and ``serving_default(<inputs>)`` -> ``{<output name>: ...}``.
* ``variables() -> {"var_000", ...}``: the current value of each trainable variable (``var_i`` pairs with
  ``grad_i``), so that trained weights can be read and compared without TensorFlow's checkpoint reader.
* ``evaluate(<inputs>, labels) -> {"loss_sum", "count", "<metric>__<i>", ...}``: what one batch adds to the
  validation sums: its loss times its rows, its rows, and each metric's state update (Keras's stateless
  ``stateless_update_state`` from the initial state, minus that state). No variable changes.
* ``metrics(loss_sum, count, <metric>__<i>, ...) -> {"loss", "<metric>", ...}``: the figures from the
  summed states. Spindle sums ``evaluate`` over every worker's validation batches, then runs ``metrics``
  once: the figures equal one evaluation over all the rows. Metrics whose state adds up qualify (Keras's
  accuracies, AUC, precision, recall, mean errors); a state that is a maximum or a minimum does not.

A single-input model's input is named ``features``; a multi-input model keeps its Keras input names.
Labels are ``labels``. The output is ``probabilities`` when the last layer is a softmax, else ``output``.
"""

import keras
import tensorflow as tf


def _input_specs(model):
    inputs = model.inputs
    if len(inputs) == 1:
        names = ["features"]
    else:
        names = [getattr(t, "name", f"input_{i}").split(":")[0] for i, t in enumerate(inputs)]
    return [tf.TensorSpec([None, *t.shape[1:]], t.dtype, name=n) for t, n in zip(inputs, names)]


def _output_name(model, output_name):
    if output_name:
        return output_name
    activation = getattr(model.layers[-1], "activation", None)
    return "probabilities" if activation is keras.activations.softmax else "output"


def _label_spec(model, loss, label_spec):
    if label_spec is not None:
        return tf.TensorSpec(label_spec.shape, label_spec.dtype, name="labels")
    name = getattr(loss, "name", "") or getattr(loss, "__name__", "")
    if "sparse" in name.lower():
        return tf.TensorSpec([None], tf.int64, name="labels")
    out = model.outputs[0]
    return tf.TensorSpec([None, *out.shape[1:]], out.dtype, name="labels")


def _raw_variables(variables):
    # Keras 3 variables wrap a tf.Variable; tracking the wrapper is what breaks the C API.
    return [v.value if hasattr(v, "value") and isinstance(v.value, tf.Variable) else v for v in variables]


def _resources(model):
    # Lookup tables (TextVectorization, StringLookup, ...) are resources, not variables: tracked beside them.
    resource = tf.saved_model.experimental.TrackableResource
    return [
        value
        for layer in model._flatten_layers(include_self=True, recursive=True)
        for value in vars(layer).values()
        if isinstance(value, resource)
    ]


def _dense(gradient):
    # An Embedding's gradient is an IndexedSlices: a signature output must be one tensor.
    return tf.convert_to_tensor(gradient) if isinstance(gradient, tf.IndexedSlices) else gradient


def _call(model, args):
    return model(list(args) if len(args) > 1 else args[0], training=False)


def export_inference(model, path, output_name=None):
    """Saves ``model`` for inference only, with ``serving_default`` and ``predict`` signatures."""
    module = tf.Module()
    module.tracked = _raw_variables(model.variables)
    module.resources = _resources(model)
    out = _output_name(model, output_name)

    @tf.function(input_signature=_input_specs(model))
    def predict(*inputs):
        return {out: _call(model, inputs)}

    module.predict = predict
    fn = predict.get_concrete_function()
    tf.saved_model.save(module, path, signatures={"serving_default": fn, "predict": fn})


def _metric(m):
    if isinstance(m, keras.metrics.Metric):
        return m
    found = keras.metrics.get(m)
    if isinstance(found, keras.metrics.Metric):
        return found
    if isinstance(found, type):
        return found()
    return keras.metrics.MeanMetricWrapper(found, name=m if isinstance(m, str) else found.__name__)


def _evaluation(model, loss, metrics, specs):
    """The ``evaluate`` and ``metrics`` functions of the module doc, for ``metrics`` (Keras metric objects or
    names, as ``keras.metrics.get`` takes them)."""
    metrics = [_metric(m) for m in metrics or []]
    names = [m.name for m in metrics]
    if len(set(names)) != len(names) or "loss" in names:
        raise ValueError(f"metric names must be unique and not 'loss': {names}")
    initial = []
    for m in metrics:
        m.reset_state()
        initial.append([tf.constant(v.numpy()) for v in m.variables])
    state_specs = [
        tf.TensorSpec(v.shape, tf.float32, name=f"{m.name}__{i}") for m in metrics for i, v in enumerate(m.variables)
    ]
    for m in metrics:
        if any(v.dtype != "float32" for v in m.variables):
            raise ValueError(f"metric {m.name} keeps a state that is not float32")

    @tf.function(input_signature=specs)
    def evaluate(*args):
        x, y = args[:-1], args[-1]
        pred = _call(model, x)
        rows = tf.cast(tf.shape(pred)[0], tf.float32)
        result = {"loss_sum": tf.cast(tf.reduce_mean(loss(y, pred)), tf.float32) * rows, "count": rows}
        for m, init in zip(metrics, initial):
            updated = m.stateless_update_state(init, y, pred)
            for i, (new, old) in enumerate(zip(updated, init)):
                result[f"{m.name}__{i}"] = new - old
        return result

    @tf.function(
        input_signature=[tf.TensorSpec([], tf.float32, name="loss_sum"), tf.TensorSpec([], tf.float32, name="count")]
        + state_specs
    )
    def figures(loss_sum, count, *states):
        result = {"loss": loss_sum / count}
        at = 0
        for m, init in zip(metrics, initial):
            n = len(init)
            summed = [s + i for s, i in zip(states[at : at + n], init)]
            result[m.name] = tf.cast(m.stateless_result(summed), tf.float32)
            at += n
        return result

    return evaluate, figures


def export_trainable(model, optimizer, loss, path, label_spec=None, output_name=None, metrics=None):
    """Saves ``model`` with ``optimizer`` and ``loss`` as a trainable SavedModel (see the module doc).

    ``loss`` is a Keras loss object or function taking ``(labels, predictions)``; ``label_spec`` (a
    ``tf.TensorSpec``) overrides the inferred labels dtype and shape. ``metrics`` (Keras metric objects, or
    names ``keras.metrics.get`` knows) are computed on the validation data after every epoch, beside the loss.
    """
    trainable = model.trainable_variables
    optimizer.build(trainable)
    module = tf.Module()
    module.tracked = _raw_variables(model.variables + optimizer.variables)
    module.resources = _resources(model)
    inputs = _input_specs(model)
    labels = _label_spec(model, loss, label_spec)
    out = _output_name(model, output_name)

    def loss_and_grads(args):
        x, y = args[:-1], args[-1]
        with tf.GradientTape() as tape:
            pred = model(list(x) if len(x) > 1 else x[0], training=True)
            value = loss(y, pred)
        return value, tape.gradient(value, trainable)

    @tf.function(input_signature=[*inputs, labels])
    def train(*args):
        value, grads = loss_and_grads(args)
        optimizer.apply(grads, trainable)
        return {"loss": value}

    @tf.function(input_signature=[*inputs, labels])
    def gradients(*args):
        value, grads = loss_and_grads(args)
        result = {"loss": value}
        result.update({f"grad_{i:03d}": _dense(g) for i, g in enumerate(grads)})
        return result

    grad_specs = [tf.TensorSpec(v.shape, v.dtype, name=f"grad_{i:03d}") for i, v in enumerate(trainable)]

    @tf.function(input_signature=grad_specs)
    def apply_gradients(*grads):
        optimizer.apply(list(grads), trainable)
        return {"step": tf.cast(optimizer.iterations, tf.int64)}

    @tf.function(input_signature=inputs)
    def predict(*x):
        return {out: _call(model, x)}

    @tf.function(input_signature=[])
    def variables():
        return {f"var_{i:03d}": tf.identity(v) for i, v in enumerate(trainable)}

    evaluate, figures = _evaluation(model, loss, metrics, [*inputs, labels])

    module.train, module.gradients, module.read_variables = train, gradients, variables
    module.apply_gradients, module.predict = apply_gradients, predict
    module.evaluate, module.metrics = evaluate, figures
    serve = predict.get_concrete_function()
    tf.saved_model.save(
        module,
        path,
        signatures={
            "train": train.get_concrete_function(),
            "gradients": gradients.get_concrete_function(),
            "apply_gradients": apply_gradients.get_concrete_function(),
            "predict": serve,
            "serving_default": serve,
            "variables": variables.get_concrete_function(),
            "evaluate": evaluate.get_concrete_function(),
            "metrics": figures.get_concrete_function(),
        },
    )
