"""Weights-only files: Keras 3 `.weights.h5` and Keras 2 `save_weights('x.h5')` HDF5.

A weights file holds no architecture; it is read against one given with `--architecture`
(model_from_config.py builds that architecture and checks and loads the weights into it).
"""

from __future__ import annotations

from pathlib import Path

from exporter.errors import BadInputError
from exporter.formats.detection import Detected, detect
from exporter.formats.model_from_config import build_with_weights
from exporter.layer_classes import check_layer_classes
from exporter.model_types import LoadedModel, LoadOptions, SaveOptions
from exporter.runtime import quiet_stdout
from exporter.safety import check_safe


def load(detected: Detected, options: LoadOptions) -> LoadedModel:
    if options.architecture is None:
        raise BadInputError(
            f"{detected.path} holds weights only, no architecture.",
            hint="Pass --architecture FILE (a json, yaml, h5 or keras file of the same model).",
        )
    architecture = detect(options.architecture)
    if architecture.format not in ("json", "yaml", "h5", "keras"):
        raise BadInputError(
            f"--architecture {options.architecture} is a {architecture.format}; "
            "expected a json, yaml, h5 or keras file."
        )
    check_safe(architecture, options.unsafe)
    check_layer_classes(architecture.config(), options.custom_objects)
    loaded = build_with_weights(
        architecture.config(), detected.path, "weights", options, detected.path
    )
    loaded.keras_version = detected.keras_version or loaded.keras_version
    return loaded


def save(model, path: Path, options: SaveOptions) -> list[Path]:
    if not path.name.endswith(".weights.h5"):
        raise BadInputError(
            f"a weights file must be named '*.weights.h5' (Keras 3 requires it); got '{path.name}'."
        )
    with quiet_stdout():
        model.save_weights(str(path))
    return [path]
