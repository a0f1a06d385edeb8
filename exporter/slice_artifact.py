"""Slice the model in a file and publish the sub-model, verified like `convert`.

The sub-model is cut by exporter.slicing; what it must compute comes from the source model's
own tensors at the chosen layers (never from a replay of the cut), so a wrong cut cannot check
itself. The written sub-model is re-loaded, fed the source's values at its inputs, and compared.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from exporter.convert import ConvertResult, refuse_impossible, stage_verify_publish
from exporter.cut_points import check_selection
from exporter.errors import BadInputError, KexportError, UnknownLayerError, VerificationError
from exporter.formats.failures import first_line
from exporter.formats.registry import check_format_name, format_for_destination
from exporter.layer_paths import Address, graph_of, output_addresses, resolve
from exporter.model_io import load_model, output_paths
from exporter.model_tensors import input_specs, loaded_keras3, output_specs
from exporter.model_types import LoadOptions, Tensors
from exporter.progress import Progress, silent
from exporter.publish import check_destinations
from exporter.slicing import slice_model
from exporter.tolerances import DEFAULT_ATOL, DEFAULT_RTOL
from exporter.verify import (
    VerificationReport,
    compare_runs,
    inputs_rejected,
    plan_for,
    rename_inputs,
    run_candidate,
)


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
    progress: Progress = silent,
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
    check_selection(list(outputs), list(inputs or []))
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
