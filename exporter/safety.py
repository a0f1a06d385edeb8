"""Scan an artifact for code before any loader runs.

Keras 3 refuses Lambda bytecode only in safe mode and only for its own loaders; tf-keras applies
`safe_mode` to `.keras` files alone, so its HDF5 and SavedModel loaders would run marshalled
Python unchecked. The scan reads configs as data (see configs.py) and refuses code up front.
"""

from __future__ import annotations

import re

from exporter.configs import read_config
from exporter.errors import UnsafeArtifactError
from exporter.formats import Detected

# Serialized forms that carry Python code: Lambda layers, and lambdas passed as functions.
CODE_CLASSES = {"Lambda", "__lambda__"}
_METADATA_LAMBDA = re.compile(rb'"class_name":\s*"Lambda",\s*"config":\s*\{\s*"name":\s*"([^"]+)"')


def code_layers(config) -> list[str]:
    """Names of the layers (or objects) in a config that carry Python code."""
    found: list[str] = []

    def walk(value):
        if isinstance(value, dict):
            if value.get("class_name") in CODE_CLASSES:
                inner = value.get("config")
                found.append(inner.get("name", "?") if isinstance(inner, dict) else "?")
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(config)
    return found


def savedmodel_code_layers(detected: Detected) -> list[str]:
    """Lambda layers named in a Keras 2 SavedModel's keras_metadata.pb (raw JSON fragments)."""
    metadata = detected.path / "keras_metadata.pb"
    if not metadata.is_file():
        return []
    return [name.decode("utf-8", "replace") for name in _METADATA_LAMBDA.findall(metadata.read_bytes())]


def check_safe(detected: Detected, unsafe: bool) -> list[str]:
    """Raise UnsafeArtifactError if the artifact carries code and `unsafe` is False.

    Returns the names of the code-carrying layers (empty when there are none).
    """
    if detected.format == "savedmodel":
        names = savedmodel_code_layers(detected)
    else:
        names = code_layers(read_config(detected))
    if names and not unsafe:
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        raise UnsafeArtifactError(
            f"refused: {detected.path} contains {len(names)} Lambda layer(s) with Python code "
            f"({shown}); loading would run that code.",
            hint="Pass --unsafe if you trust where the file comes from.",
        )
    return names
