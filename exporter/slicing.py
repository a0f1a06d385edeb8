"""Cut sub-models out of a Keras 3 model at named layers, verified and published like `convert`.

Layers are addressed as `name`, `name:node` (a shared layer called several times) and
`outer/inner` (a layer inside a nested functional or Sequential model). An output cut keeps the
model's inputs; an input cut starts the sub-model at layer outputs (new `keras.Input`s) and
re-calls the *same* layer objects from there, so weights and `trainable` flags are shared, never
copied or re-initialized.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from exporter.convert import (
    ConvertResult,
    load_model,
    output_paths,
    refuse_impossible,
    stage_verify_publish,
)
from exporter.errors import BadInputError, KexportError, UnknownLayerError, VerificationError
from exporter.formats.failures import first_line
from exporter.formats.registry import check_format_name, format_for_destination
from exporter.layer_paths import (
    Address,
    graph_of,
    is_nested_model,
    output_addresses,
    producer_node,
    resolve,
)
from exporter.model_tensors import input_specs, loaded_keras3, output_specs
from exporter.model_types import LoadOptions, Tensors
from exporter.publish import check_destinations
from exporter.verify import (
    DEFAULT_ATOL,
    DEFAULT_RTOL,
    VerificationReport,
    compare_runs,
    inputs_rejected,
    plan_for,
    rename_inputs,
    run_candidate,
)


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


def _check_selection(outputs: list[str], inputs: list[str]) -> None:
    if not outputs and not inputs:
        raise BadInputError("nothing to slice: give at least one --output LAYER or --input LAYER.")
    for kind, names in (("--output", outputs), ("--input", inputs)):
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise BadInputError(f"{kind} names repeated: {', '.join(repeated)}; give each once.")
    both = sorted(set(outputs) & set(inputs))
    if both:
        raise BadInputError(f"{', '.join(both)} given as both --output and --input.")


def _depends_on(tensor, target_ids: set) -> bool:
    """Whether `tensor` is computed from any node in `target_ids` (in the source graph)."""
    stack, seen = [producer_node(tensor)], set()
    while stack:
        node = stack.pop()
        if id(node) in target_ids:
            return True
        if id(node) not in seen:
            seen.add(id(node))
            stack.extend(producer_node(t) for t in node.input_tensors)
    return False


def _input_cut(keras, model, address: Address, index: int):
    if len(address.steps) > 1:
        raise BadInputError(
            f"--input '{address.spec}' is inside a nested model; cut at the nested model itself "
            f"('{address.spec.split('/')[0]}') or at a layer of '{model.name}'."
        )
    tensors = address.tensors()
    if len(tensors) != 1:
        raise BadInputError(f"--input '{address.spec}' produces {len(tensors)} tensors; cut at one.")
    # A placeholder name first: the final one depends on which layers the sub-model keeps.
    tensor = tensors[0]
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

    keras, inputs = keras_module(), list(inputs or [])
    _check_selection(list(outputs), inputs)
    outputs = list(outputs) or output_addresses(model)
    out_addresses = [resolve(model, spec) for spec in outputs]
    in_addresses = [resolve(model, spec) for spec in inputs]
    for kind, addresses in (("--output", out_addresses), ("--input", in_addresses)):
        keys = [a.key for a in addresses]
        same = [a.spec for a in addresses if keys.count(a.key) > 1]
        if same:
            raise BadInputError(f"{kind} {', '.join(same)} name the same layer output; give it once.")
    for address in out_addresses:
        produced_by = {id(producer_node(t)) for t in _outer_tensors(address)}
        upstream = [a.spec for a in in_addresses
                    if len(a.steps) == 1 and _depends_on(a.tensors()[0], produced_by)]
        if upstream:
            raise BadInputError(
                f"--output '{address.spec}' comes before the --input cut at {', '.join(upstream)}: "
                "the sub-model would not compute it. Choose outputs downstream of the inputs."
            )
    flatten = any(len(a.steps) > 1 for a in out_addresses)
    feeds, new_inputs = None, list(graph_of(model).inputs)
    if flatten:
        feeds = {id(t): t for t in new_inputs}
    if in_addresses:
        cuts = [_input_cut(keras, model, a, i) for i, a in enumerate(in_addresses)]
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


def _outer_tensors(address: Address) -> list:
    """The outer-graph tensors an address stands for (a nested model's output at its node)."""
    step = address.steps[0]
    return list(step.layer._inbound_nodes[step.node].output_tensors)


# --- verification references, computed from the source's own tensors (never by replay) ---

def _activations(model, address: Address, feed: list) -> list[np.ndarray]:
    """Values of an address's tensors for `feed` (arrays for `model`'s inputs), computed by
    `keras.Model(graph inputs, the source's own tensors)`, one nesting level at a time."""
    from exporter.runtime import keras_module

    keras, scope, values = keras_module(), model, feed
    for depth, step in enumerate(address.steps):
        node = step.layer._inbound_nodes[step.node]
        last = depth == len(address.steps) - 1
        wanted = list(node.output_tensors if last else node.input_tensors)
        probe = keras.Model(list(graph_of(scope).inputs), wanted)
        result = probe(values if len(values) > 1 else values[0], training=False)
        values = [np.asarray(v) for v in (result if isinstance(result, (list, tuple)) else [result])]
        scope = step.layer
    return values


def slice_reference(model, outputs: list[str], inputs: list[str] | None, feed: Tensors):
    """What the sub-model must compute: (its inputs' values, its outputs' values) for `feed`,
    the source model's inputs by name. Computed independently of `slice_model`."""
    names = [spec.name for spec in input_specs(model)]
    values = [feed[name] for name in names]
    expected = [v for spec in outputs for v in _activations(model, resolve(model, spec), values)]
    if not inputs:
        return list(values), expected
    fed = [_activations(model, resolve(model, spec), values)[0] for spec in inputs]
    return fed, expected


@dataclass
class SliceResult(ConvertResult):
    """A convert result, plus the sub-model's output and input names."""

    outputs: list[str] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)


def slice_artifact(
    source: Path,
    destination: Path,
    outputs: list[str],
    inputs: list[str] | None = None,
    to: str | None = None,
    options: LoadOptions | None = None,
    *,
    verify: bool = True,
    atol: float = DEFAULT_ATOL,
    rtol: float = DEFAULT_RTOL,
    inputs_file: Path | None = None,
    input_shapes: dict | None = None,
    force: bool = False,
    progress: Callable[[str], None] = lambda message: None,
) -> SliceResult:
    """Slice the model in any readable artifact and publish the sub-model, verified.

    Args:
        source: the model artifact (any format `convert` reads).
        destination: where to write the sub-model; the format follows `to` or the suffix.
        outputs / inputs: layer addresses, as for `slice_model` (no outputs: the model's own).
        inputs_file: .npz of the *source* model's inputs to verify on (else seeded random).
        input_shapes: parsed `--input-shape` options for the *source* model's inputs.

    Raises:
        VerificationError: the written sub-model differs from the source's activations.
        KexportError: bad input, unsafe artifact, or an impossible request.
    """
    source, destination = Path(source), Path(destination)
    _check_selection(list(outputs), list(inputs or []))
    fmt = check_format_name(to) if to else format_for_destination(destination)
    check_destinations(output_paths(destination, fmt, False), force)
    progress(f"loading {source}")
    loaded = load_model(source, options)
    refuse_impossible(loaded, fmt, False)
    outputs = list(outputs) or output_addresses(loaded.model)  # the head keeps the model's outputs
    progress(f"slicing at {', '.join(outputs)}" + (f" from {', '.join(inputs)}" if inputs else ""))
    try:
        sub = slice_model(loaded.model, list(outputs), inputs)
    except UnknownLayerError as error:
        raise UnknownLayerError(
            error.message, hint=f"List the layer names with `kexport inspect {source}`."
        ) from None
    except KexportError:
        raise
    except Exception as error:  # Keras refusing the cut graph: one line, not a traceback
        raise BadInputError(f"cannot cut {source} at {', '.join(outputs)}: "
                            f"{type(error).__name__}: {first_line(error)}") from error
    check = None
    if verify:
        def check(written) -> VerificationReport:
            # An output cut keeps the source's inputs and needs only the layers it keeps:
            # plan on it, so a size only the cut-off layers reject is still accepted.
            kept = [s.name for s in input_specs(sub)] == [s.name for s in loaded.inputs]
            plan = plan_for(loaded, inputs_file, input_shapes, model=sub if kept else None)
            return _verify_slice(loaded, plan, sub, written, outputs, inputs, atol, rtol)

    published, report = stage_verify_publish(
        loaded_keras3(sub, fmt, destination, None), destination, fmt, check,
        force=force, progress=progress,
    )
    return SliceResult(
        source=str(source), source_format=loaded.format, destination=str(destination),
        format=fmt, outputs=[s.name for s in output_specs(sub)],
        inputs=[s.name for s in input_specs(sub)], written=[str(p) for p in published],
        report=report, notes=list(loaded.notes),
    )


def _verify_slice(loaded, plan, sub, written, outputs, inputs, atol, rtol):
    """Feed the written sub-model what the source computes at its inputs; compare its outputs
    with what the source computes at the chosen layers."""
    try:
        fed, expected = slice_reference(loaded.model, outputs, inputs, plan.make(0))
    except KexportError:
        raise
    except Exception as error:
        raise inputs_rejected(loaded.path, plan, error) from error
    sub_inputs = {spec.name: value for spec, value in zip(input_specs(sub), fed)}
    names = [spec.name for spec in output_specs(sub)]
    if len(names) != len(expected):
        raise VerificationError(f"the sub-model has {len(names)} outputs, expected {len(expected)}.")
    feed, pairing = rename_inputs(sub_inputs, written.inputs)
    report = compare_runs(dict(zip(names, expected)), run_candidate(written, feed), atol, rtol)
    report.inputs = {name: list(np.shape(v)) for name, v in sub_inputs.items()}
    report.input_sources = plan.as_dict()
    report.pairing = pairing
    return report
