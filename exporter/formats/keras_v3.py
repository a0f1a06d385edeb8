"""The Keras 3 `.keras` zip: config.json + model.weights.h5 + metadata.json."""

from __future__ import annotations

from pathlib import Path

from exporter.formats.detection import Detected
from exporter.formats.failures import loader_errors
from exporter.legacy.keras2_zip import load_keras2_archive
from exporter.model_tensors import loaded_keras3
from exporter.model_types import LoadedModel, LoadOptions
from exporter.runtime import keras_module, quiet_stdout


def load_keras3_file(path: Path, fmt: str, options: LoadOptions, version: str | None) -> LoadedModel:
    """Load a `.keras` or Keras 3 `.h5` file with Keras 3's own loader (no training state)."""
    keras = keras_module()
    with loader_errors(path, options), quiet_stdout():
        model = keras.models.load_model(
            str(path),
            compile=False,
            safe_mode=not options.unsafe,
            custom_objects=options.custom_objects or None,
        )
    return loaded_keras3(model, fmt, path, version)


def load(detected: Detected, options: LoadOptions) -> LoadedModel:
    if detected.keras_major == 2:  # tf.keras 2.13-2.15 wrote this zip: tf-keras reads it
        return load_keras2_archive(detected, options)
    return load_keras3_file(detected.path, "keras", options, detected.keras_version)


def save(model, path: Path, options) -> list[Path]:
    with quiet_stdout():
        model.save(str(path))
    return [path]
