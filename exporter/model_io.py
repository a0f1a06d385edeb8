"""The two ends of every conversion: read any artifact into a Keras 3 model, write one out.

`load_model` runs the safety scan and the layer-class check before any loader, so nothing in
an artifact is deserialized unchecked; `save_model` writes one format, not atomically (callers
stage, verify and publish: exporter.convert).
"""

from __future__ import annotations

from pathlib import Path

from exporter.errors import BadInputError
from exporter.formats.detection import Detected, detect
from exporter.formats.failures import loader_errors, writer_errors
from exporter.formats.registry import check_format_name, format_module
from exporter.layer_classes import check_layer_classes
from exporter.model_types import LoadedModel, LoadOptions, SaveOptions
from exporter.safety import check_safe


def detect_source(path: Path, source_format: str | None = None) -> Detected:
    """Detect what `path` holds; `source_format` (--from) overrides the detected format."""
    detected = detect(path)
    if source_format:
        detected.format = check_format_name(source_format)
    return detected


def load_model(path: Path, options: LoadOptions | None = None) -> LoadedModel:
    """Read any supported artifact into a Keras 3 model, after the safety scan.

    Args:
        path: a model file or SavedModel folder.
        options: companion files (--weights, --architecture), custom objects, --unsafe.

    Returns:
        The loaded model with a `reference` that computes what the source computes.
    """
    options = options or LoadOptions()
    detected = detect_source(Path(path), options.source_format)
    check_safe(detected, options.unsafe)
    if detected.format in ("h5", "keras", "json", "yaml"):
        check_layer_classes(detected.config(), options.custom_objects)
    with loader_errors(detected.path):  # whatever a loader raises becomes one kexport error
        loaded = format_module(detected.format).load(detected, options)
    loaded.custom_objects = dict(options.custom_objects)
    return loaded


def save_model(model, path: Path, fmt: str, config_only: bool = False,
               keras_compat: int | None = None, notes: list[str] | None = None) -> list[Path]:
    """Write `model` to `path` in format `fmt` (not atomic: `convert` stages and verifies).

    `keras_compat=2` (h5 only) writes a file tf-keras loads; what the writer had to change is
    appended to `notes`.
    """
    if keras_compat not in (None, 2, 3):
        raise BadInputError(f"--keras-compat must be 2 or 3; got {keras_compat}.")
    if keras_compat == 2 and fmt != "h5":
        raise BadInputError("--keras-compat 2 applies to --to h5, the one format Keras 2 and 3 share.")
    options = SaveOptions(fmt, config_only, None if keras_compat == 3 else keras_compat)
    with writer_errors(fmt, Path(path)):
        written = format_module(fmt).save(model, Path(path), options)
    if notes is not None:
        notes.extend(options.notes)
    return written


def output_paths(destination: Path, fmt: str, config_only: bool) -> list[Path]:
    """Every path a save will create: config formats add `<stem>.weights.h5` beside them."""
    if fmt in ("json", "yaml") and not config_only:
        from exporter.formats.architecture import weights_sibling

        return [destination, weights_sibling(destination)]
    return [destination]
