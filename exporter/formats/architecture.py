"""JSON and YAML architectures, with the weights in a `<stem>.weights.h5` file beside them.

The YAML document holds the same structure as `to_json()`, written with the safe dumper and read
with a safe loader that also accepts old Keras's `!!python/tuple` tags (artifact_config.py).
"""

from __future__ import annotations

import json
from pathlib import Path

from exporter.artifact_config import dump_yaml
from exporter.formats import Detected
from exporter.formats.failures import loader_errors
from exporter.formats.keras_v3 import loaded_keras3
from exporter.legacy.translate import is_keras2_config
from exporter.model_types import LoadedModel, LoadOptions, SaveOptions
from exporter.runtime import keras_module, quiet_stdout


def weights_sibling(path: Path) -> Path:
    """Where a config file's weights live: `model.json` -> `model.weights.h5`."""
    return path.with_name(f"{path.stem}.weights.h5")


def load(detected: Detected, options: LoadOptions) -> LoadedModel:
    weights = options.weights
    notes = []
    if weights is None and weights_sibling(detected.path).is_file():
        weights = weights_sibling(detected.path)
        notes.append(f"weights: read from {weights} (beside the config)")
    loaded = build_with_weights(detected.config(), detected.path, detected.format, options, weights)
    loaded.notes[:0] = notes
    return loaded


def build_with_weights(config: dict, path: Path, fmt: str, options: LoadOptions, weights):
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
            from exporter.formats.weights import apply_weights

            loaded.weights_report = apply_weights(model, weights, options)
    loaded.weights_loaded = weights is not None
    return loaded


def save(model, path: Path, options: SaveOptions) -> list[Path]:
    config = json.loads(model.to_json())
    text = json.dumps(config, indent=2) if options.format == "json" else dump_yaml(config)
    path.write_text(text + "\n", encoding="utf-8")
    if options.config_only:
        return [path]
    weights = weights_sibling(path)
    with quiet_stdout():
        model.save_weights(str(weights))
    return [path, weights]
