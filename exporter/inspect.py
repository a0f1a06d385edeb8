"""Describe an artifact: format, writer, inputs, outputs, layers and parameter counts.

HDF5, `.keras`, JSON, YAML and weights files are read directly (h5py, zipfile, json, yaml):
no TensorFlow import, so `inspect` answers in a fraction of a second. Output shapes come from
what the config records (input layers, the input shape each layer was built with); parameter
counts come from the stored weights. SavedModels need TensorFlow to read their signatures.
A TF Serving model repository holds many models, not one artifact: detection refuses it, and the
serving package describes kexport's bundles (serving/bundle_manifest.py).
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from exporter.artifact_config import hdf5_errors
from exporter.config_shapes import fill_output_shapes, recorded_shapes
from exporter.formats import Detected

NON_TRAINABLE_MARKERS = ("moving_mean", "moving_variance", "moving_var", "running_")


def inspect_artifact(path: Path, source_format: str | None = None) -> dict:
    """Return a JSON-ready description of the artifact at `path`."""
    from exporter.model_io import detect_source

    detected = detect_source(Path(path), source_format)
    info = {
        "path": str(detected.path),
        "format": detected.format,
        "keras_version": detected.keras_version,
        "backend": detected.backend,
    }
    if detected.format == "savedmodel":
        from exporter.safety import savedmodel_code_layers

        info.update(_savedmodel(detected))
        info["code_layers"] = savedmodel_code_layers(detected)
        return info
    if detected.format == "tflite":
        from exporter.formats.tflite import describe_signatures

        info["signatures"] = describe_signatures(detected.path)
        return info
    if detected.format == "weights":
        with hdf5_errors(detected.path):  # a damaged file fails as one line, not a traceback
            info.update(_weights_only(detected))
        return info
    config = detected.config()
    with hdf5_errors(detected.path):
        weights = _weight_arrays(detected)
    info.update(describe_config(config, weights))
    from exporter.safety import code_layers

    info["code_layers"] = code_layers(config)
    return info


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


def _weight_arrays(detected: Detected) -> dict[str, list]:
    """Per top-level layer: its weight arrays (and `name#names`: the weights' names)."""
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


def _weights_only(detected: Detected) -> dict:
    from exporter.formats.weights import read_layer_weights

    layout, layers = read_layer_weights(detected.path)
    table = [
        {"name": name, "shapes": [list(a.shape) for a in arrays], "params": int(sum(a.size for a in arrays))}
        for name, arrays in layers
    ]
    return {"layout": layout, "layers": table, "params": {"total": sum(r["params"] for r in table)}}


def _savedmodel(detected: Detected) -> dict:
    from exporter.formats.savedmodel import describe_signatures

    return {
        "keras_metadata": bool(detected.details.get("keras_metadata")),
        "signatures": describe_signatures(detected.path),
    }


def check_loadable(path: Path, options) -> dict:
    """Try the real loader: `loadable`, the `reason` when not, the `repairs` it applied."""
    from exporter.errors import KexportError
    from exporter.model_io import load_model

    try:
        loaded = load_model(Path(path), options)
    except KexportError as error:
        return {"loadable": False, "reason": str(error), "exit_code": error.exit_code}
    from exporter.routes import route_reason

    convertible = loaded.model is not None
    return {
        "loadable": True,
        "convertible": convertible,
        "reason": None if convertible else (route_reason(loaded)
                                            or "a serving signature without a Keras model"),
        "route": loaded.route,
        "repairs": list(loaded.notes),
    }


def addressable_layers(path: Path, options) -> list[str]:
    """Every name `kexport slice` accepts: layers, `name:node` of shared layers, nested paths."""
    from exporter.errors import FormatError
    from exporter.layer_paths import addressable_names
    from exporter.model_io import load_model

    loaded = load_model(Path(path), options)
    if loaded.model is None:
        if loaded.keras3_refusal is not None:  # tf-keras's model alone: no Keras 3 layers
            raise loaded.keras3_refusal
        raise FormatError(f"{path} holds a serving signature, not Keras layers to address.")
    return addressable_names(loaded.model)


def format_table(info: dict) -> str:
    """Render an inspect result for people."""
    lines = [f"{info['path']}: {info['format']}"]
    if info.get("keras_version"):
        lines[0] += f", written by Keras {info['keras_version']} ({info.get('backend') or '?'})"
    for key in ("model_class", "layout"):
        if info.get(key):
            lines.append(f"{key.replace('_', ' ')}: {info[key]}")
    if info.get("code_layers"):  # up front: every command that loads the model refuses it
        lines.append(f"Lambda layers with Python code: {', '.join(info['code_layers'])}; loading "
                     "runs that code, so convert, slice, verify and bundle refuse the file "
                     "unless you pass --unsafe (only for files you trust).")
    for sig_name, sig in (info.get("signatures") or {}).items():
        lines.append(f"signature {sig_name}:")
        lines += [f"  in  {s['name']}: {s['dtype']} {s['shape']}" for s in sig["inputs"]]
        lines += [f"  out {s['name']}: {s['dtype']} {s['shape']}" for s in sig["outputs"]]
    for spec in info.get("inputs", []):
        lines.append(f"input  {spec['name']}: {spec.get('dtype')} {spec.get('shape')}")
    for spec in info.get("outputs", []):
        lines.append(f"output {spec['name']}")
    rows = info.get("layers") or []
    if rows and "class" in rows[0]:
        lines.append(f"{'layer':<28} {'class':<22} {'output shape':<20} {'params':>10}  trainable")
        for row in rows:
            shape = str(row["output_shape"]) if row["output_shape"] is not None else "unknown"
            lines.append(
                f"{row['name']:<28} {row['class']:<22} {shape:<20} {row['params']:>10}  "
                f"{'yes' if row['trainable'] else 'no'}"
            )
        if any(row["output_shape"] is None for row in rows):
            lines.append("unknown: the config does not record it, and without TensorFlow "
                         "kexport sizes only common layers fed by known shapes.")
    elif rows:
        lines += [f"{r['name']:<28} {r['shapes']}" for r in rows]
    if "loadable" in info:
        verdict = "yes" if info["loadable"] else f"no: {info['reason']}"
        lines.append(f"loadable: {verdict}")
        lines += [f"  repair {note}" for note in info.get("repairs") or []]
    if info.get("addressable_layers"):
        lines.append("addressable by slice: " + ", ".join(info["addressable_layers"]))
    params = info.get("params")
    if params:
        lines.append("params: " + ", ".join(f"{k} {v:,}" for k, v in params.items()))
    return "\n".join(lines)
