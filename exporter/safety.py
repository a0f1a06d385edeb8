"""Scan an artifact for code before any loader runs.

Keras 3 refuses Lambda bytecode only in safe mode and only for its own loaders; tf-keras applies
`safe_mode` to `.keras` files alone, so its HDF5 and SavedModel loaders would run marshalled
Python unchecked. The scan reads configs as data (see artifact_config.py) and refuses code up front.
"""

from __future__ import annotations

import re

from exporter.errors import UnsafeArtifactError
from exporter.formats.detection import Detected

# Serialized forms that carry Python code: Lambda layers, and lambdas passed as functions.
CODE_CLASSES = {"Lambda", "__lambda__"}
_METADATA_LAMBDA = re.compile(rb'"class_name":\s*"Lambda",\s*"config":\s*\{\s*"name":\s*"([^"]+)"')


def code_layers(config) -> list[str]:
    """Names of the layers (or objects) in a config that carry Python code.

    Iterative, and type-checked at every step: the config is untrusted data (a class_name may
    be a list, nesting may be deep), and the scan must finish where a loader would crash.
    """
    found: list[str] = []
    stack = [config]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            class_name = value.get("class_name")
            if isinstance(class_name, str) and class_name in CODE_CLASSES:
                inner = value.get("config")
                name = inner.get("name", "?") if isinstance(inner, dict) else "?"
                found.append(name if isinstance(name, str) else "?")
                continue  # the function a Lambda holds is that same layer's code
            stack.extend(reversed(list(value.values())))
        elif isinstance(value, list):
            stack.extend(reversed(value))
    return list(dict.fromkeys(found))  # a shared layer's config can appear more than once


def savedmodel_code_layers(detected: Detected) -> list[str]:
    """Lambda layers named in a Keras 2 SavedModel's Keras metadata (raw JSON fragments): in
    keras_metadata.pb, or before it existed (TF 2.0-2.4) in saved_model.pb's object graph,
    which tf-keras revives models from."""
    metadata = detected.path / "keras_metadata.pb"
    if not metadata.is_file():
        metadata = detected.path / "saved_model.pb"
    if not metadata.is_file():
        return []
    found = _METADATA_LAMBDA.findall(metadata.read_bytes())  # each layer appears several times
    return list(dict.fromkeys(name.decode("utf-8", "replace") for name in found))


def check_safe(detected: Detected, unsafe: bool) -> list[str]:
    """Raise UnsafeArtifactError if the artifact carries code and `unsafe` is False.

    Returns the names of the code-carrying layers (empty when there are none).
    """
    if detected.format == "savedmodel":
        names = savedmodel_code_layers(detected)
    else:
        names = code_layers(detected.config())
    if names and not unsafe:
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        raise UnsafeArtifactError(
            f"refused: {detected.path} contains {len(names)} Lambda layer(s) with Python code "
            f"({shown}); loading would run that code.",
            hint="Pass --unsafe if you trust where the file comes from.",
        )
    return names
