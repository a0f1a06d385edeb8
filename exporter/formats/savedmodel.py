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

from exporter.errors import BadInputError, FormatError
from exporter.formats.detection import Detected
from exporter.formats.failures import loader_errors
from exporter.model_tensors import input_specs, output_specs
from exporter.model_types import LoadedModel, LoadOptions, TensorSpec
from exporter.runtime import keras_module, quiet_stdout, tf_module

SERVING_KEY = "serving_default"
# TensorFlow accepts these as signature keys and tensor names.
_VALID_NAME = re.compile(r"^[A-Za-z0-9.][A-Za-z0-9_.\-/]*$")


def load(detected: Detected, options: LoadOptions) -> LoadedModel:
    if detected.details.get("keras_metadata"):
        from exporter.legacy.keras2 import load_keras2_model

        return load_keras2_model(detected.path, "savedmodel", options)
    if keras_object_graph(detected.path):
        return _revive_keras2(detected.path, options)
    return as_signature(detected.path)


def as_signature(path: Path, notes: list[str] | None = None,
                 refusal: Exception | None = None) -> LoadedModel:
    """A SavedModel read as its signature, written out again by copying it."""
    loaded = load_signature(path)
    loaded.route, loaded.native, loaded.keras3_refusal = "signature", path, refusal
    loaded.notes = list(notes or [])
    return loaded


def keras_object_graph(path: Path) -> bool:
    """True when the SavedModel's root object is a tf.keras model.

    tf.keras under TF 2.0-2.4 kept each layer's Keras config in the SavedModel's object graph,
    before `keras_metadata.pb` existed; tf-keras revives such models from it.
    """
    tf_module()  # quietly, before TensorFlow's protobuf modules
    from tensorflow.core.protobuf import saved_model_pb2

    pb = path / "saved_model.pb"
    if not pb.is_file():
        return False
    proto = saved_model_pb2.SavedModel()
    try:
        proto.ParseFromString(pb.read_bytes())
    except Exception:  # noqa: BLE001 - protobuf's DecodeError: load_signature says it properly
        return False
    nodes = proto.meta_graphs[0].object_graph_def.nodes if proto.meta_graphs else []
    return bool(nodes) and nodes[0].user_object.identifier.startswith("_tf_keras_")


def _revive_keras2(path: Path, options: LoadOptions) -> LoadedModel:
    """A tf.keras SavedModel without keras_metadata.pb: tf-keras revives it from the object
    graph; when it cannot (layers whose call was not saved), the signature is what remains."""
    from exporter.errors import KexportError
    from exporter.legacy.keras2 import load_keras2_model

    try:
        loaded = load_keras2_model(path, "savedmodel", options)
    except KexportError as error:
        reason = FormatError(
            f"{path} is a tf.keras SavedModel without keras_metadata.pb whose Keras layers "
            f"tf-keras cannot revive ({error.message}); it holds a serving signature, not a "
            "Keras model, so it cannot become a Keras format.",
            hint="It can be verified, converted to a SavedModel, bundled and served as it is.",
        )
        return as_signature(path, [f"keras-revive-failed: model: {error.message}"], reason)
    loaded.notes.insert(0, "keras-object-graph: model: no keras_metadata.pb; tf-keras revived "
                           "the model from the SavedModel's object graph")
    return loaded


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


def save_native(native, path: Path) -> list[Path]:
    """Write a SavedModel from what a source without a Keras 3 model holds.

    A tf-keras model gets the same `serving_default` as `save` writes (input layer names in,
    output layer names out), traced by TensorFlow from tf-keras's own call; a SavedModel read as
    its signature (a folder) is copied as it is, which is what TF Serving will run.
    """
    import shutil

    if isinstance(native, Path):
        shutil.copytree(native, path, symlinks=True)
        return [path]
    tf = tf_module()
    ins, outs = input_specs(native), output_specs(native)
    specs = [tf.TensorSpec(s.shape, s.dtype, name=s.name) for s in ins]

    @tf.function(input_signature=specs)
    def serve(*args):
        result = native(list(args) if len(args) > 1 else args[0], training=False)
        result = result if isinstance(result, (list, tuple)) else [result]
        return {spec.name: tensor for spec, tensor in zip(outs, result)}

    holder = tf.Module()
    holder.weights = list(native.weights)  # tracked, so the variables are saved with `serve`
    with quiet_stdout():
        tf.saved_model.save(holder, str(path), signatures={SERVING_KEY: serve})
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
