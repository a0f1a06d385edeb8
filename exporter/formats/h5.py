"""Legacy full-model HDF5: read what Keras 1, 2 and 3 wrote; write Keras 3 legacy HDF5."""

from __future__ import annotations

from pathlib import Path

from exporter.formats.detection import Detected
from exporter.formats.keras_v3 import load_keras3_file
from exporter.legacy.translate import is_keras2_config
from exporter.model_types import LoadedModel, LoadOptions
from exporter.runtime import quiet_stdout


def load(detected: Detected, options: LoadOptions) -> LoadedModel:
    config = detected.config()
    if detected.keras_major == 3 or (detected.keras_major is None and not is_keras2_config(config)):
        from exporter.legacy.keras3 import load_repaired_keras3_h5, split_merge_nodes

        if split_merge_nodes(config):  # an earlier Keras 3 wrote nodes Keras 3.15 cannot call
            return load_repaired_keras3_h5(detected.path, config, options, detected.keras_version)
        return load_keras3_file(detected.path, "h5", options, detected.keras_version)
    from exporter.legacy.keras2 import load_keras2_config

    # The file's weights go into tf-keras's build of its config: that reading is the reference.
    return load_keras2_config(config, detected.path, "h5", options, weights=detected.path,
                              keras_version=detected.keras_version)


def save(model, path: Path, options) -> list[Path]:
    if options.keras_compat == 2:
        from exporter.legacy.keras2_writer import save_keras2_h5

        options.notes.extend(save_keras2_h5(model, path))
        return [path]
    with quiet_stdout():
        model.save(str(path))
    return [path]
