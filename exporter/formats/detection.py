"""Content-based detection: what a path holds, decided from its bytes, never from its name alone.

Detection reads magic bytes, HDF5 attributes, zip entries and text, never imports TensorFlow,
and is the one place that decides what a path holds; `Detected.config()` reads the model config
the artifact carries (as data: nothing in it is deserialized).
"""

from __future__ import annotations

import codecs
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from exporter.artifact_config import check_model_config, parse_config_text
from exporter.errors import BadInputError, FormatError
from exporter.formats.failures import first_line, hdf5_errors
from exporter.formats.hdf5check import check_global_heaps, read_small_attr
from exporter.formats.zipcheck import check_zip_members

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"
TFLITE_IDENTIFIER = b"TFL3"
MODEL_REPOSITORY_CONFIG = "models.config"  # a TF Serving repository's: many models, not a format


_NO_CONFIG = object()


@dataclass
class Detected:
    """What a path holds, read from its content without importing TensorFlow."""

    path: Path
    format: str
    keras_version: str | None = None
    backend: str | None = None
    details: dict = field(default_factory=dict)
    _config: object = field(default=None, repr=False, compare=False)

    def config(self) -> dict | None:
        """The model config the artifact carries (None for weights files and plain
        SavedModels), read and checked once: the safety scan, the class check and the loader
        all ask for it."""
        if self._config is None:
            config = read_config(self)
            self._config = _NO_CONFIG if config is None else config
        return None if self._config is _NO_CONFIG else self._config

    @property
    def keras_major(self) -> int | None:
        """1, 2 or 3 when the writer's Keras version is known."""
        if not self.keras_version:
            return None
        head = self.keras_version.split(".")[0]
        return int(head) if head.isdigit() else None


def detect(path: Path) -> Detected:
    """Decide what `path` holds from its content: HDF5 attributes, zip entries, text, folders."""
    if not path.exists():
        raise BadInputError(f"no such file or directory: {path}")
    if path.is_dir():
        return _detect_directory(path)
    size = path.stat().st_size
    if size == 0:
        raise FormatError(f"{path} is empty (0 bytes); expected a Keras model file.")
    with path.open("rb") as stream:
        head = stream.read(8)
    if head == HDF5_MAGIC:
        return _detect_hdf5(path)
    if head.startswith(ZIP_MAGIC):
        return _detect_zip(path)
    if head[4:8] == TFLITE_IDENTIFIER:  # flatbuffer file identifier (exporter/formats/tflite.py)
        return Detected(path, "tflite")
    if head[:1] == PICKLE_PROTO and head[1:2] in PICKLE_PROTOCOLS:
        _refuse_pickle(path, head)
    return _detect_text(path)


PICKLE_PROTO = b"\x80"  # pickle's PROTO opcode, then the protocol number
PICKLE_PROTOCOLS = (b"\x02", b"\x03", b"\x04", b"\x05")


def _refuse_pickle(path: Path, head: bytes) -> None:
    """A pickle is refused whatever it wraps, and never opened: `zipfile` would find a `.keras`
    archive embedded in it (Keras's `pickle_utils` writes one), but unpickling runs code."""
    from exporter.errors import UnsafeArtifactError

    raise UnsafeArtifactError(
        f"refused: {path} is a Python pickle (first bytes {head[:2].hex(' ')}), not a .keras "
        "zip archive; loading a pickle runs arbitrary code, so kexport never opens one "
        "(--unsafe does not change this).",
        hint="Re-save the model where it was trained, with model.save('model.keras').",
    )


def _detect_directory(path: Path) -> Detected:
    if (path / MODEL_REPOSITORY_CONFIG).is_file():
        raise FormatError(
            f"{path} is a TensorFlow Serving model repository (it has {MODEL_REPOSITORY_CONFIG}), "
            f"which holds many models; name one version folder instead, e.g. {path}/models/NAME/1."
        )
    _refuse_escaping_links(path)
    if (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file():
        has_keras = (path / "keras_metadata.pb").is_file()
        return Detected(path, "savedmodel", details={"keras_metadata": has_keras})
    raise FormatError(
        f"directory {path} is not a SavedModel: it has no saved_model.pb.",
        hint="Point at the SavedModel folder itself (the one holding saved_model.pb and variables/).",
    )


MAX_FOLDER_ENTRIES = 100_000


def _refuse_escaping_links(path: Path) -> None:
    """Refuse symlinks that lead out of a model folder (or nowhere): TensorFlow would read, and
    `bundle` would copy, whatever they point at. Links are not followed, so loops cannot hang."""
    root = path.resolve()
    seen = 0
    for folder, dirs, files in os.walk(path, followlinks=False):
        seen += len(dirs) + len(files)
        if seen > MAX_FOLDER_ENTRIES:
            raise FormatError(f"{path} holds more than {MAX_FOLDER_ENTRIES:,} entries; "
                              "not a model folder.")
        for name in dirs + files:
            entry = Path(folder) / name
            if not entry.is_symlink():
                continue
            try:
                target = entry.resolve(strict=True)
            except (OSError, RuntimeError):
                target = None
            if target is None or not target.is_relative_to(root):
                raise FormatError(
                    f"refused: {entry} is a symbolic link to "
                    f"{os.readlink(entry)!s}, outside {path} (or to nothing).",
                    hint="Copy the real files into the model folder.",
                )


def _attr_text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):  # h5py keeps invalid UTF-8 as lone surrogates: make them printable
        value = value.encode("utf-8", "surrogateescape")
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _detect_hdf5(path: Path) -> Detected:
    import h5py

    check_global_heaps(path)  # before h5py: a damaged heap can hang the HDF5 library
    try:
        with h5py.File(path, "r") as handle:
            names = set(handle.attrs.keys())
            attrs = {name: read_small_attr(handle, name, path)
                     for name in ("keras_version", "backend") if name in names}
            attrs.update({name: True for name in ("model_config", "layer_names") if name in names})
            keys = list(handle.keys())
    # h5py raises whichever of these the damaged structure leads to.
    except (OSError, RuntimeError, KeyError, ValueError, TypeError) as error:
        raise FormatError(
            f"{path} starts like HDF5 but cannot be read ({str(error).splitlines()[0]}); "
            "the file is truncated or corrupt."
        ) from None
    version = _attr_text(attrs.get("keras_version"))
    backend = _attr_text(attrs.get("backend"))
    if "model_config" in attrs:
        return Detected(path, "h5", version, backend)
    if "layer_names" in attrs:  # Keras 1/2 `save_weights('x.h5')`: one group per layer
        return Detected(path, "weights", version, backend, details={"layout": "keras2"})
    if {"layers", "vars"} & set(keys):  # Keras 3 `.weights.h5`: object tree of `vars` groups
        return Detected(path, "weights", version, backend, details={"layout": "keras3"})
    raise FormatError(
        f"{path} is an HDF5 file but holds neither a Keras model nor Keras weights "
        f"(top-level entries: {', '.join(keys[:8]) or 'none'}).",
        hint="A model file has a 'model_config' attribute; a weights file has 'layer_names'.",
    )


def _detect_zip(path: Path) -> Detected:
    try:
        with zipfile.ZipFile(path) as archive:
            check_zip_members(archive, path)
            names = set(archive.namelist())
            metadata = json.loads(archive.read("metadata.json")) if "metadata.json" in names else {}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, RecursionError) as error:
        raise FormatError(f"{path} is a damaged zip archive ({error}).") from None
    if "config.json" not in names:
        raise FormatError(
            f"{path} is a zip archive but not a .keras model: it has no config.json."
        )
    version = metadata.get("keras_version") if isinstance(metadata, dict) else None
    return Detected(path, "keras", version, "tensorflow")


TEXT_SAMPLE = 4096  # bytes read to tell JSON from YAML


def _detect_text(path: Path) -> Detected:
    with path.open("rb") as stream:
        sample = stream.read(TEXT_SAMPLE)
        at_end = not stream.read(1)
    # An incremental decoder keeps a multi-byte character cut by the end of the sample for
    # later instead of failing on it; at the end of the file a cut character is an error.
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        text = decoder.decode(sample, final=at_end)
    except UnicodeDecodeError:
        raise FormatError(
            f"{path} is not a Keras artifact: its content is not HDF5, zip, JSON or YAML "
            f"(first bytes {sample[:8]!r})."
        ) from None
    stripped = text.lstrip()
    name = path.name.lower()
    if stripped.startswith("{"):
        return Detected(path, "json")
    if name.endswith((".yaml", ".yml")) or stripped.startswith(("class_name", "---", "backend")):
        return Detected(path, "yaml")
    raise FormatError(
        f"{path} is not a Keras artifact: text that is neither a JSON nor a YAML model config."
    )


def read_config(detected: Detected) -> dict | None:
    """The model config an artifact carries, or None (weights files, plain SavedModels)."""
    path = detected.path
    if detected.format == "h5":
        with hdf5_errors(path):
            import h5py

            with h5py.File(path, "r") as handle:
                raw = read_small_attr(handle, "model_config", path)
        # h5py hands back invalid UTF-8 as lone surrogates, which no output stream can print.
        raw = raw if isinstance(raw, bytes) else str(raw).encode("utf-8", "surrogateescape")
        return check_model_config(_json(raw.decode("utf-8", "replace"), path), path)
    if detected.format == "keras":
        try:
            with zipfile.ZipFile(path) as archive:
                check_zip_members(archive, path)
                raw = archive.read("config.json").decode("utf-8", "replace")
        except (zipfile.BadZipFile, OSError, KeyError, EOFError, ValueError) as error:
            raise FormatError(f"{path} is a damaged .keras archive ({first_line(error)}).") from None
        return check_model_config(_json(raw, path), path)
    if detected.format in ("json", "yaml"):
        return parse_config_text(path, detected.format)
    return None


def _json(raw: str, path: Path):
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, RecursionError):
        raise FormatError(f"{path} carries a model config that is not valid JSON.") from None
