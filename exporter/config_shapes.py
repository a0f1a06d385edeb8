"""Layer output shapes derived from a model config alone, without TensorFlow.

Keras 3 records a layer's output shape only where a consumer recorded its input (so never for
the last layer), and Keras 2 configs record none. `inspect` must stay TensorFlow-free, so the
common layers' shapes are computed here from their input shapes and config; any other layer's
shape stays unknown (None) rather than guessed.
"""

from __future__ import annotations

import math

# Layers whose output has the shape of their (first) input.
SAME_SHAPE = {
    "Activation", "ActivityRegularization", "AlphaDropout", "BatchNormalization", "Dropout",
    "ELU", "GaussianDropout", "GaussianNoise", "GroupNormalization", "Identity",
    "LayerNormalization", "LeakyReLU", "Masking", "Normalization", "PReLU", "ReLU", "Rescaling",
    "Softmax", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "ThresholdedReLU",
    "UnitNormalization", "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum",
}
_WINDOWED = {  # class -> (spatial dims, whether `filters` sets the channels)
    "Conv1D": (1, True), "Conv2D": (2, True), "Conv3D": (3, True),
    "MaxPooling1D": (1, False), "MaxPooling2D": (2, False), "MaxPooling3D": (3, False),
    "AveragePooling1D": (1, False), "AveragePooling2D": (2, False), "AveragePooling3D": (3, False),
}
_RECURRENT = {"LSTM", "GRU", "SimpleRNN"}


def _as_tuple(value, rank: int) -> tuple:
    if isinstance(value, (list, tuple)):
        return tuple(value)
    return (value,) * rank


def _spatial(size, window: int, stride: int, dilation: int, padding: str):
    if size is None:
        return None
    if padding == "same":
        return math.ceil(size / stride)
    return (size - (window - 1) * dilation - 1) // stride + 1


def _windowed(class_name: str, cfg: dict, shape: list) -> list | None:
    rank, conv = _WINDOWED[class_name]
    if len(shape) != rank + 2:
        return None
    first = cfg.get("data_format") == "channels_first"
    window = _as_tuple(cfg.get("kernel_size") or cfg.get("pool_size") or 2, rank)
    strides = _as_tuple(cfg.get("strides") or (1 if conv else window), rank)
    dilation = _as_tuple(cfg.get("dilation_rate") or 1, rank)
    padding = str(cfg.get("padding", "valid")).lower()
    dims = shape[2:] if first else shape[1:-1]
    out = [_spatial(n, k, s, d, padding) for n, k, s, d in zip(dims, window, strides, dilation)]
    channels = cfg.get("filters") if conv else (shape[1] if first else shape[-1])
    return [shape[0], channels, *out] if first else [shape[0], *out, channels]


def _pooled_globally(cfg: dict, shape: list) -> list:
    first = cfg.get("data_format") == "channels_first"
    channels = shape[1] if first else shape[-1]
    if cfg.get("keepdims"):
        ones = [1] * (len(shape) - 2)
        return [shape[0], channels, *ones] if first else [shape[0], *ones, channels]
    return [shape[0], channels]


def _flattened(shape: list) -> list:
    rest = shape[1:]
    return [shape[0], math.prod(rest) if all(isinstance(n, int) for n in rest) else None]


def _reshaped(cfg: dict, shape: list) -> list | None:
    target = cfg.get("target_shape")
    if not isinstance(target, (list, tuple)):
        return None
    target = list(target)
    if -1 in target:
        known = shape[1:]
        if not all(isinstance(n, int) for n in known):
            return [shape[0], *[None if n == -1 else n for n in target]]
        rest = math.prod(n for n in target if n != -1)
        target[target.index(-1)] = math.prod(known) // rest if rest else None
    return [shape[0], *target]


def _concatenated(cfg: dict, shapes: list[list]) -> list | None:
    axis = cfg.get("axis", -1)
    rank = len(shapes[0])
    if not isinstance(axis, int) or any(len(s) != rank for s in shapes):
        return None
    axis %= rank
    sizes = [s[axis] for s in shapes]
    out = list(shapes[0])
    out[axis] = sum(sizes) if all(isinstance(n, int) for n in sizes) else None
    return out


def output_shape(class_name: str, cfg: dict, shapes: list[list]) -> list | None:
    """A layer's output shape from its input shapes, or None when it cannot be derived here."""
    if not shapes or any(not isinstance(s, list) or not s for s in shapes):
        return None
    shape = shapes[0]
    if class_name in SAME_SHAPE:
        return list(shape)
    if class_name == "Dense" and isinstance(cfg.get("units"), int):
        return [*shape[:-1], cfg["units"]]
    if class_name == "Embedding" and isinstance(cfg.get("output_dim"), int):
        return [*shape, cfg["output_dim"]]
    if class_name == "Flatten":
        return _flattened(shape)
    if class_name == "Reshape":
        return _reshaped(cfg, shape)
    if class_name == "Concatenate":
        return _concatenated(cfg, shapes)
    if class_name in _WINDOWED:
        return _windowed(class_name, cfg, shape)
    if class_name.startswith(("GlobalAveragePooling", "GlobalMaxPooling")):
        return _pooled_globally(cfg, shape)
    if class_name in _RECURRENT and not cfg.get("return_state") and len(shape) == 3:
        units = cfg.get("units")
        return [shape[0], shape[1], units] if cfg.get("return_sequences") else [shape[0], units]
    return None


def _inbound_names(layer: dict) -> list[str]:
    """Names of the layers feeding a layer's first call (Keras 2 and Keras 3 config forms)."""
    nodes = layer.get("inbound_nodes")
    if not isinstance(nodes, list) or not nodes:
        return []
    node = nodes[0]
    if isinstance(node, list):  # Keras 2: [[name, node, tensor, kwargs], ...]
        return [ref[0] for ref in node if isinstance(ref, list) and ref and isinstance(ref[0], str)]
    names: list[str] = []
    stack = [node.get("args", [])] if isinstance(node, dict) else []
    while stack:  # Keras 3: {"args": [... {"class_name": "__keras_tensor__", ...} ...]}
        value = stack.pop()
        if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
            history = (value.get("config") or {}).get("keras_history")
            if isinstance(history, list) and history and isinstance(history[0], str):
                names.append(history[0])
        elif isinstance(value, dict):
            stack.extend(reversed(list(value.values())))
        elif isinstance(value, list):
            stack.extend(reversed(value))
    return names


def _built_input(cfg_layer: dict) -> list[list] | None:
    """Keras 3 `build_config.input_shape`: one shape, or a list of shapes."""
    built = cfg_layer.get("build_config")
    shape = built.get("input_shape") if isinstance(built, dict) else None
    if not isinstance(shape, list) or not shape:
        return None
    return shape if isinstance(shape[0], list) else [shape]


def recorded_shapes(layers: list[dict]) -> dict[str, list]:
    """Each layer's output shape as its consumers recorded it (Keras 3 `__keras_tensor__` args)."""
    shapes: dict[str, list] = {}

    def walk(value):
        if isinstance(value, dict):
            if value.get("class_name") == "__keras_tensor__":
                config = value.get("config", {})
                history = config.get("keras_history")
                if history and config.get("shape") is not None:
                    shapes.setdefault(history[0], list(config["shape"]))
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    for layer in layers:
        walk(layer.get("inbound_nodes", []))
    return shapes


def fill_output_shapes(sequential: bool, layers: list[dict], shapes: dict[str, list]) -> None:
    """Add to `shapes` (layer name -> output shape, as already known) what the config allows.

    Layers are visited in config order, which is a topological order: a Sequential chains each
    layer to the one before; a functional config names each layer's inbound layers.
    """
    previous = None
    for layer in layers:
        cfg = layer.get("config") if isinstance(layer.get("config"), dict) else {}
        name = cfg.get("name") or layer.get("name")
        if name not in shapes:
            if sequential:  # Keras 2 gives the first layer its input as batch_input_shape
                first = cfg.get("batch_input_shape") or cfg.get("batch_shape")
                fed = ([shapes[previous]] if previous in shapes
                       else [list(first)] if isinstance(first, list) else _built_input(layer))
            else:
                names = _inbound_names(layer)
                fed = [shapes[n] for n in names] if names and all(n in shapes for n in names) \
                    else _built_input(layer)
            derived = output_shape(str(layer.get("class_name")), cfg, fed or [])
            if derived is not None:
                shapes[name] = derived
        previous = name
