"""Translate a Keras 2 model config (tf.keras 2.x, standalone Keras 2) into one Keras 3 builds.

Keras 3 reads Keras 2 configs only for the simplest models. What breaks, and what this module does:
- Node references are lists (`[layer, node, tensor, kwargs]`) and tensors passed as call
  keyword arguments (`MultiHeadAttention(value=...)`) stay lists: every node becomes Keras 3's
  `{"args", "kwargs"}` form with `__keras_tensor__` references.
- A nested Sequential with an input layer owned a node of its own in Keras 2, so references to it
  are shifted by one; Keras 3 creates no such node.
- `module`/`registered_name` of built-in classes point at Keras 2 module paths Keras 3 cannot
  resolve: they are dropped, so Keras 3's legacy deserializer looks classes up by name.
- Arguments Keras 3 no longer takes (`time_major`, `groups` of separable convolutions, ...) are
  dropped when they hold Keras 2's default, which is what Keras 3 does anyway; any other value is
  refused, since dropping it would change what the model computes.
Every change is recorded as a note, `"<rule>: <layer>: <detail>"`.
"""

from __future__ import annotations

import copy
import inspect
import re

from exporter.errors import BadInputError
from exporter.legacy.graph import MODEL_CLASSES, translate_graph
from exporter.legacy.tfops import translate_op_layers

# Keras 2's hard_sigmoid under the name legacy/activations.py registers it with in Keras 3.
KERAS2_HARD_SIGMOID = "kexport>keras2_hard_sigmoid"
# ... as Keras 3 serializes a registered function: every layer resolves this form
# (`activations.get` looks a plain string up among the built-ins only).
KERAS2_HARD_SIGMOID_CONFIG = {"module": "builtins", "class_name": "function",
                              "config": KERAS2_HARD_SIGMOID, "registered_name": "function"}
WRAPPER_KEYS = ("layer", "backward_layer")
# Shapes Keras 2 stored to build a layer at load time; Keras 3 builds it on its first call.
BUILD_ONLY_ARGUMENTS = {"MultiHeadAttention": ("query_shape", "key_shape", "value_shape")}
_UNRECOGNIZED = re.compile(r"Unrecognized keyword arguments passed to (\w+): \{(.*?)\}", re.DOTALL)


def is_keras2_config(config: dict) -> bool:
    """True when a model config uses Keras 2 conventions (list nodes or a 1.x/2.x version)."""
    version = str(config.get("keras_version", ""))
    if version[:1] in ("1", "2") or isinstance(config.get("config"), list):
        return True  # a bare list of layers is a Keras 1 Sequential
    return any(_has_legacy_nodes(layer) for layer in _sublayers(config))


def _sublayers(config: dict) -> list:
    inner = config.get("config", {})
    layers = inner.get("layers", []) if isinstance(inner, dict) else inner
    return layers if isinstance(layers, list) else []


def _has_legacy_nodes(layer: dict) -> bool:
    nodes = layer.get("inbound_nodes") or []
    return any(isinstance(node, list) for node in nodes)


def layer_objects(config: dict):
    """Every serialized layer in a model config: layer lists, nested models, wrapped layers."""
    inner = config.get("config")
    if isinstance(inner, dict):
        inner = inner.get("layers", [])
    for layer in inner if isinstance(inner, list) else []:
        if not isinstance(layer, dict):
            continue
        yield layer
        if layer.get("class_name") in MODEL_CLASSES:
            yield from layer_objects(layer)
        cfg = layer.get("config")
        for key in WRAPPER_KEYS:
            wrapped = cfg.get(key) if isinstance(cfg, dict) else None
            if isinstance(wrapped, dict):
                yield wrapped


def translate_config(config: dict, notes: list[str]) -> dict:
    """Return a copy of a Keras 2 model config that Keras 3's legacy deserializer builds."""
    config = copy.deepcopy(config)
    for key in ("keras_version", "backend"):
        config.pop(key, None)
    _translate_object(config, notes)
    return config


def _translate_object(obj: dict, notes: list[str], in_layer_list: bool = True) -> None:
    """Translate one serialized layer (or model) in place, recursing into what it holds."""
    if in_layer_list or obj.get("class_name") in MODEL_CLASSES:
        # Keras 3 builds entries of a layer list with its legacy deserializer, which finds
        # built-in classes by name; Keras 2's module paths would send it astray.
        obj.pop("module", None)
        obj.pop("registered_name", None)
    cfg = obj.get("config")
    if not isinstance(cfg, dict):
        return
    class_name = obj.get("class_name")
    name = cfg.get("name", class_name)
    if isinstance(cfg.get("dtype"), dict):  # a mixed-precision Policy object
        policy = cfg["dtype"].get("config", {}).get("name", "float32")
        notes.append(f"dtype-policy: {name}: Policy object -> '{policy}'")
        cfg["dtype"] = policy
    if class_name == "InputLayer":
        _translate_input_layer(cfg)
    for key in ("activation", "recurrent_activation"):
        if cfg.get(key) == "hard_sigmoid":
            cfg[key] = dict(KERAS2_HARD_SIGMOID_CONFIG)
            notes.append(f"keras2-hard-sigmoid: {name}: {key} keeps Keras 2's slope 0.2 "
                         f"(Keras 3's hard_sigmoid differs); written files name {KERAS2_HARD_SIGMOID}")
    for key in BUILD_ONLY_ARGUMENTS.get(class_name, ()):
        if cfg.pop(key, None) is not None:
            notes.append(f"build-shape-dropped: {name}: {key}")
    if class_name in MODEL_CLASSES:
        for layer in _sublayers(obj):
            _translate_object(layer, notes)
        if class_name != "Sequential":
            translate_op_layers(cfg.get("layers", []), notes)
            translate_graph(cfg)
    for key in WRAPPER_KEYS:
        if isinstance(cfg.get(key), dict):
            # Wrappers deserialize their inner layer with Keras 3's new deserializer, which
            # resolves Keras 2's "keras.layers" module path as it is.
            _translate_object(cfg[key], notes, in_layer_list=False)


def _translate_input_layer(cfg: dict) -> None:
    if "batch_input_shape" in cfg:
        cfg["batch_shape"] = cfg.pop("batch_input_shape")
    for flag in ("ragged", "sparse", "optional"):
        if cfg.get(flag) is False:
            cfg.pop(flag)


def drop_unrecognized(config: dict, error: Exception, notes: list[str]) -> bool:
    """Handle Keras 3's "Unrecognized keyword arguments" by dropping Keras 2 defaults.

    Returns True when the config was changed (the caller retries); raises when an argument holds
    a value Keras 3 cannot express; returns False when the error is of another kind.
    """
    match = _UNRECOGNIZED.search(str(error))
    if not match:
        return False
    class_name, keys = match.group(1), re.findall(r"'(\w+)':", match.group(2))
    changed = False
    for obj in _objects_of_class(config, class_name):
        cfg = obj["config"]
        for key in keys:
            if key not in cfg:
                continue
            if key.endswith(TRAINING_ONLY_SUFFIXES) or key in TRAINING_ONLY_ARGUMENTS:
                notes.append(f"dropped-training-argument: {cfg.get('name')}: {key}")
                del cfg[key]
                changed = True
                continue
            default = keras2_default(class_name, key)
            if default is NO_DEFAULT or not same_value(cfg[key], default):
                raise BadInputError(
                    f"layer '{cfg.get('name')}' ({class_name}) sets {key}={cfg[key]!r}, "
                    "which Keras 3 cannot express; the model cannot be translated without "
                    "changing what it computes."
                )
            notes.append(f"dropped-default-argument: {cfg.get('name')}: {key}={cfg[key]!r}")
            del cfg[key]
            changed = True
    return changed


def _objects_of_class(value, class_name: str):
    if isinstance(value, dict):
        if value.get("class_name") == class_name and isinstance(value.get("config"), dict):
            yield value
        for item in value.values():
            yield from _objects_of_class(item, class_name)
    elif isinstance(value, list):
        for item in value:
            yield from _objects_of_class(item, class_name)


NO_DEFAULT = object()
# Arguments that shape training only: initializers never touch loaded weights, and
# regularizers and constraints act only while fitting.
TRAINING_ONLY_SUFFIXES = ("_initializer", "_regularizer", "_constraint")
# The random generator of augmentation layers, which are the identity at inference.
TRAINING_ONLY_ARGUMENTS = {"rng_type"}


def keras2_default(class_name: str, argument: str):
    """The default tf-keras gives `argument` of layer class `class_name`, or NO_DEFAULT."""
    from exporter.runtime import tf_keras_module

    return layer_default(tf_keras_module().layers, class_name, argument)


def layer_default(layers_module, class_name: str, argument: str):
    """The default a Keras `layers` module's class gives `argument`, or NO_DEFAULT."""
    cls = getattr(layers_module, class_name, None)
    for klass in inspect.getmro(cls) if cls else ():
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        parameter = inspect.signature(init).parameters.get(argument)
        if parameter is not None and parameter.default is not inspect.Parameter.empty:
            return parameter.default
    return NO_DEFAULT


def same_value(value, default) -> bool:
    if isinstance(value, (list, tuple)) and isinstance(default, (list, tuple)):
        return list(value) == list(default)
    return value == default
