"""Describe an artifact: format, writer, inputs, outputs, layers and parameter counts.

HDF5, `.keras`, JSON, YAML and weights files are read directly (h5py, zipfile, json, yaml):
no TensorFlow import, so `inspect` answers in a fraction of a second. A model file is summarized
from its config and the shapes of its stored weights (config_summary.py). SavedModels need
TensorFlow to read their signatures. `check_loadable` and `addressable_layers` run the real
loader, for `inspect --check` and `--layers`; `format_table` renders a result for people.
A TF Serving model repository holds many models, not one artifact: detection refuses it, and the
serving package describes kexport's bundles (serving/bundle_manifest.py).
"""

from __future__ import annotations

from pathlib import Path

from exporter.config_summary import describe_config, weight_placeholders
from exporter.formats.detection import Detected
from exporter.formats.failures import hdf5_errors


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

        info.update(_describe_savedmodel(detected))
        info["code_layers"] = savedmodel_code_layers(detected)
        return info
    if detected.format == "tflite":
        from exporter.formats.tflite import describe_signatures

        info["signatures"] = describe_signatures(detected.path)
        return info
    if detected.format == "weights":
        with hdf5_errors(detected.path):  # a damaged file fails as one line, not a traceback
            info.update(_describe_weights_file(detected))
        return info
    config = detected.config()
    with hdf5_errors(detected.path):
        weights = weight_placeholders(detected)
    info.update(describe_config(config, weights))
    from exporter.safety import code_layers

    info["code_layers"] = code_layers(config)
    return info


def _describe_weights_file(detected: Detected) -> dict:
    from exporter.formats.model_from_config import read_layer_weights

    layout, layers = read_layer_weights(detected.path)
    table = [
        {"name": name, "shapes": [list(a.shape) for a in arrays], "params": int(sum(a.size for a in arrays))}
        for name, arrays in layers
    ]
    return {"layout": layout, "layers": table, "params": {"total": sum(r["params"] for r in table)}}


def _describe_savedmodel(detected: Detected) -> dict:
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
