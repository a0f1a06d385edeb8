"""Cut a sub-model out of an in-memory Keras 3 model at named layers.

Layers are addressed as `name`, `name:node` (a shared layer called several times) and
`outer/inner` (a layer inside a nested functional or Sequential model). An output cut keeps the
model's inputs; an input cut starts the sub-model at layer outputs (new `keras.Input`s) and
re-calls the *same* layer objects from there, so weights and `trainable` flags are shared, never
copied or re-initialized. The cut points are checked first (exporter.cut_points); slicing a
model file, verified and published like `convert`, is exporter.slice_artifact's job.
"""

from __future__ import annotations

from exporter.cut_points import resolve_cuts
from exporter.errors import BadInputError
from exporter.layer_paths import Address, graph_of, is_nested_model, producer_node


class _Replay:
    """Recompute tensors of one graph from new values of some of its tensors (`feeds`), by
    calling the same layer objects again; `feeds=None` means the graph's own tensors are kept.

    With `flatten`, nested models are not called whole but entered: their inner layers are
    called in this graph. Cutting inside a nested model needs that, because a Keras file cannot
    hold one layer object both inside a nested model and beside it (it fails to re-load)."""

    def __init__(self, feeds: dict | None, flatten: bool = False):
        self.identity = feeds is None
        self.memo = dict(feeds or {})
        self.flatten = flatten
        self.children: dict[int, _Replay] = {}

    def value(self, tensor, what: str):
        if self.identity:
            return tensor
        for node in self._plan(tensor, what):
            if self.flatten and is_nested_model(node.operation):
                inner = self.child(node, what)
                values = [inner.value(t, what) for t in graph_of(node.operation).outputs]
            else:
                args, kwargs = node.arguments.fill_in(self.memo)
                result = node.operation(*args, **kwargs)
                values = result if isinstance(result, (list, tuple)) else [result]
            for symbolic, new in zip(node.output_tensors, values):
                self.memo[id(symbolic)] = new
        return self.memo[id(tensor)]

    def child(self, node, what: str) -> _Replay:
        """The replay of the nested model called at `node`, fed by this graph's values."""
        if id(node) not in self.children:
            values = [self.value(t, what) for t in node.input_tensors]
            inner = graph_of(node.operation).inputs
            self.children[id(node)] = _Replay({id(t): v for t, v in zip(inner, values)}, True)
        return self.children[id(node)]

    def _plan(self, tensor, what: str) -> list:
        """Nodes to run, dependencies first (iterative: deep networks exceed recursion limits)."""
        if id(tensor) in self.memo:
            return []
        root = producer_node(tensor)
        consumer, done, order, stack = {id(root): None}, set(), [], [(root, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
                continue
            if id(node) in done:
                continue
            done.add(id(node))
            if node.is_input:
                raise BadInputError(_leak_message(what, node, consumer))
            stack.append((node, True))
            for parent in (producer_node(t) for t in node.input_tensors if id(t) not in self.memo):
                if id(parent) not in done:
                    consumer.setdefault(id(parent), node)
                    stack.append((parent, False))
        return order


def _leak_message(what: str, node, consumer: dict) -> str:
    path = []
    while node is not None:
        path.append(node.operation.name)
        node = consumer.get(id(node))
    return (
        f"{what} still depends on input '{path[0]}' through {' -> '.join(path)}: the --input "
        "cuts do not separate it from the original inputs. Add an --input on that path."
    )


def _value(address: Address, outer: _Replay, what: str) -> list:
    """The address's tensors in the new graph: nested models are entered by re-calling their
    inner layers on the values that flow into the nested model at the chosen node."""
    replay = outer
    for depth, step in enumerate(address.steps):
        node = step.layer._inbound_nodes[step.node]
        if depth == len(address.steps) - 1:
            return [replay.value(t, what) for t in node.output_tensors]
        replay = replay.child(node, what)
    return []


def _input_cut(keras, address: Address, index: int):
    """The cut tensor (checked by `resolve_cuts` to be one) and the new input replacing it."""
    # A placeholder name first: the final one depends on which layers the sub-model keeps.
    tensor = address.tensors()[0]
    new = keras.Input(batch_shape=tuple(tensor.shape), dtype=tensor.dtype, name=f"kexport_cut_{index}")
    return tensor, new


def slice_model(model, outputs: list[str], inputs: list[str] | None = None):
    """Cut a sub-model out of a Keras 3 model.

    Args:
        model: a functional or Sequential Keras 3 model with defined inputs.
        outputs: layer addresses whose outputs become the sub-model's outputs, in order; empty
            with `inputs` given: the model's own outputs (the head of the model).
        inputs: layer addresses whose outputs become new inputs (the front is cut off).

    Returns:
        A `keras.Model` sharing its layers (weights, trainable flags) with `model`.

    Raises:
        BadInputError: unknown, ambiguous or repeated names; an output upstream of an input
            cut; input cuts that leave an output depending on an original input.
    """
    from exporter.runtime import keras_module

    keras = keras_module()
    out_addresses, in_addresses = resolve_cuts(model, list(outputs), list(inputs or []))
    flatten = any(len(a.steps) > 1 for a in out_addresses)
    feeds, new_inputs = None, list(graph_of(model).inputs)
    if flatten:
        feeds = {id(t): t for t in new_inputs}
    if in_addresses:
        cuts = [_input_cut(keras, a, i) for i, a in enumerate(in_addresses)]
        feeds = {id(tensor): new for tensor, new in cuts}
        new_inputs = [new for _, new in cuts]
    replay = _Replay(feeds, flatten)
    tensors = [t for a in out_addresses for t in _value(a, replay, f"output '{a.spec}'")]
    try:
        sub = keras.Model(new_inputs, tensors, name=f"{model.name}_slice")
    except ValueError as error:
        raise BadInputError(f"the sub-model cannot be built: {error}") from None
    _name_cut_inputs(sub, in_addresses)
    return sub


def _name_cut_inputs(sub, addresses: list[Address]) -> None:
    """Name each new input after the layer it replaces (what a features .npz is keyed by),
    unless a layer kept in the sub-model already has that name (a shared layer)."""
    taken = {layer.name for layer in sub.layers}
    for index, address in enumerate(addresses):
        wanted = address.spec.replace(":", "_node")
        while wanted in taken:
            wanted += "_input"
        layer = sub.get_layer(f"kexport_cut_{index}")
        taken.discard(layer.name)
        layer.name = wanted
        layer.output.name = wanted  # the in-memory input tensor, as a re-loaded model names it
        taken.add(wanted)
