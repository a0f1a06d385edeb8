"""A model's summary from its config alone: class, inputs, outputs, a layer table, parameters.

No TensorFlow: output shapes come from what the config records (input layers, the input shape
each layer was built with, config_shapes.py), and parameter counts from the shapes of the
stored weights, read from the HDF5 structure without reading the weights themselves.
"""

from __future__ import annotations

import io
import zipfile

import numpy as np

from exporter.config_shapes import fill_output_shapes, recorded_shapes
from exporter.formats.detection import Detected

NON_TRAINABLE_MARKERS = ("moving_mean", "moving_variance", "moving_var", "running_")


def _layer_entries(config: dict) -> list[dict]:
    inner = config.get("config", {})
    layers = inner.get("layers", []) if isinstance(inner, dict) else inner
    return layers if isinstance(layers, list) else []


def _batch_shape(cfg: dict):
    shape = cfg.get("batch_shape") or cfg.get("batch_input_shape")
    return list(shape) if shape is not None else None


def _ref_names(refs) -> list[str]:
    if isinstance(refs, list) and refs and isinstance(refs[0], str):
        return [refs[0]]
    return [ref[0] for ref in refs or [] if isinstance(ref, (list, tuple)) and ref]


def describe_config(config: dict, weights: dict[str, list[np.ndarray]]) -> dict:
    """Model class, inputs, outputs and a layer table from a model config."""
    layers = _layer_entries(config)
    inner = config.get("config", {}) if isinstance(config.get("config"), dict) else {}
    shapes = recorded_shapes(layers)
    for layer in layers:
        cfg = layer.get("config", {})
        if layer.get("class_name") == "InputLayer" and _batch_shape(cfg) is not None:
            shapes[cfg.get("name") or layer.get("name")] = _batch_shape(cfg)
    fill_output_shapes(config.get("class_name") == "Sequential", layers, shapes)
    table, inputs = [], []
    for layer in layers:
        cfg = layer.get("config", {})
        name = cfg.get("name") or layer.get("name")
        shape = shapes.get(name)
        if layer.get("class_name") == "InputLayer":
            inputs.append({"name": name, "shape": shape, "dtype": cfg.get("dtype")})
        arrays = weights.get(name, [])
        trainable = bool(cfg.get("trainable", True))
        table.append({
            "name": name,
            "class": layer.get("class_name"),
            "output_shape": shape,
            "params": int(sum(a.size for a in arrays)),
            "trainable": trainable,
        })
    if not inputs and layers:  # a Sequential given its input shape on the first layer
        first = layers[0].get("config", {})
        if _batch_shape(first):
            inputs.append({"name": first.get("name"), "shape": _batch_shape(first),
                           "dtype": first.get("dtype")})
    outputs = _ref_names(inner.get("output_layers")) or ([table[-1]["name"]] if table else [])
    return {
        "model_class": config.get("class_name"),
        "name": inner.get("name"),
        "inputs": inputs,
        "outputs": [{"name": name} for name in outputs],
        "layers": table,
        "params": _param_totals(table, weights),
    }


def _param_totals(table: list[dict], weights: dict[str, list]) -> dict:
    total = sum(row["params"] for row in table)
    frozen = sum(row["params"] for row in table if not row["trainable"])
    frozen += sum(
        array.size
        for row in table if row["trainable"]
        for name, array in zip(weights.get(f"{row['name']}#names", []), weights.get(row["name"], []))
        if any(marker in name for marker in NON_TRAINABLE_MARKERS)
    )
    return {"total": int(total), "trainable": int(total - frozen), "non_trainable": int(frozen)}


def weight_placeholders(detected: Detected) -> dict[str, list]:
    """Per top-level layer: arrays shaped like its stored weights, no data read (and
    `name#names`: the weights' names); what `describe_config` counts parameters from."""
    import h5py

    if detected.format == "h5":
        with h5py.File(detected.path, "r") as handle:
            group = handle.get("model_weights")
            return _collect_by_top_group(group) if group is not None else {}
    if detected.format == "keras":
        with zipfile.ZipFile(detected.path) as archive:
            if "model.weights.h5" not in archive.namelist():
                return {}
            data = io.BytesIO(archive.read("model.weights.h5"))
        with h5py.File(data, "r") as handle:
            return _collect_vars(handle)
    return {}


def _collect_by_top_group(group) -> dict[str, list]:
    import h5py

    result: dict[str, list] = {}
    for layer_name in group:
        arrays, names = [], []

        def visit(name, obj, arrays=arrays, names=names):
            if isinstance(obj, h5py.Dataset):
                arrays.append(np.empty(obj.shape, dtype=np.uint8))  # shape only, no data read
                names.append(name)

        group[layer_name].visititems(visit)
        result[layer_name] = arrays
        result[f"{layer_name}#names"] = names
    return result


def _collect_vars(handle) -> dict[str, list]:
    import h5py

    result: dict[str, list] = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Group) and name.endswith("vars") and len(obj):
            label = obj.attrs.get("name", name)
            label = label.decode() if isinstance(label, bytes) else str(label)
            result.setdefault(label, []).extend(
                np.empty(obj[key].shape, dtype=np.uint8) for key in obj
            )

    handle.visititems(visit)
    return result
