"""Parse and check the model config an artifact carries, without TensorFlow; YAML the safe way.

Safety scanning and `inspect` both start here: the config is plain data (JSON in an HDF5
attribute, `config.json` in a `.keras` zip, a JSON or YAML file, JSON fragments inside a
SavedModel's `keras_metadata.pb`), and nothing in it is deserialized. Which of those an artifact
holds, and reading it out, is detection's job (formats/detection.py: `Detected.config()`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from exporter.errors import FormatError, UnsafeArtifactError

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
    """Check what every reader of a config relies on, so hostile data fails here, named.

    The outer shape (class_name and config), the layer list's entry types, nesting depth, and
    sizes: a dimension of billions would make Keras allocate until the machine runs out of memory
    before any shape check of its own could run.
    """
    if not isinstance(data, dict) or "class_name" not in data or "config" not in data:
        raise FormatError(
            f"{path} does not hold a Keras model config: expected a mapping with "
            "'class_name' and 'config' (what model.to_json() writes)."
        )
    _check_sizes(data, path)
    inner = data["config"]
    if not isinstance(data["class_name"], str) or not isinstance(inner, (dict, list)):
        raise FormatError(f"{path}: the model config's class_name must be text and its config "
                          "a mapping (or a list of layers).")
    layers = inner.get("layers", []) if isinstance(inner, dict) else inner
    if not isinstance(layers, list):
        raise FormatError(f"{path}: the model config's 'layers' must be a list, "
                          f"got {type(layers).__name__}.")
    for index, layer in enumerate(layers):
        _check_layer(layer, index, path)
    return data


# Larger than any real layer dimension; Keras would try to allocate it before checking anything.
MAX_DIM = 2**24
MAX_ELEMENTS = 2**28  # per example, across a shape's dimensions
MAX_DEPTH = 100
# Integers that are identifiers or seeds, not sizes (shared_object_id is an id() of the writer).
_NOT_A_SIZE = re.compile(r"seed|(^|_)id$", re.IGNORECASE)
_SHAPE_KEYS = ("batch_shape", "batch_input_shape", "shape", "input_shape", "target_shape")


def _check_layer(layer, index: int, path: Path) -> None:
    where = f"{path}: layer #{index}"
    if not isinstance(layer, dict) or not isinstance(layer.get("class_name"), str):
        raise FormatError(f"{where} is not a mapping with a class_name text (got "
                          f"{type(layer).__name__}).")
    config = layer.get("config", {})
    if not isinstance(config, dict):
        raise FormatError(f"{where} ({layer['class_name']}): its config must be a mapping, "
                          f"got {type(config).__name__}.")
    name = config.get("name") or layer.get("name")
    if not isinstance(name, str):  # every Keras version writes one; readers key layers on it
        raise FormatError(f"{where} ({layer['class_name']}): its name must be text, got {name!r}.")
    for key in _SHAPE_KEYS:
        shape = config.get(key)
        if shape is not None and not (
            isinstance(shape, (list, tuple))
            and all(d is None or (isinstance(d, int) and not isinstance(d, bool)) for d in shape)
        ):
            raise FormatError(f"{where} ('{name}'): {key} must be a list of sizes or nulls, "
                              f"got {str(shape)[:60]}.")
    if not isinstance(layer.get("inbound_nodes", []), list):
        raise FormatError(f"{where} ('{name}'): inbound_nodes must be a list.")


def _check_sizes(data, path: Path) -> None:
    """Refuse nesting deeper than MAX_DEPTH and integers no real model dimension reaches.

    Iterative on purpose: a recursive walk would itself hit Python's recursion limit.
    """
    stack = [(data, 0, "")]
    while stack:
        value, depth, key = stack.pop()
        if depth > MAX_DEPTH:
            raise FormatError(f"{path}: the model config is nested more than {MAX_DEPTH} levels "
                              "deep; no Keras model is.")
        if isinstance(value, dict):
            stack.extend((item, depth + 1, str(name)) for name, item in value.items())
        elif isinstance(value, (list, tuple)):
            if key in _SHAPE_KEYS and _elements(value) > MAX_ELEMENTS:
                raise FormatError(f"{path}: {key} {str(value)[:60]} has more than "
                                  f"{MAX_ELEMENTS:,} elements per example.")
            stack.extend((item, depth + 1, key) for item in value)
        elif (isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_DIM
              and not _NOT_A_SIZE.search(key)):
            raise FormatError(f"{path}: '{key}' is {value}, beyond the largest size kexport "
                              f"accepts ({MAX_DIM:,}); the config is corrupt or hostile.")


def _elements(shape) -> int:
    total = 1
    for dim in shape:
        if isinstance(dim, int) and not isinstance(dim, bool) and dim > 0:
            total *= dim
    return total
