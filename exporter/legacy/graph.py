"""Keras 2 functional graphs in Keras 3's form: node references, node indices, call arguments.

Keras 2 recorded a call as a list of `[layer, node, tensor, kwargs]` references; Keras 3 records
`{"args", "kwargs"}` with `__keras_tensor__` references. Two Keras 2 habits need more than a
change of form:
- A nested model with an input layer owned a node of its own in Keras 2 (its construction), so
  references to its calls start at 1; Keras 3 creates no such node.
- A recurrent layer called with `initial_state` recorded the states as extra inputs of the same
  node (`[x, h, c]`); Keras 3 takes them as the `initial_state` keyword.
"""

from __future__ import annotations

MODEL_CLASSES = {"Sequential", "Functional", "Model"}  # serialized models, nested or not
# Layers whose Keras 2 nodes carry initial states as extra inputs.
RECURRENT_CLASSES = {"LSTM", "GRU", "SimpleRNN", "RNN", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D",
                     "Bidirectional", "CuDNNLSTM", "CuDNNGRU"}


def is_ref(value) -> bool:
    """A Keras 2 tensor reference: `[layer, node, tensor]` or `[layer, node, tensor, kwargs]`."""
    return (isinstance(value, list) and len(value) in (3, 4) and isinstance(value[0], str)
            and isinstance(value[1], int) and isinstance(value[2], int))


def translate_graph(cfg: dict) -> None:
    """Rewrite a functional graph's node references into Keras 3's form."""
    layers = cfg.get("layers", [])
    offsets = _node_offsets(cfg)
    for layer in layers:
        recurrent = layer.get("class_name") in RECURRENT_CLASSES
        layer["inbound_nodes"] = [
            _translate_node(node, offsets, recurrent) if isinstance(node, list) else node
            for node in layer.get("inbound_nodes", [])
        ]
    for key in ("input_layers", "output_layers"):
        cfg[key] = _shift_refs(cfg.get(key), offsets)
        if isinstance(cfg[key], list) and len(cfg[key]) == 1 and is_ref(cfg[key][0]):
            # One tensor, not a list of one: Keras 3 then returns a tensor from the model, and a
            # Sequential holding it hands the next layer that tensor (a list of one reached a
            # GlobalAveragePooling2D after a nested MobileNet as two tensors).
            cfg[key] = cfg[key][0]


def _node_offsets(cfg: dict) -> dict[str, int]:
    """How far Keras 2's node indices of each nested model run ahead of Keras 3's.

    Keras 2 gave a Sequential with an input layer, and every nested Functional model, a node at
    construction; references to its calls then start at 1 (a sub-model shared by two inputs is
    referenced as nodes 1 and 2). Keras 3 builds a nested model from a config without that node.
    A reference past the layer's recorded calls reveals the offset.
    """
    calls = {layer["name"]: len(layer.get("inbound_nodes", [])) for layer in cfg.get("layers", [])}
    nested = {
        layer["name"] for layer in cfg.get("layers", []) if layer.get("class_name") in MODEL_CLASSES
    }
    highest: dict[str, int] = {}
    for ref in _all_refs(cfg):
        highest[ref[0]] = max(highest.get(ref[0], 0), int(ref[1]))
    return {
        name: highest[name] - calls[name] + 1
        for name in nested
        if name in highest and highest[name] >= calls.get(name, 0)
    }


def _all_refs(cfg: dict):
    def walk(value):
        if is_ref(value):
            yield value
            if len(value) == 4:
                yield from walk(value[3])
        elif isinstance(value, list):
            for item in value:
                yield from walk(item)
        elif isinstance(value, dict):
            for item in value.values():
                yield from walk(item)

    for layer in cfg.get("layers", []):
        yield from walk(layer.get("inbound_nodes", []))
    yield from walk(cfg.get("input_layers", []))
    yield from walk(cfg.get("output_layers", []))


def _shift_refs(value, offsets: dict[str, int]):
    if is_ref(value):
        return [value[0], value[1] - offsets.get(value[0], 0), *value[2:]]
    if isinstance(value, list):
        return [_shift_refs(item, offsets) for item in value]
    return value


def _tensor(ref: list, offsets: dict[str, int]) -> dict:
    layer, node, index = ref[0], ref[1] - offsets.get(ref[0], 0), ref[2]
    # Shape and dtype are placeholders: Keras 3 swaps in the real tensor by its history.
    return {
        "class_name": "__keras_tensor__",
        "config": {"shape": [], "dtype": "float32", "keras_history": [layer, node, index]},
    }


def _kwargs(value, offsets: dict[str, int]):
    if is_ref(value):
        return _tensor(value, offsets)
    if isinstance(value, list):
        return [_kwargs(item, offsets) for item in value]
    if isinstance(value, dict):
        return {key: _kwargs(item, offsets) for key, item in value.items()}
    return value


def _translate_node(node: list, offsets: dict[str, int], recurrent: bool = False) -> dict:
    tensors = [_tensor(ref, offsets) for ref in node]
    kwargs = dict(node[0][3]) if node and len(node[0]) == 4 else {}
    if recurrent and len(tensors) > 1 and "initial_state" not in kwargs:
        # Keras 2 recorded `rnn(x, initial_state=[h, c])` as one node of inputs [x, h, c].
        kwargs["initial_state"] = node[1:]
        tensors = tensors[:1]
    args = tensors[0] if len(tensors) == 1 else tensors
    return {"args": [args], "kwargs": _kwargs(kwargs, offsets)}
