"""The format registry and content-based detection.

Every format is a module in this package with `load(path, options) -> LoadedModel` and
`save(model, path, options) -> list[Path]`. Detection reads bytes and HDF5 attributes, never
imports TensorFlow, and is the one place that decides what a path holds.
"""

from __future__ import annotations

import codecs
import importlib
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from exporter.errors import BadInputError, FormatError

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"
TFLITE_IDENTIFIER = b"TFL3"
MODEL_REPOSITORY_CONFIG = "models.config"  # a TF Serving repository's: many models, not a format


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
            from exporter.artifact_config import read_config

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


MAX_ATTR_BYTES = 64 * 1024 * 1024


def read_small_attr(handle, name: str, path: Path):
    """Read an HDF5 attribute after checking its stored size: a damaged header can claim
    gigabytes, and h5py would try to read them all."""
    size = handle.attrs.get_id(name).get_storage_size()
    if size > MAX_ATTR_BYTES:
        raise FormatError(f"{path}: attribute '{name}' claims {size:,} bytes; the file is corrupt.")
    return handle.attrs[name]


def _attr_text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):  # h5py keeps invalid UTF-8 as lone surrogates: make them printable
        value = value.encode("utf-8", "surrogateescape")
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _detect_hdf5(path: Path) -> Detected:
    import h5py

    from exporter.formats.hdf5check import check_global_heaps

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


MAX_CONFIG_MEMBER = 64 * 1024 * 1024  # config.json, metadata.json: text, never this large
MAX_MEMBER_RATIO = 1000  # deflate's own ceiling is ~1032: beyond, only a crafted bomb


def check_zip_members(archive: zipfile.ZipFile, path: Path) -> None:
    """Refuse entries that escape the archive's folder and sizes that only a zip bomb has,
    from the central directory alone (nothing is inflated)."""
    for info in archive.infolist():
        parts = info.filename.replace("\\", "/").split("/")
        if info.filename.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]:
            raise FormatError(f"refused: {path} has an entry '{info.filename}' that points outside "
                              "the archive; the archive is corrupt or hostile.")
        small = info.filename in ("config.json", "metadata.json")
        if (small and info.file_size > MAX_CONFIG_MEMBER) or (
            info.file_size > MAX_CONFIG_MEMBER
            and info.file_size > MAX_MEMBER_RATIO * max(info.compress_size, 1)
        ):
            raise FormatError(f"refused: {path} entry '{info.filename}' would inflate to "
                              f"{info.file_size:,} bytes from {info.compress_size:,} (a zip bomb).")


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
