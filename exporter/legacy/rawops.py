"""tf.keras 2.0-2.3's `TensorFlowOpLayer`: a raw TensorFlow NodeDef, rewritten as its Keras layer.

Before `TFOpLambda`, tf.keras wrapped a TensorFlow op applied to a Keras tensor in a layer
holding the op's NodeDef and the values of its constant inputs (`constants`, keyed by input
position); the other inputs are the layer's inbound tensors, in order. An op with an exact
Keras layer counterpart (constant arguments only) becomes that layer, keeping the layer's name
so its node references stay valid; any other op is refused by its name.
"""

from __future__ import annotations

import numbers

from exporter.errors import BadInputError
from exporter.legacy.graph import is_ref

ACTIVATIONS = {"Relu": "relu", "Relu6": "relu6", "Sigmoid": "sigmoid", "Tanh": "tanh",
               "Elu": "elu", "Selu": "selu", "Softplus": "softplus", "Softsign": "softsign",
               "Exp": "exponential", "Identity": "linear"}
MERGES = {"AddV2": "Add", "Add": "Add", "Sub": "Subtract", "Mul": "Multiply",
          "Maximum": "Maximum", "Minimum": "Minimum"}
# (scale, offset) of `x op c` and of `c op x` for a scalar constant c.
SCALAR = {
    "AddV2": (lambda c: (1.0, c), lambda c: (1.0, c)),
    "Add": (lambda c: (1.0, c), lambda c: (1.0, c)),
    "Sub": (lambda c: (1.0, -c), lambda c: (-1.0, c)),
    "Mul": (lambda c: (c, 0.0), lambda c: (c, 0.0)),
    "RealDiv": (lambda c: (1.0 / c, 0.0), None),
}


def rewrite_raw_op(layer: dict, notes: list[str]) -> None:
    """Rewrite one `TensorFlowOpLayer` (Keras 2 list nodes) in place, or refuse it by op."""
    cfg = layer.get("config", {})
    node_def = cfg.get("node_def") or {}
    op, name = node_def.get("op", "?"), layer.get("name", cfg.get("name"))
    nodes = layer.get("inbound_nodes", [])
    if len(nodes) != 1 or not isinstance(nodes[0], list):
        raise BadInputError(f"op layer '{name}' is called {len(nodes)} times; only single calls "
                            "are rewritten.")
    operands = _operands(node_def, cfg.get("constants") or {}, nodes[0])
    found = _equivalent(op, operands) if operands is not None else None
    if found is None:
        raise BadInputError(
            f"layer '{name}' is a TensorFlowOpLayer (raw TensorFlow op {op}) with no exact "
            "Keras 3 layer kexport rewrites it into.",
            hint="Write a SavedModel (--to savedmodel: tf-keras's model is exported as it is), "
            "or rebuild that part of the model with Keras layers.",
        )
    new_class, new_config, refs = found
    layer["class_name"] = new_class
    layer["config"] = {"name": name, "trainable": cfg.get("trainable", True),
                       "dtype": cfg.get("dtype", "float32"), **new_config}
    layer["inbound_nodes"] = [[ref[:3] + [{}] for ref in refs]]
    notes.append(f"tf-op-layer: {name}: TensorFlowOpLayer {op} -> {new_class}")


def _operands(node_def: dict, constants: dict, node: list) -> list | None:
    """The op's inputs in order: ("tensor", ref) or ("const", value); None if they don't add up."""
    count = len([i for i in node_def.get("input", []) if not str(i).startswith("^")])
    refs = [ref for ref in node if is_ref(ref)]
    operands = []
    for position in range(count):
        if str(position) in constants:
            operands.append(("const", constants[str(position)]))
        elif refs:
            operands.append(("tensor", refs.pop(0)))
        else:
            return None
    return operands if not refs else None


def _equivalent(op: str, operands: list):
    """(class name, config, tensor refs) of the Keras layer computing `op`, or None."""
    tensors = [value for kind, value in operands if kind == "tensor"]
    consts = [(index, value) for index, (kind, value) in enumerate(operands) if kind == "const"]
    if op in ACTIVATIONS and len(operands) == 1 and tensors:
        return "Activation", {"activation": ACTIVATIONS[op]}, tensors
    if op == "Softmax" and len(operands) == 1 and tensors:
        return "Softmax", {"axis": -1}, tensors
    if op in MERGES and len(tensors) == len(operands) == 2:
        return MERGES[op], {}, tensors
    if op in SCALAR and len(operands) == 2 and len(tensors) == 1 and _scalar(consts[0][1]):
        rule = SCALAR[op][consts[0][0]]  # which side the constant is on
        constant = float(_scalar(consts[0][1])[0])
        if rule is not None and not (op == "RealDiv" and constant == 0):
            scale, offset = rule(constant)
            return "Rescaling", {"scale": scale, "offset": offset}, tensors
    if op == "Reshape" and len(tensors) == 1 and consts and consts[0][0] == 1:
        shape = consts[0][1]
        if isinstance(shape, list) and shape and shape[0] == -1 and -1 not in shape[1:]:
            return "Reshape", {"target_shape": shape[1:]}, tensors
    if op == "ConcatV2" and consts and consts[-1][0] == len(operands) - 1 and len(consts) == 1:
        axis = consts[0][1]
        if isinstance(axis, int) and len(tensors) >= 2:
            return "Concatenate", {"axis": axis}, tensors
    if op == "Transpose" and len(tensors) == 1 and consts and consts[0][0] == 1:
        perm = consts[0][1]
        if isinstance(perm, list) and perm and perm[0] == 0 and sorted(perm) == list(range(len(perm))):
            return "Permute", {"dims": perm[1:]}, tensors
    return None


def _scalar(value) -> list | None:
    """[c] for a scalar constant (a number, or a one-element list), else None."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return [value]
    return None
