"""`.keras` archives written by tf.keras 2.13-2.15, the Keras 2 releases that wrote the zip format.

tf-keras reads them, but only when the weights file inside uses the layout it writes itself.
Archives written on Windows do not: h5py there stored each path as one group whose name holds
backslashes (`_layer_checkpoint_dependencies\\conv2d/vars/0`), 2.13/2.14 named the layer list
`_layer_checkpoint_dependencies` where tf-keras reads `layers`, and 2.13 stepped its per-class
counters by two (conv2d, conv2d_2, conv2d_4) where tf-keras expects conv2d, conv2d_1, conv2d_2.
A repaired copy is written to a temporary folder (the original is never changed): paths split at
the backslashes, the prefix renamed, and each class's groups renumbered in their stored order,
which is the order the layers were saved in. tf-keras's reading of that copy is the reference.
"""

from __future__ import annotations

import io
import re
import tempfile
import zipfile
from pathlib import Path

from exporter.formats.detection import Detected
from exporter.formats.failures import loader_errors
from exporter.legacy.keras2 import from_keras2_model
from exporter.model_types import LoadedModel, LoadOptions
from exporter.runtime import quiet_stdout, tf_keras_module

WEIGHTS_MEMBER = "model.weights.h5"
OLD_LAYERS_PREFIX = "_layer_checkpoint_dependencies"
# Training state a `compile=False` load never reads.
SKIPPED_GROUPS = ("optimizer", "metrics")
_COUNTER = re.compile(r"^(.*?)(?:_(\d+))?$")


def load_keras2_archive(detected: Detected, options: LoadOptions) -> LoadedModel:
    """Read a tf.keras 2.13-2.15 `.keras` through tf-keras (repaired if needed) into Keras 3."""
    notes: list[str] = []
    tf_keras = tf_keras_module()
    with tempfile.TemporaryDirectory(prefix="kexport-archive-") as folder:
        readable = repaired_archive(detected.path, Path(folder) / "repaired.keras", notes)
        with loader_errors(detected.path, options), quiet_stdout():
            source = tf_keras.models.load_model(
                str(readable), compile=False, safe_mode=not options.unsafe,
                custom_objects=options.custom_objects or None,
            )
    return from_keras2_model(source, detected.path, "keras", options, notes,
                             detected.keras_version)


def repaired_archive(path: Path, destination: Path, notes: list[str]) -> Path:
    """`path` itself when tf-keras reads its weights as they are, else a repaired copy."""
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    if WEIGHTS_MEMBER not in members:
        return path
    weights, renames = _repaired_weights(members[WEIGHTS_MEMBER])
    if not renames:
        return path
    notes.extend(renames)
    members[WEIGHTS_MEMBER] = weights
    with zipfile.ZipFile(destination, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return destination


def _repaired_weights(data: bytes) -> tuple[bytes, list[str]]:
    """The weights file with tf-keras's paths, and notes naming what changed (none: as is)."""
    import h5py

    # Every entry, groups included: tf-keras opens each layer's `vars` group even when empty.
    datasets: dict[str, object] = {}

    def collect(name, item) -> None:  # visititems stops at the first callback returning a value
        datasets[name] = item[()] if isinstance(item, h5py.Dataset) else None

    with h5py.File(io.BytesIO(data), "r") as source:
        source.visititems(collect)
    paths = {name: name.replace("\\", "/") for name in datasets}
    notes = []
    if any("\\" in name for name in datasets):
        notes.append("windows-archive: model.weights.h5: '\\' in group names -> '/'")
    if any(path.startswith(OLD_LAYERS_PREFIX + "/") for path in paths.values()):
        notes.append(f"archive-prefix: model.weights.h5: {OLD_LAYERS_PREFIX} -> layers")
        paths = {name: re.sub(f"^{OLD_LAYERS_PREFIX}/", "layers/", path)
                 for name, path in paths.items()}
    renumbered = _renumber_layers({p.split("/")[1] for p in paths.values()
                                   if p.startswith("layers/") and p.count("/") >= 2})
    if renumbered:
        pairs = ", ".join(f"{old} -> {new}" for old, new in sorted(renumbered.items()))
        notes.append(f"archive-renumbered: model.weights.h5: per-class order ({pairs})")
        paths = {name: _rename_layer(path, renumbered) for name, path in paths.items()}
    if not notes:
        return data, []
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as target:
        for name, value in datasets.items():
            if paths[name].split("/")[0] in SKIPPED_GROUPS:
                continue
            if value is None:
                target.require_group(paths[name])
            else:
                target.create_dataset(paths[name], data=value)
    return buffer.getvalue(), notes


def _renumber_layers(names: set[str]) -> dict[str, str]:
    """{stored name: tf-keras's name} for groups whose per-class counters skip numbers."""
    by_class: dict[str, list[tuple[int, str]]] = {}
    for name in names:
        stem, counter = _COUNTER.match(name).groups()
        by_class.setdefault(stem, []).append((int(counter or 0), name))
    renames = {}
    for stem, numbered in by_class.items():
        for index, (_, name) in enumerate(sorted(numbered)):
            expected = stem if index == 0 else f"{stem}_{index}"
            if expected != name:
                renames[name] = expected
    return renames


def _rename_layer(path: str, renames: dict[str, str]) -> str:
    parts = path.split("/")
    if len(parts) > 2 and parts[0] == "layers" and parts[1] in renames:
        parts[1] = renames[parts[1]]
    return "/".join(parts)
