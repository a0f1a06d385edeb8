"""The format registry: each format's name, what it holds and the module that reads and writes it.

Every format is a module in this package with `load(detected, options) -> LoadedModel` and
`save(model, path, options) -> list[Path]`; `format_module` imports the one a name asks for.
What a path holds is decided from its content, in detection.py.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from exporter.errors import BadInputError


@dataclass(frozen=True)
class FormatSpec:
    """What a format is called, what it holds and which module reads and writes it."""

    name: str
    module: str
    holds_architecture: bool
    holds_weights: bool
    description: str
    source: bool = True  # False: written, inspected and verified, never converted from


FORMATS: dict[str, FormatSpec] = {
    spec.name: spec
    for spec in (
        FormatSpec("h5", "h5", True, True, "legacy full-model HDF5 (model.save('x.h5'))"),
        FormatSpec("keras", "keras_v3", True, True, "Keras 3 zip archive (.keras)"),
        FormatSpec("savedmodel", "savedmodel", True, True, "TensorFlow SavedModel directory"),
        FormatSpec("json", "architecture", True, False, "architecture as JSON (model.to_json())"),
        FormatSpec("yaml", "architecture", True, False, "architecture as YAML (same structure as JSON)"),
        FormatSpec("weights", "weights", False, True, "weights only (.weights.h5 or Keras 2 .h5)"),
        FormatSpec("tflite", "tflite", True, True, "TensorFlow Lite flatbuffer (.tflite), "
                   "converted from the SavedModel; save only", source=False),
    )
}


def format_module(name: str):
    """Import the module that reads and writes format `name`."""
    return importlib.import_module(f"exporter.formats.{FORMATS[name].module}")


def check_format_name(name: str) -> str:
    """Return `name` if it is a known format, else raise with the list of known ones."""
    if name not in FORMATS:
        raise BadInputError(
            f"unknown format '{name}'; expected one of: {', '.join(FORMATS)}."
        )
    return name


def format_for_destination(path: Path) -> str:
    """Guess the format a destination path asks for from its name (`--to` overrides)."""
    name = path.name.lower()
    if name.endswith(".weights.h5"):
        return "weights"
    for suffixes, fmt in (
        ((".h5", ".hdf5"), "h5"),
        ((".keras",), "keras"),
        ((".json",), "json"),
        ((".yaml", ".yml"), "yaml"),
        ((".tflite",), "tflite"),
    ):
        if name.endswith(suffixes):
            return fmt
    if not path.suffix:
        return "savedmodel"
    raise BadInputError(
        f"cannot tell the output format from the name '{path.name}'.",
        hint=f"Pass --to with one of: {', '.join(FORMATS)}.",
    )
