"""TensorFlow SavedModel directories.

Reading: a Keras 2 SavedModel with `keras_metadata.pb` is rebuilt through tf-keras (legacy/);
any other SavedModel (a Keras 3 export, a plain `tf.Module`) is read as its serving signature,
which can be inspected, verified and served but holds no Keras model to convert.
Writing: `keras.export.ExportArchive` with a `serving_default` signature whose input keys are the
model's input layer names and output keys its output layer names.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from exporter.errors import BadInputError
from exporter.formats import Detected
from exporter.formats.failures import loader_errors
from exporter.kmodel import input_specs, output_specs
from exporter.loaded import LoadedModel, LoadOptions, TensorSpec
from exporter.runtime import keras_module, quiet_stdout, tf_module

SERVING_KEY = "serving_default"
# TensorFlow accepts these as signature keys and tensor names.
_VALID_NAME = re.compile(r"^[A-Za-z0-9.][A-Za-z0-9_.\-/]*$")


def load(detected: Detected, options: LoadOptions) -> LoadedModel:
    if detected.details.get("keras_metadata"):
        from exporter.legacy.keras2 import load_keras2_model

        return load_keras2_model(detected.path, "savedmodel", options)
    return load_signature(detected.path)


def pick_signature(loaded, path: Path, key: str = SERVING_KEY):
    signatures = dict(loaded.signatures)
    if key in signatures:
        return signatures[key]
    if not signatures:
        raise BadInputError(f"SavedModel {path} has no signatures to call.")
    raise BadInputError(
        f"SavedModel {path} has no '{key}' signature; it has: {', '.join(sorted(signatures))}."
    )


def _spec(name: str, spec) -> TensorSpec:
    if spec.shape.rank is None:  # TF1 signatures may leave even the rank open
        return TensorSpec(name, None, spec.dtype.name)
    shape = tuple(None if dim is None else int(dim) for dim in spec.shape)
    return TensorSpec(name, shape, spec.dtype.name)


def load_signature(path: Path, key: str = SERVING_KEY) -> LoadedModel:
    """Read a SavedModel as its signature: what it computes, with no Keras model behind it."""
    tf = tf_module()
    with loader_errors(path), quiet_stdout():
        loaded = tf.saved_model.load(str(path))
    function = pick_signature(loaded, path, key)
    inputs = [_spec(n, s) for n, s in sorted(function.structured_input_signature[1].items())]
    outputs = [_spec(n, s) for n, s in sorted(function.structured_outputs.items())]

    def run(feed):
        args = {spec.name: tf.constant(feed[spec.name], dtype=spec.dtype) for spec in inputs}
        result = function(**args)
        return {name: np.asarray(value) for name, value in result.items()}

    run.keepalive = loaded  # the signature's variables live as long as the loaded object
    return LoadedModel(None, "savedmodel", path, run, inputs, outputs)


def save(model, path: Path, options) -> list[Path]:
    keras, tf = keras_module(), tf_module()
    ins, outs = input_specs(model), output_specs(model)
    for spec in ins + outs:
        if not _VALID_NAME.match(spec.name):
            raise BadInputError(
                f"layer name '{spec.name}' cannot be a SavedModel signature key.",
                hint="Rename the layer to letters, digits, '_', '.', '-' or '/'.",
            )
    signature = [{s.name: tf.TensorSpec(s.shape, s.dtype, name=s.name) for s in ins}]

    def serve(inputs):
        args = [inputs[spec.name] for spec in ins]
        result = model(args if len(args) > 1 else args[0], training=False)
        if isinstance(result, dict):
            result = list(result.values())
        elif not isinstance(result, (list, tuple)):
            result = [result]
        return {spec.name: tensor for spec, tensor in zip(outs, result)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(name=SERVING_KEY, fn=serve, input_signature=signature)
    with quiet_stdout():
        archive.write_out(str(path), verbose=False)
    return [path]


def describe_signatures(path: Path) -> dict:
    """Every signature of a SavedModel: input and output names, dtypes and shapes."""
    tf = tf_module()
    with loader_errors(path), quiet_stdout():
        loaded = tf.saved_model.load(str(path))
    result = {}
    for key, function in sorted(loaded.signatures.items()):
        inputs = function.structured_input_signature[1]
        result[key] = {
            "inputs": [_spec(n, s).as_dict() for n, s in sorted(inputs.items())],
            "outputs": [_spec(n, s).as_dict() for n, s in sorted(function.structured_outputs.items())],
        }
    return result
