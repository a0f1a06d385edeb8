"""tf.keras's auto-generated op layers (`TFOpLambda`), rewritten as the Keras layers they equal.

When a tf.keras functional model applied a TensorFlow function to a Keras tensor (`x * 2.0`,
`tf.nn.relu(x)`, `tf.reshape(x, ...)`), tf.keras recorded a `TFOpLambda` layer naming the function.
Keras 3 has no such layer. The ops with an exact Keras layer counterpart are rewritten into it,
node and all; any other op is refused by name. The older `TensorFlowOpLayer` (TF 2.0-2.3), a raw
NodeDef, is rewritten the same way when its op has an exact Keras layer (legacy/rawops.py). The
rewritten model is verified against tf-keras's reading like every translation; a refused one
can still become a SavedModel from tf-keras's model.
"""

from __future__ import annotations

import numbers

from exporter.errors import BadInputError
from exporter.legacy.graph import is_ref
from exporter.legacy.rawops import rewrite_raw_op

ACTIVATIONS = {"nn.relu": "relu", "math.sigmoid": "sigmoid", "math.tanh": "tanh",
               "nn.silu": "silu", "nn.swish": "silu", "nn.elu": "elu", "nn.selu": "selu",
               "math.softplus": "softplus", "nn.relu6": "relu6", "math.exp": "exponential",
               "math.softsign": "softsign", "nn.softsign": "softsign", "identity": "linear"}
ARITHMETIC = {
    # function: (layer for a tensor operand, (scale, offset) for a number operand)
    "math.multiply": ("Multiply", lambda y: (y, 0.0)),
    "__operators__.mul": ("Multiply", lambda y: (y, 0.0)),
    "math.add": ("Add", lambda y: (1.0, y)),
    "__operators__.add": ("Add", lambda y: (1.0, y)),
    "math.subtract": ("Subtract", lambda y: (1.0, -y)),
    "math.truediv": (None, lambda y: (1.0 / y, 0.0)),
    "__operators__.truediv": (None, lambda y: (1.0 / y, 0.0)),
    "__operators__.sub": ("Subtract", lambda y: (1.0, -y)),
    "math.maximum": ("Maximum", None),
    "math.minimum": ("Minimum", None),
}


def translate_op_layers(layers: list[dict], notes: list[str]) -> None:
    """Rewrite every op layer in a functional layer list in place (Keras 2 list nodes)."""
    for layer in layers:
        if layer.get("class_name") == "TensorFlowOpLayer":
            rewrite_raw_op(layer, notes)
        if layer.get("class_name") == "TFOpLambda":
            _rewrite(layer, notes)


def _rewrite(layer: dict, notes: list[str]) -> None:
    cfg = layer["config"]
    function, name = cfg.get("function"), cfg.get("name", layer.get("name"))
    nodes = layer.get("inbound_nodes", [])
    if len(nodes) != 1:
        raise BadInputError(f"op layer '{name}' is called {len(nodes)} times; only single calls "
                            "are rewritten.")
    # An op layer's node is the structure of its first argument: one tensor reference, or a
    # list of them (tf.concat); the call's other arguments ride on the first reference.
    node = [nodes[0]] if is_ref(nodes[0]) else nodes[0]
    kwargs = dict(node[0][3]) if node and len(node[0]) == 4 else {}
    kwargs.pop("name", None)
    refs = [ref[:3] for ref in node]
    new_class, new_config, new_node = _equivalent(function, name, refs, kwargs)
    layer["class_name"] = new_class
    layer["config"] = {"name": name, "trainable": cfg.get("trainable", True),
                       "dtype": cfg.get("dtype", "float32"), **new_config}
    layer["inbound_nodes"] = [new_node]
    notes.append(f"tf-op-layer: {name}: tf.{function} -> {new_class}")


def _equivalent(function: str, name: str, refs: list, kwargs: dict):
    """(class name, config, node) of the Keras layer that computes `tf.<function>`."""
    single = [refs[0] + [{}]]
    if function in ACTIVATIONS and not kwargs:
        return "Activation", {"activation": ACTIVATIONS[function]}, single
    if function == "nn.softmax" and set(kwargs) <= {"axis"}:
        return "Softmax", {"axis": kwargs.get("axis", -1)}, single
    if function == "reshape" and set(kwargs) == {"shape"}:
        shape = kwargs["shape"]
        if isinstance(shape, list) and shape and shape[0] in (-1, None):
            return "Reshape", {"target_shape": shape[1:]}, single
    if function == "concat" and set(kwargs) == {"axis"}:
        return "Concatenate", {"axis": kwargs["axis"]}, [ref + [{}] for ref in refs]
    if function in ARITHMETIC and set(kwargs) == {"y"} and len(refs) == 1:
        tensor_layer, scale_offset = ARITHMETIC[function]
        operand = kwargs["y"]
        if is_ref(operand) and tensor_layer:
            return tensor_layer, {}, [refs[0] + [{}], operand[:3] + [{}]]
        if (isinstance(operand, numbers.Real) and not isinstance(operand, bool)
                and scale_offset is not None and (operand != 0 or "truediv" not in function)):
            scale, offset = scale_offset(float(operand))
            return "Rescaling", {"scale": scale, "offset": offset}, single
    if function == "transpose" and set(kwargs) == {"perm"} and _keeps_batch(kwargs["perm"]):
        return "Permute", {"dims": list(kwargs["perm"][1:])}, single
    if function == "nn.leaky_relu" and set(kwargs) <= {"alpha"}:
        return "LeakyReLU", {"negative_slope": float(kwargs.get("alpha", 0.2))}, single
    raise BadInputError(
        f"layer '{name}' calls tf.{function} with {sorted(kwargs) or 'no'} arguments, which has "
        "no Keras 3 layer counterpart kexport rewrites it into.",
        hint="Rebuild that part of the model with Keras layers (or keras.ops in a custom layer).",
    )


def _keeps_batch(perm) -> bool:
    """A permutation Keras's Permute can express: the batch axis stays first."""
    return (isinstance(perm, list) and len(perm) > 1 and perm[0] == 0
            and sorted(perm) == list(range(len(perm))))
