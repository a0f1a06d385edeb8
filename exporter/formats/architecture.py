"""JSON and YAML architectures, with the weights in a `<stem>.weights.h5` file beside them.

The YAML document holds the same structure as `to_json()`, written with the safe dumper and read
with a safe loader that also accepts old Keras's `!!python/tuple` tags (artifact_config.py).
"""

from __future__ import annotations

import json
from pathlib import Path

from exporter.artifact_config import dump_yaml
from exporter.formats.detection import Detected
from exporter.formats.model_from_config import build_with_weights
from exporter.model_types import LoadedModel, LoadOptions, SaveOptions
from exporter.runtime import quiet_stdout


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
