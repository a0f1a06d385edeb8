"""`convert --to h5 --keras-compat 2`: an HDF5 that tf-keras (Keras 2) loads.

For teams whose inference stack is older than their training stack. The Keras 3 config is
translated back (Keras 3 node dicts into Keras 2 node lists, input `batch_shape`, dtype policies,
nested Sequential node numbering), tf-keras builds it, the weights are copied layer by layer, and
tf-keras writes the file itself. Arguments Keras 2 does not know are dropped only when they hold
Keras 3's default; any other value is refused, since Keras 2 could not compute it.
"""

from __future__ import annotations

import copy
import inspect
import json
import re
from pathlib import Path

from exporter.errors import BadInputError
from exporter.legacy.translate import (
    MODEL_CLASSES,
    NO_DEFAULT,
    TRAINING_ONLY_SUFFIXES,
    WRAPPER_KEYS,
    layer_default,
    layer_objects,
    same_value,
)
from exporter.runtime import keras_module, quiet_stdout, tf_keras_module

_NOT_UNDERSTOOD = re.compile(r"Keyword argument not understood:',\s*'(\w+)'")
_UNRECOGNIZED = re.compile(r"Unrecognized keyword arguments[^{]*\{(.*?)\}", re.DOTALL)
# Keras 3 bookkeeping Keras 2 neither writes nor reads.
KERAS3_ONLY_KEYS = ("module", "registered_name", "build_config", "compile_config")
MAX_REPAIRS = 50


def to_keras2_config(model, notes: list[str]) -> dict:
    """The model's Keras 3 config, rewritten in Keras 2's conventions."""
    config = json.loads(model.to_json())
    _strip(config)
    for layer in list(layer_objects(config)):
        _translate_layer(layer)
    offsets = _sequential_offsets(config)
    for scope in [config, *[obj for obj in layer_objects(config) if obj.get("class_name") in MODEL_CLASSES]]:
        inner = scope.get("config", {})
        for layer in inner.get("layers", []) if isinstance(inner, dict) else []:
            layer["inbound_nodes"] = [_node(node, offsets) for node in layer.get("inbound_nodes", [])]
        for key in ("input_layers", "output_layers"):
            if key in inner:
                inner[key] = _shift(inner[key], offsets)
    for layer in list(layer_objects(config)):
        _fit_arguments(layer, notes)
    return config


def _strip(value) -> None:
    if isinstance(value, dict):
        for key in KERAS3_ONLY_KEYS:
            value.pop(key, None)
        for item in value.values():
            _strip(item)
    elif isinstance(value, list):
        for item in value:
            _strip(item)


def _translate_layer(layer: dict) -> None:
    cfg = layer.get("config")
    if not isinstance(cfg, dict):
        return
    for key, value in cfg.items():
        if key.endswith(TRAINING_ONLY_SUFFIXES) and isinstance(value, dict):
            _keep_keras2_arguments(key, value)
    if layer.get("class_name") == "MultiHeadAttention":
        for key in ("query_shape", "key_shape", "value_shape"):
            cfg.setdefault(key, None)  # Keras 2 reads them (None: build on the first call)
    if isinstance(cfg.get("dtype"), dict):  # a DTypePolicy object: Keras 2 takes its name
        cfg["dtype"] = cfg["dtype"].get("config", {}).get("name", "float32")
    if layer.get("class_name") == "InputLayer" and "batch_shape" in cfg:
        cfg["batch_input_shape"] = cfg.pop("batch_shape")
    layer.setdefault("name", cfg.get("name"))


def _keep_keras2_arguments(kind: str, obj: dict) -> None:
    """Initializers, regularizers and constraints only shape training; Keras 3 gave some new
    arguments (`input_axes`, ...) that Keras 2's classes refuse: keep what Keras 2 takes."""
    module = getattr(tf_keras_module(), kind.rsplit("_", 1)[-1] + "s", None)
    cls = getattr(module, str(obj.get("class_name")), None)
    if cls is None or not isinstance(obj.get("config"), dict):
        return
    accepted = set()
    for klass in inspect.getmro(cls):
        init = klass.__dict__.get("__init__")
        if init is not None:
            accepted |= set(inspect.signature(init).parameters)
    obj["config"] = {k: v for k, v in obj["config"].items() if k in accepted}


def _sequential_offsets(config: dict) -> dict[str, int]:
    """Keras 2 gives a Sequential that starts with an input layer a node of its own."""
    offsets = {}
    for layer in layer_objects(config):
        inner = layer.get("config")
        if layer.get("class_name") == "Sequential" and isinstance(inner, dict):
            first = (inner.get("layers") or [{}])[0]
            offsets[inner.get("name")] = 1 if first.get("class_name") == "InputLayer" else 0
    return offsets


def _history(value) -> list | None:
    if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
        return value.get("config", {}).get("keras_history")
    return None


def _ref(history: list, offsets: dict[str, int]) -> list:
    return [history[0], history[1] + offsets.get(history[0], 0), history[2]]


def _kwargs(value, offsets):
    history = _history(value)
    if history:
        return _ref(history, offsets)
    if isinstance(value, dict):
        return {key: _kwargs(item, offsets) for key, item in value.items()}
    if isinstance(value, list):
        return [_kwargs(item, offsets) for item in value]
    return value


def _node(node, offsets: dict[str, int]):
    if not isinstance(node, dict):
        return node
    args = node.get("args", [])
    first = args[0] if args else []
    tensors = first if isinstance(first, list) else [first]
    kwargs = _kwargs(node.get("kwargs", {}), offsets)
    kwargs = {k: v for k, v in kwargs.items() if not (k == "mask" and v is None)}
    refs = [_ref(_history(t), offsets) + [kwargs] for t in tensors if _history(t)]
    if len(refs) != len(tensors) or len(args) > 1:
        raise BadInputError("a layer call passes non-tensor positional arguments, which a Keras 2 "
                            "config cannot express.")
    return refs


def _shift(refs, offsets):
    if isinstance(refs, list) and len(refs) == 3 and isinstance(refs[0], str):
        return [refs[0], refs[1] + offsets.get(refs[0], 0), refs[2]]
    return [_shift(ref, offsets) for ref in refs] if isinstance(refs, list) else refs


def _fit_arguments(layer: dict, notes: list[str]) -> None:
    """Build the layer alone with tf-keras; drop Keras 3 arguments it refuses, at their defaults."""
    class_name, cfg = layer.get("class_name"), layer.get("config")
    if class_name in MODEL_CLASSES or not isinstance(cfg, dict):
        return
    tf_keras = tf_keras_module()
    for _ in range(MAX_REPAIRS):
        probe = {"class_name": class_name, "config": copy.deepcopy(cfg)}
        for key in WRAPPER_KEYS:  # a wrapped layer is fitted on its own
            if isinstance(cfg.get(key), dict):
                probe["config"][key] = copy.deepcopy(cfg[key])
        try:
            with quiet_stdout():
                tf_keras.layers.deserialize(probe)
            return
        except (TypeError, ValueError) as error:
            keys = _refused_keys(str(error))
            if not keys:
                raise BadInputError(f"layer '{cfg.get('name')}' ({class_name}) cannot be written "
                                    f"for Keras 2: {str(error).splitlines()[0]}") from None
            for key in keys:
                _drop_if_default(class_name, cfg, key, notes)
    raise BadInputError(f"layer '{cfg.get('name')}' could not be fitted to Keras 2.")


def _refused_keys(message: str) -> list[str]:
    match = _NOT_UNDERSTOOD.search(message)
    if match:
        return [match.group(1)]
    match = _UNRECOGNIZED.search(message)
    return re.findall(r"'(\w+)':", match.group(1)) if match else []


def _drop_if_default(class_name: str, cfg: dict, key: str, notes: list[str]) -> None:
    if key not in cfg:
        raise BadInputError(f"Keras 2 refuses argument '{key}' of layer '{cfg.get('name')}'.")
    default = _keras3_default(class_name, cfg, key)
    if default is NO_DEFAULT or not same_value(cfg[key], default):
        raise BadInputError(
            f"layer '{cfg.get('name')}' ({class_name}) sets {key}={cfg[key]!r}, which Keras 2 "
            "cannot express; it cannot be written for Keras 2 without changing what it computes."
        )
    notes.append(f"keras3-only-argument: {cfg.get('name')}: {key}={cfg.pop(key)!r} dropped")


def _keras3_default(class_name: str, cfg: dict, key: str):
    """What Keras 3 sets `key` to when it is not given: build the layer without it and look
    (some defaults live in `**kwargs`, invisible to the signature)."""
    cls = getattr(keras_module().layers, class_name, None)
    try:
        with quiet_stdout():
            built = cls.from_config({k: v for k, v in cfg.items() if k != key})
        return built.get_config().get(key, NO_DEFAULT)
    except Exception:  # noqa: BLE001 - fall back to the signature's default
        return layer_default(keras_module().layers, class_name, key)


def save_keras2_h5(model, path: Path) -> list[str]:
    """Write `model` as a Keras 2 HDF5 through tf-keras; returns the notes of what changed."""
    from exporter.legacy.keras2 import copy_weights

    notes: list[str] = []
    config = to_keras2_config(model, notes)
    tf_keras = tf_keras_module()
    with quiet_stdout():
        target = tf_keras.models.model_from_json(json.dumps(config))
        copy_weights(model, target)
        target.save(str(path), save_format="h5")
    return notes
