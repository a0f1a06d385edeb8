"""An architecture config built into a model, and a weights file loaded into it.

The json and yaml formats (an architecture, with its weights beside it) and the weights format
(weights, read against an architecture given with `--architecture`) both end here: a Keras 2
config is built by tf-keras and translated (legacy/keras2.py), a Keras 3 config by Keras 3.
Before Keras sees a weights file, its shapes are checked against the model so that a misfit
names the first layer and the two shapes that differ, instead of failing deep inside an
assignment.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from exporter.errors import IncompatibleWeightsError
from exporter.formats.failures import loader_errors
from exporter.legacy.translate import is_keras2_config
from exporter.model_tensors import loaded_keras3
from exporter.model_types import LoadedModel, LoadOptions
from exporter.runtime import keras_module, quiet_stdout


def build_with_weights(config: dict, path: Path, fmt: str, options: LoadOptions,
                       weights) -> LoadedModel:
    """Build an architecture config (Keras 2 or 3) and load `weights` into it when given."""
    if is_keras2_config(config):
        from exporter.legacy.keras2 import load_keras2_config

        loaded = load_keras2_config(config, path, fmt, options, weights)
    else:
        keras = keras_module()
        if options.unsafe:
            keras.config.enable_unsafe_deserialization()
        with loader_errors(path, options), quiet_stdout():
            model = keras.models.model_from_json(
                json.dumps(config), custom_objects=options.custom_objects or None
            )
        loaded = loaded_keras3(model, fmt, path, None)
        if weights is not None:
            loaded.weights_report = apply_weights(model, weights, options)
    loaded.weights_loaded = weights is not None
    return loaded


def read_layer_weights(path: Path) -> tuple[str, list[tuple[str, list[np.ndarray]]]]:
    """The file's layout ('keras2' or 'keras3') and its (layer name, arrays) in file order."""
    import h5py

    with h5py.File(path, "r") as handle:
        if "layer_names" in handle.attrs:
            return "keras2", _keras2_layers(handle)
        found = []

        def visit(name, obj):
            if isinstance(obj, h5py.Group) and name.split("/")[-1] == "vars" and len(obj):
                arrays = [obj[key][()] for key in sorted(obj, key=int)]
                label = obj.attrs.get("name", name.rsplit("/", 2)[-2] if "/" in name else name)
                found.append((label.decode() if isinstance(label, bytes) else str(label), arrays))

        handle.visititems(visit)
        return "keras3", found


def _keras2_layers(handle) -> list[tuple[str, list[np.ndarray]]]:
    layers = []
    for raw in handle.attrs["layer_names"]:
        name = raw.decode() if isinstance(raw, bytes) else str(raw)
        group = handle[name]
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in group.attrs.get("weight_names", [])]
        if names:
            layers.append((name, [group[n][()] for n in names]))
    return layers


def _weighted_layers(model) -> list:
    return [layer for layer in model.layers if layer.weights]


def _shapes(arrays) -> list[tuple]:
    return [tuple(int(d) for d in a.shape) for a in arrays]


def check_fit(model, layout: str, file_layers) -> None:
    """Raise IncompatibleWeightsError naming the first layer whose shapes differ."""
    if layout == "keras2":  # matched in order, as Keras 2's load_weights does
        ours = _weighted_layers(model)
        for layer, (file_name, arrays) in zip(ours, file_layers):
            _compare(layer, file_name, arrays)
        if len(ours) != len(file_layers):
            raise IncompatibleWeightsError(
                f"the weights file holds weights for {len(file_layers)} layers but the model "
                f"has {len(ours)} layers with weights.",
                hint="Use --by-name (with --skip-mismatch) to load only the layers that match.",
            )
        return
    by_name = dict(file_layers)
    for layer in _weighted_layers(model):
        if layer.name in by_name:
            _compare(layer, layer.name, by_name[layer.name])


def _compare(layer, file_name: str, arrays) -> None:
    want = _shapes(layer.weights)
    have = _shapes(arrays)
    label = f"'{layer.name}'" + ("" if file_name == layer.name else f" (file layer '{file_name}')")
    if len(want) != len(have):
        raise IncompatibleWeightsError(
            f"weights do not fit layer {label}: it has {len(want)} weights, the file {len(have)}."
        )
    for variable, shape_want, shape_have in zip(layer.weights, want, have):
        if shape_want != shape_have:
            raise IncompatibleWeightsError(
                f"weights do not fit layer {label}: weight '{variable.name}' has shape "
                f"{shape_want} in the model but {shape_have} in the file.",
                hint="Use --by-name --skip-mismatch to keep such layers at their initial values.",
            )


def apply_weights(model, path: Path, options: LoadOptions) -> dict | None:
    """Load a weights file into a Keras 3 model; by name if asked, then report who got what."""
    layout, file_layers = read_layer_weights(path)
    if not options.by_name:
        check_fit(model, layout, file_layers)
        with loader_errors(path, options), _keras_readable_path(path, layout) as usable:
            model.load_weights(str(usable))
        return None
    before = {layer.name: [np.array(w) for w in layer.get_weights()] for layer in _weighted_layers(model)}
    _load_by_name(model, dict(file_layers), options.skip_mismatch)
    received = [
        name
        for name, old in before.items()
        if any(not np.array_equal(a, b) for a, b in zip(old, model.get_layer(name).get_weights()))
    ]
    return {
        "received": received,
        "kept_initial": [name for name in before if name not in received],
    }


def _load_by_name(model, arrays_by_name: dict, skip_mismatch: bool) -> None:
    for layer in _weighted_layers(model):
        arrays = arrays_by_name.get(layer.name)
        if arrays is None:
            continue
        if _shapes(layer.weights) != _shapes(arrays):
            if skip_mismatch:
                continue
            _compare(layer, layer.name, arrays)
        layer.set_weights(arrays)


@contextlib.contextmanager
def _keras_readable_path(path: Path, layout: str):
    """Keras 3 reads its own layout only from a name ending `.weights.h5`: link one if needed."""
    if layout != "keras3" or path.name.endswith(".weights.h5"):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="kexport-weights-") as folder:
        link = Path(folder) / "model.weights.h5"
        os.symlink(path.resolve(), link)
        yield link
