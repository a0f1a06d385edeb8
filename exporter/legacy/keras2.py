"""Load Keras 2 artifacts: tf-keras reads them, the config is translated, weights carried over.

tf-keras's reading of the file is the reference: it is what the model computed when it was
trained, and verification compares the translated Keras 3 model against it.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import re
import sys
from pathlib import Path

from exporter.errors import BadInputError, IncompatibleWeightsError, KexportError
from exporter.formats.failures import describe_load_error, loader_errors
from exporter.legacy.keras1 import needs_pretranslation, pretranslate
from exporter.legacy.translate import drop_unrecognized, translate_config
from exporter.model_tensors import input_specs, loaded_keras3, model_runner, output_specs
from exporter.model_types import LoadedModel, LoadOptions
from exporter.runtime import keras_module, quiet_stdout, tf_keras_module

MAX_REPAIRS = 100
_MARSHAL_FAILURE = re.compile(r"marshal|EOF read where|bad code object|unknown type code", re.IGNORECASE)
THEANO_FLIPPED = {"Conv1D", "Conv2D", "Conv3D", "Conv2DTranspose", "ConvLSTM2D"}


def load_keras2_model(path: Path, fmt: str, options: LoadOptions) -> LoadedModel:
    """Read a Keras 2 SavedModel (with keras_metadata.pb) through tf-keras; bring it into Keras 3."""
    tf_keras = tf_keras_module()
    with loader_errors(path, options), quiet_stdout():
        source = tf_keras.models.load_model(
            str(path), compile=False, custom_objects=options.custom_objects
        )
    return from_keras2_model(source, path, fmt, options, [], None)


def load_with_tf_keras(path: Path, fmt: str, custom_objects: dict) -> LoadedModel:
    """A file read by tf-keras alone, as a Keras 2 inference stack reads it (no translation)."""
    tf_keras = tf_keras_module()
    with loader_errors(path), quiet_stdout():
        model = tf_keras.models.load_model(str(path), compile=False,
                                           custom_objects=custom_objects or None)
    return LoadedModel(model=None, format=fmt, path=path, reference=model_runner(model),
                       inputs=input_specs(model), outputs=output_specs(model))


def hdf5_attrs(path: Path) -> dict:
    """The writer's attributes of an HDF5 file (keras_version, backend, training_config)."""
    import h5py

    with h5py.File(path, "r") as handle:
        attrs = {key: handle.attrs[key] for key in ("keras_version", "backend", "training_config")
                 if key in handle.attrs}
        attrs["optimizer_weights"] = "optimizer_weights" in handle
    return {k: v.decode() if isinstance(v, bytes) else v for k, v in attrs.items()}


def load_keras2_config(config: dict, path: Path, fmt: str, options: LoadOptions, weights,
                       keras_version: str | None = None) -> LoadedModel:
    """Build a Keras 1/2 architecture with tf-keras, load its weights, bring it into Keras 3."""
    notes: list[str] = []
    keras_version = keras_version or config.get("keras_version")
    if needs_pretranslation(config, keras_version):
        config = pretranslate(config, notes)
    tf_keras = tf_keras_module()
    if options.unsafe:  # the safety scan has run; the user vouched for the file's code
        tf_keras.__internal__.enable_unsafe_deserialization()
        keras_module().config.enable_unsafe_deserialization()
    with loader_errors(path, options), quiet_stdout(), foreign_bytecode_errors(config):
        source = tf_keras.models.model_from_json(
            json.dumps(config), custom_objects=options.custom_objects
        )
    if weights is not None:
        with loader_errors(weights, options), quiet_stdout():
            # A restructured Keras 1 model keeps its layer names but not the file's layer order.
            by_name = options.by_name or any(n.startswith("keras1-branches") for n in notes)
            source.load_weights(str(weights), by_name=by_name, skip_mismatch=options.skip_mismatch)
        attrs = hdf5_attrs(Path(weights))
        if attrs.get("backend") == "theano":
            flip_theano_kernels(source, notes)
        if attrs.get("training_config") or attrs.get("optimizer_weights"):
            notes.append("training-state: model: optimizer and compile settings not loaded "
                         "(kexport converts the inference model)")
    return from_keras2_model(source, path, fmt, options, notes, keras_version)


@contextlib.contextmanager
def foreign_bytecode_errors(config: dict):
    """Name the Lambda layers and the Python that wrote them when their bytecode is unreadable.

    Keras 2 stored a Lambda's function as base64 of `marshal.dumps(code)`, which only the
    Python version that wrote it can read back.
    """
    try:
        yield
    except (ValueError, EOFError, TypeError, SystemError) as error:
        if not _MARSHAL_FAILURE.search(str(error)):
            raise
        from exporter.safety import code_layers

        names = code_layers(config)
        raise BadInputError(
            f"Lambda layer(s) {', '.join(names[:5])}{' ...' if len(names) > 5 else ''} hold "
            f"Python bytecode that Python {sys.version_info.major}.{sys.version_info.minor} "
            f"cannot read: it was written by {_bytecode_writer(config)}.",
            hint="Load it with that Python and Keras, or rebuild the Lambda layers in code.",
        ) from None


def _bytecode_writer(config: dict) -> str:
    """Tell the writer's Python from the first marshal byte: Python 3.4+ sets the FLAG_REF bit."""
    for value in _lambda_functions(config):
        try:
            first = base64.b64decode(value)[:1]
        except (ValueError, TypeError):
            continue
        if first == b"c":
            return "Python 2 (or Python 3.3 or older)"
        if first == b"\xe3":
            return "another Python 3 version"
    return "another Python version"


def _lambda_functions(value):
    if isinstance(value, dict):
        if value.get("class_name") == "Lambda" and isinstance(value.get("config"), dict):
            function = value["config"].get("function")
            if isinstance(function, list) and function and isinstance(function[0], str):
                yield function[0]
        for item in value.values():
            yield from _lambda_functions(item)
    elif isinstance(value, list):
        for item in value:
            yield from _lambda_functions(item)


def flip_theano_kernels(model, notes: list[str]) -> None:
    """Theano convolves and TensorFlow correlates: Keras 2 flipped the spatial axes of every
    convolution kernel loaded from a Theano-backend file; do the same."""
    for layer in model.layers:
        if hasattr(layer, "layers"):
            flip_theano_kernels(layer, notes)
            continue
        if layer.__class__.__name__ not in THEANO_FLIPPED:
            continue
        weights = layer.get_weights()
        count = 2 if layer.__class__.__name__ == "ConvLSTM2D" else 1
        for index in range(count):
            kernel = weights[index]
            spatial = (slice(None, None, -1),) * (kernel.ndim - 2)
            weights[index] = kernel[spatial + (slice(None), slice(None))].copy()
        layer.set_weights(weights)
        notes.append(f"theano-kernel-flip: {layer.name}: spatial axes flipped")


def from_keras2_model(source, path: Path, fmt: str, options: LoadOptions, notes: list[str],
                      keras_version: str | None) -> LoadedModel:
    """Translate a tf-keras model into a Keras 3 model with the same weights.

    When Keras 3 cannot express the model (an op layer with no Keras 3 layer, a layer Keras 3
    dropped, a custom Keras 2 layer), the result holds tf-keras's model alone: a SavedModel can
    still be written from it, and asking for a Keras 3 format raises the translation's error.
    """
    try:
        with loader_errors(path, options):
            config = json.loads(source.to_json())
        model = build_keras3(config, path, options, notes)
        copy_weights(source, model)
    except KexportError as error:
        return tf_keras_only(source, path, fmt, notes, keras_version, error)
    loaded = loaded_keras3(model, fmt, path, keras_version)
    loaded.reference = model_runner(source)  # what the file computes, as tf-keras reads it
    loaded.notes = notes
    return loaded


def tf_keras_only(source, path: Path, fmt: str, notes: list[str], keras_version: str | None,
                  error: KexportError) -> LoadedModel:
    """A Keras 2 model only tf-keras holds: servable as a SavedModel, not convertible to Keras 3."""
    reason = getattr(error, "message", str(error))
    return LoadedModel(
        model=None, format=fmt, path=path, reference=model_runner(source),
        inputs=input_specs(source), outputs=output_specs(source), keras_version=keras_version,
        notes=[*notes, f"tf-keras-only: model: no Keras 3 translation ({reason})"],
        route="tf-keras", native=source, keras3_refusal=error,
    )


def build_keras3(config: dict, path: Path, options: LoadOptions, notes: list[str]):
    """Translate a Keras 2 config and build it with Keras 3, dropping defaults it rejects."""
    # Keras 3's legacy deserializer resolves classes by name alone, which is what a translated
    # Keras 2 config needs; it is the one Keras 3 itself uses for legacy HDF5 files.
    from keras.src.legacy.saving.saving_utils import model_from_config

    keras_module()
    translated = translate_config(config, notes)
    for _ in range(MAX_REPAIRS):
        try:
            with quiet_stdout(), layer_classes_only():
                # The deserializer pops keys from what it is given: hand it a copy, so a
                # failed attempt leaves the translated config whole for the next one.
                return model_from_config(
                    copy.deepcopy(translated), custom_objects=options.custom_objects
                )
        except (TypeError, ValueError) as error:
            if not drop_unrecognized(translated, error, notes):
                raise describe_load_error(error, path) from error
    raise BadInputError("the Keras 2 config could not be translated: too many repairs.")


@contextlib.contextmanager
def layer_classes_only():
    """Keep Keras 3's legacy deserializer from reading string arguments as functions.

    It looks every string argument up in `keras.layers` and swaps in a function of that name:
    `Attention(score_mode="dot")` received `keras.layers.dot`. Classes are all it must find.
    """
    from keras.src import models
    from keras.src.legacy.saving import saving_utils

    saving_utils.MODULE_OBJECTS.ALL_OBJECTS = {
        **{name: value for name, value in vars(keras_module().layers).items()
           if isinstance(value, type)},
        "Functional": models.Functional, "Model": models.Model, "Sequential": models.Sequential,
    }
    try:
        yield
    finally:
        del saving_utils.MODULE_OBJECTS.ALL_OBJECTS  # Keras rebuilds its own on the next load


def copy_weights(source, target) -> None:
    """Copy weights layer by layer (matched by name, nested models recursively)."""
    for layer in target.layers:
        try:
            origin = source.get_layer(layer.name)
        except ValueError:
            raise BadInputError(
                f"translated layer '{layer.name}' has no counterpart in the Keras 2 model."
            ) from None
        if hasattr(layer, "layers") and hasattr(origin, "layers"):
            copy_weights(origin, layer)
            continue
        values = origin.get_weights()
        targets = layer.weights
        if len(values) != len(targets):
            raise IncompatibleWeightsError(
                f"layer '{layer.name}' holds {len(values)} weights in Keras 2 but "
                f"{len(targets)} in Keras 3."
            )
        for value, variable in zip(values, targets):
            if tuple(value.shape) != tuple(variable.shape):
                raise IncompatibleWeightsError(
                    f"layer '{layer.name}': weight '{variable.name}' has shape "
                    f"{tuple(variable.shape)} in Keras 3 but {tuple(value.shape)} in Keras 2."
                )
        if values:
            layer.set_weights(values)
