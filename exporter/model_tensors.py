"""Names, specs and calls of in-memory Keras models (Keras 3, and tf-keras for references).

A model's inputs are named after its input layers and its outputs after the layers that produce
them; those names key the SavedModel signature, verification reports and serving requests.
`loaded_keras3` wraps a Keras 3 model with them into what loading yields (model_types.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from exporter.errors import BadInputError
from exporter.model_types import LoadedModel, Tensors, TensorSpec


def _dtype_name(dtype) -> str:
    return getattr(dtype, "name", None) or str(dtype)


def _shape(tensor) -> tuple:
    return tuple(None if dim is None else int(dim) for dim in tensor.shape)


def _producer_name(tensor) -> str:
    history = getattr(tensor, "_keras_history", None)
    layer = getattr(history, "operation", None) or getattr(history, "layer", None)
    if layer is None and history:
        layer = history[0]
    return getattr(layer, "name", None) or tensor.name.split(":")[0]


def unique(names: list[str]) -> list[str]:
    """Make names unique the way users expect: repeats get `_1`, `_2` suffixes."""
    seen: dict[str, int] = {}
    result = []
    for name in names:
        count = seen.get(name, 0)
        seen[name] = count + 1
        result.append(name if count == 0 else f"{name}_{count}")
    return result


def model_inputs(model) -> list:
    inputs = getattr(model, "inputs", None)
    if not inputs:
        raise BadInputError(
            f"model '{model.name}' has no defined inputs (a subclassed or unbuilt model).",
            hint="Build it on an input (keras.Input) before saving, or use a functional model.",
        )
    return list(inputs)


def input_specs(model) -> list[TensorSpec]:
    """One spec per model input, named after its input layer."""
    tensors = model_inputs(model)
    names = unique([_producer_name(t) for t in tensors])
    return [TensorSpec(n, _shape(t), _dtype_name(t.dtype)) for n, t in zip(names, tensors)]


def output_specs(model) -> list[TensorSpec]:
    """One spec per model output, named after the layer that produces it."""
    tensors = list(model.outputs)
    names = unique([_producer_name(t) for t in tensors])
    return [TensorSpec(n, _shape(t), _dtype_name(t.dtype)) for n, t in zip(names, tensors)]


def model_runner(model):
    """Return a function that calls `model` on named numpy inputs and names its outputs."""
    in_specs = input_specs(model)
    out_specs = output_specs(model)

    def run(inputs: Tensors) -> Tensors:
        args = [inputs[spec.name] for spec in in_specs]
        result = model(args if len(args) > 1 else args[0], training=False)
        if isinstance(result, dict):
            result = [result[key] for key in result]
        elif not isinstance(result, (list, tuple)):
            result = [result]
        return {spec.name: np.asarray(value) for spec, value in zip(out_specs, result)}

    run.model = model  # verification inputs are planned from the model's architecture
    return run


def loaded_keras3(model, fmt: str, path: Path, version: str | None) -> LoadedModel:
    """Wrap a Keras 3 model: it is its own reference."""
    return LoadedModel(
        model=model,
        format=fmt,
        path=path,
        reference=model_runner(model),
        inputs=input_specs(model),
        outputs=output_specs(model),
        keras_version=version,
    )
