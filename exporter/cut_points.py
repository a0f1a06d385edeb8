"""Where a model is cut: the `--output` and `--input` layer addresses, resolved and checked.

Everything a cut can get wrong is refused here, before a layer is called: nothing chosen,
names repeated or naming the same layer output twice, an output upstream of an input cut, an
input cut inside a nested model or at a layer with several outputs. Building the sub-model
from the checked cut points is exporter.slicing's job.
"""

from __future__ import annotations

from exporter.errors import BadInputError
from exporter.layer_paths import Address, output_addresses, producer_node, resolve


def check_selection(outputs: list[str], inputs: list[str]) -> None:
    """Refuse an empty selection, repeated names and a name given as both output and input."""
    if not outputs and not inputs:
        raise BadInputError("nothing to slice: give at least one --output LAYER or --input LAYER.")
    for kind, names in (("--output", outputs), ("--input", inputs)):
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise BadInputError(f"{kind} names repeated: {', '.join(repeated)}; give each once.")
    both = sorted(set(outputs) & set(inputs))
    if both:
        raise BadInputError(f"{', '.join(both)} given as both --output and --input.")


def resolve_cuts(model, outputs: list[str], inputs: list[str]) -> tuple[list[Address], list[Address]]:
    """Resolve and check the cut points of a slice of `model`.

    Args:
        model: the Keras 3 model to cut.
        outputs: `--output` addresses, in order; empty: the model's own outputs.
        inputs: `--input` addresses (may be empty).

    Returns:
        The output and input addresses, in the order given.

    Raises:
        BadInputError: see the module docstring; `UnknownLayerError` for an unknown name.
    """
    check_selection(list(outputs), list(inputs))
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
    for address in in_addresses:
        _check_input_cut(model, address)
    return out_addresses, in_addresses


def _check_input_cut(model, address: Address) -> None:
    """An input cut is one tensor of the model's own graph: it becomes one `keras.Input`."""
    if len(address.steps) > 1:
        raise BadInputError(
            f"--input '{address.spec}' is inside a nested model; cut at the nested model itself "
            f"('{address.spec.split('/')[0]}') or at a layer of '{model.name}'."
        )
    tensors = address.tensors()
    if len(tensors) != 1:
        raise BadInputError(f"--input '{address.spec}' produces {len(tensors)} tensors; cut at one.")


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


def _outer_tensors(address: Address) -> list:
    """The outer-graph tensors an address stands for (a nested model's output at its node)."""
    step = address.steps[0]
    return list(step.layer._inbound_nodes[step.node].output_tensors)
