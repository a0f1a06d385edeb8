"""Read the model config an artifact carries, without TensorFlow, and YAML the safe way.

Safety scanning and `inspect` both start here: the config is plain data (JSON in an HDF5
attribute, `config.json` in a `.keras` zip, a JSON or YAML file, JSON fragments inside a
SavedModel's `keras_metadata.pb`), and nothing in it is deserialized.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import yaml

from exporter.errors import FormatError, UnsafeArtifactError
from exporter.formats import Detected

MAX_TEXT_BYTES = 256 * 1024 * 1024


class _TupleSafeLoader(yaml.SafeLoader):
    """SafeLoader that also builds the `!!python/tuple` tags old Keras `to_yaml()` wrote."""


_TupleSafeLoader.add_constructor(
    "tag:yaml.org,2002:python/tuple",
    lambda loader, node: tuple(loader.construct_sequence(node)),
)


def _refuse_python_tag(loader, tag_suffix, node):
    raise UnsafeArtifactError(
        f"refused: the YAML document carries the tag '!!python/{tag_suffix}' at line "
        f"{node.start_mark.line + 1}, which would construct Python objects.",
        hint="kexport reads YAML with a safe loader; only !!python/tuple is accepted.",
    )


_TupleSafeLoader.add_multi_constructor("tag:yaml.org,2002:python/", _refuse_python_tag)


def load_yaml(text: str):
    """Parse YAML safely: plain data and tuples, and nothing that constructs objects."""
    return yaml.load(text, Loader=_TupleSafeLoader)


def dump_yaml(data) -> str:
    """Write plain data as YAML with the safe dumper (tuples become lists)."""
    return yaml.safe_dump(_plain(data), sort_keys=False, default_flow_style=None)


def _plain(value):
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def parse_config_text(path: Path, fmt: str) -> dict:
    """Parse a JSON or YAML architecture file into a dict."""
    if path.stat().st_size > MAX_TEXT_BYTES:
        raise FormatError(f"{path} is too large for a model config ({path.stat().st_size} bytes).")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise FormatError(f"{path} is not UTF-8 text; expected a {fmt.upper()} model config.") from None
    try:
        data = json.loads(text) if fmt == "json" else load_yaml(text)
    except json.JSONDecodeError as error:
        raise FormatError(f"{path} is not valid JSON ({error.msg} at line {error.lineno}).") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise FormatError(f"{path} is not valid YAML ({getattr(error, 'problem', error)}{where}).") from None
    except RecursionError:
        raise FormatError(f"{path} is nested too deeply to be a model config.") from None
    return check_model_config(data, path)


def check_model_config(data, path: Path) -> dict:
    """Check the outer shape every Keras model config has: class_name and config."""
    if not isinstance(data, dict) or "class_name" not in data or "config" not in data:
        raise FormatError(
            f"{path} does not hold a Keras model config: expected a mapping with "
            "'class_name' and 'config' (what model.to_json() writes)."
        )
    return data


def read_config(detected: Detected) -> dict | None:
    """The model config an artifact carries, or None (weights files, plain SavedModels)."""
    path = detected.path
    if detected.format == "h5":
        import h5py

        with h5py.File(path, "r") as handle:
            raw = handle.attrs["model_config"]
        raw = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
        return check_model_config(_json(raw, path), path)
    if detected.format == "keras":
        with zipfile.ZipFile(path) as archive:
            raw = archive.read("config.json").decode("utf-8", "replace")
        return check_model_config(_json(raw, path), path)
    if detected.format in ("json", "yaml"):
        return parse_config_text(path, detected.format)
    return None


def _json(raw: str, path: Path):
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, RecursionError):
        raise FormatError(f"{path} carries a model config that is not valid JSON.") from None
