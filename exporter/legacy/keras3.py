"""Repairs for legacy HDF5 files written by earlier Keras 3 releases that Keras 3.15 rejects.

Keras 3.10 recorded a merge layer's call with its tensors as separate positional arguments
(`{"args": [a, b]}`); the merge layers take one list (`Add()([a, b])`), and Keras 3.15 rebuilds
that node as `Add()(a, b)`, which fails with "too many positional arguments". The tensors are
put back into one list; nothing else changes. No other loader reads such a file, so the
repaired model is its own reference (Keras 3's legacy weights loader fills it from the file).
"""

from __future__ import annotations

import copy
from pathlib import Path

from exporter.formats.failures import loader_errors
from exporter.legacy.graph import MODEL_CLASSES
from exporter.model_tensors import loaded_keras3
from exporter.model_types import LoadedModel, LoadOptions
from exporter.runtime import keras_module, quiet_stdout

MERGE_CLASSES = {"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum",
                 "Concatenate", "Dot"}


def split_merge_nodes(config: dict) -> list[str]:
    """Names of the merge layers whose nodes hold their tensors as separate positional args."""
    inner = config.get("config") if isinstance(config, dict) else None
    layers = inner.get("layers", []) if isinstance(inner, dict) else []
    found = []
    for layer in layers if isinstance(layers, list) else []:
        if not isinstance(layer, dict):
            continue
        if layer.get("class_name") in MODEL_CLASSES:
            found += split_merge_nodes(layer)
        elif layer.get("class_name") in MERGE_CLASSES and any(
            isinstance(node, dict) and len(node.get("args") or []) > 1
            for node in layer.get("inbound_nodes") or []
        ):
            found.append(layer.get("name") or layer.get("config", {}).get("name", "?"))
    return found


def join_merge_args(config: dict) -> dict:
    """A copy of `config` whose merge nodes take their tensors as one list."""
    config = copy.deepcopy(config)
    inner = config.get("config", {})
    for layer in inner.get("layers", []):
        if layer.get("class_name") in MODEL_CLASSES:
            layer.update(join_merge_args(layer))
        elif layer.get("class_name") in MERGE_CLASSES:
            for node in layer.get("inbound_nodes") or []:
                if isinstance(node, dict) and len(node.get("args") or []) > 1:
                    node["args"] = [list(node["args"])]
    return config


def load_repaired_keras3_h5(path: Path, config: dict, options: LoadOptions,
                            version: str | None) -> LoadedModel:
    """Build a Keras 3 HDF5 file's repaired config and load the file's weights into it."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format, saving_utils

    names = split_merge_nodes(config)
    keras_module()
    with loader_errors(path, options), quiet_stdout():
        model = saving_utils.model_from_config(join_merge_args(config),
                                               custom_objects=options.custom_objects or None)
        with h5py.File(path, "r") as handle:
            legacy_h5_format.load_weights_from_hdf5_group(handle["model_weights"], model)
    loaded = loaded_keras3(model, "h5", path, version)
    loaded.notes = [f"keras3-merge-args: {name}: positional tensors -> one list (as Keras "
                    f"{version or '3'} called it)" for name in names]
    return loaded
