"""Layer addresses: `name`, `name:node` for a shared layer, `outer/inner` inside nested models.

An address resolves to the layer calls that lead to a tensor of the model's graph: the nested
models it passes through (each at one of its calls), then the layer at one of its calls. Only
calls that belong to the model's own graph count as its nodes, so a layer reused by another
model does not make names ambiguous.
"""

from __future__ import annotations

from dataclasses import dataclass

from exporter.errors import BadInputError, UnknownLayerError, did_you_mean


@dataclass(frozen=True)
class Step:
    """One hop of an address: `layer` called at `node` (an index into its inbound nodes)."""

    layer: object
    node: int


@dataclass(frozen=True)
class Address:
    """A resolved layer address: the nested models it passes through, then the layer itself."""

    spec: str
    steps: tuple[Step, ...]

    @property
    def key(self) -> tuple:
        return tuple((id(step.layer), step.node) for step in self.steps)

    def tensors(self) -> list:
        last = self.steps[-1]
        return list(last.layer._inbound_nodes[last.node].output_tensors)


def graph_of(model):
    """The functional graph behind a model (a Sequential keeps one in `_functional`)."""
    return getattr(model, "_functional", None) or model


def is_nested_model(layer) -> bool:
    """Whether a layer is a functional or Sequential model whose layers can be addressed."""
    return hasattr(layer, "get_layer") and getattr(graph_of(layer), "inputs", None) is not None


def model_nodes(model, layer) -> list[int]:
    """Indices of `layer`'s inbound nodes that belong to `model`'s graph (not to other models)."""
    keys = getattr(graph_of(model), "_nodes", None)
    count = len(layer._inbound_nodes)
    if keys is None:
        return list(range(count))
    return [i for i in range(count) if f"{id(layer)}_ib-{i}" in keys]


def addressable_names(model, prefix: str = "") -> list[str]:
    """Every name `slice` accepts for `model`: layers, `name:node` and nested paths."""
    names = []
    for layer in graph_of(model).layers:
        nodes = model_nodes(model, layer)
        names.append(prefix + layer.name)
        if len(nodes) > 1:
            names += [f"{prefix}{layer.name}:{n}" for n in range(len(nodes))]
        if is_nested_model(layer):
            names += addressable_names(layer, f"{prefix}{layer.name}/")
    return names


def output_addresses(model) -> list[str]:
    """Addresses of the layer calls that produce the model's own outputs, in output order
    (what a slice keeps when only `--input` cuts are given)."""
    specs: list[str] = []
    for tensor in graph_of(model).outputs:
        history = tensor._keras_history
        layer, nodes = history.operation, model_nodes(model, history.operation)
        spec = layer.name if len(nodes) == 1 else f"{layer.name}:{nodes.index(history.node_index)}"
        if spec not in specs:  # a layer call with several outputs is one address
            specs.append(spec)
    return specs


def resolve(model, spec: str) -> Address:
    """Resolve `name`, `name:node` or `outer/inner` in `model`.

    Raises:
        UnknownLayerError: no such layer (with close matches).
        BadInputError: an ambiguous shared layer, a node that does not exist, a path through a
            layer that is not a model.
    """
    if not spec or not spec.strip() or any(not part for part in spec.split("/")):
        raise BadInputError(f"empty layer name in '{spec}'; expected NAME, NAME:NODE or OUTER/INNER.")
    steps, scope, walked = [], model, []
    for part in spec.split("/"):
        name, _, node_text = part.partition(":")
        layer = _find_layer(scope, name)
        if layer is None:
            raise UnknownLayerError(
                f"layer '{'/'.join(walked + [name])}' not found in model '{model.name}'."
                + did_you_mean(spec, addressable_names(model)),
                hint="List the layer names with `kexport inspect MODEL`.",
            )
        steps.append(Step(layer, _pick_node(scope, layer, node_text, "/".join(walked + [name]))))
        walked.append(part)
        if len(walked) < len(spec.split("/")):
            if not is_nested_model(layer):
                raise BadInputError(
                    f"'{'/'.join(walked)}' is a {type(layer).__name__} layer, not a nested model; "
                    f"'{spec}' cannot be addressed."
                )
            scope = layer
    return Address(spec, tuple(steps))


def _find_layer(scope, name: str):
    try:
        return graph_of(scope).get_layer(name)
    except ValueError:
        return None


def _pick_node(scope, layer, node_text: str, name: str) -> int:
    nodes = model_nodes(scope, layer)
    if not node_text:
        if len(nodes) == 1:
            return nodes[0]
        choices = ", ".join(f"{name}:{n}" for n in range(len(nodes)))
        raise BadInputError(
            f"layer '{name}' is shared: it is called {len(nodes)} times; choose one of {choices}."
        )
    if not node_text.isdigit() or int(node_text) >= len(nodes):
        raise BadInputError(
            f"layer '{name}' has no node '{node_text}'; it has nodes 0..{len(nodes) - 1}."
        )
    return nodes[int(node_text)]


def producer_node(tensor):
    """The graph node (a layer call) that produced a symbolic tensor."""
    history = tensor._keras_history
    return history.operation._inbound_nodes[history.node_index]
