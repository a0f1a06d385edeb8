"""Verification inputs a model accepts: the shape and values each input gets, and why.

Shapes, first that applies: `--inputs FILE.npz` (arrays as given); `--input-shape NAME=D1,D2,...`
(parsed and fitted to the inputs by exporter.input_shapes); the model's known dimensions; for unknown ones, the smallest sizes every layer accepts, found by
shape inference (exporter.shape_inference). Values follow the input's kind: token ids below the vocabulary
for an input that feeds an Embedding (whatever the Input's dtype), integers and booleans for those
dtypes, else normal floats. Values are seeded: two runs feed the same numbers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from exporter.errors import BadInputError
from exporter.input_shapes import shape_templates
from exporter.model_types import Tensors, TensorSpec
from exporter.shape_inference import (
    call_probe,
    choose_sizes,
    model_probe,
    recognised_application,
    rejection,
    unknown_kind,
    with_size,
)

DEFAULT_BATCH = 2  # two examples catch batch-mixing bugs (e.g. BatchNorm left in training mode)
# One example for large inputs (a 224x224x3 image is 150k values): the activations of a second
# example cost more memory than the whole export does. `--inputs` sets any batch.
LARGE_EXAMPLE_VALUES = 1 << 16
DEFAULT_INT_HIGH = 10  # integer inputs (and token ids) are drawn from [0, 10)
FIX_OPTIONS = "--input-shape NAME=D1,D2,... or --inputs FILE.npz"


@dataclass
class InputChoice:
    """One verification input: its shape, dtype, what its values are and where its shape came
    from."""

    name: str
    shape: list[int]
    dtype: str
    values: str
    source: str
    high: int = DEFAULT_INT_HIGH  # exclusive upper bound of integer values and token ids
    tokens: bool = False  # integers even when the dtype is a float (an Embedding's ids)

    def as_dict(self) -> dict:
        return {key: value for key, value in asdict(self).items()
                if key not in ("name", "high", "tokens")}

    def describe(self) -> str:
        return f"{self.name} {self.shape} {self.dtype}, {self.values} ({self.source})"


@dataclass
class InputPlan:
    """The inputs verification feeds, in the reference model's input order."""

    choices: list[InputChoice]
    fixed: Tensors | None = None  # arrays read from --inputs

    def make(self, seed: int = 0) -> Tensors:
        """The arrays: from --inputs, else seeded random values of the chosen shapes."""
        if self.fixed is not None:
            return dict(self.fixed)
        rng = np.random.default_rng(seed)
        return {choice.name: _values(rng, choice) for choice in self.choices}

    def describe(self) -> str:
        return "; ".join(choice.describe() for choice in self.choices)

    def as_dict(self) -> dict:
        return {choice.name: choice.as_dict() for choice in self.choices}


def _values(rng: np.random.Generator, choice: InputChoice) -> np.ndarray:
    dtype = np.dtype(choice.dtype)
    if choice.tokens or dtype.kind in "iu":
        return rng.integers(0, choice.high, size=choice.shape).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, size=choice.shape).astype(bool)
    return rng.standard_normal(choice.shape).astype(dtype)


def _batch(shapes: list[tuple]) -> int:
    values = sum(int(np.prod([1 if d is None else d for d in shape[1:]])) for shape in shapes)
    return 1 if values > LARGE_EXAMPLE_VALUES else DEFAULT_BATCH


def _shape_source(spec_name: str, given: dict, kind: str | None, sizes: dict) -> str:
    if spec_name in given or (None in given):
        return "--input-shape"
    if kind is None:
        return "model"
    choice = sizes[kind]
    what = "image size" if kind == "spatial" else "sequence length"
    if choice.found:
        return f"smallest {what} the model accepts ({choice.size}), by shape inference"
    if choice.application:
        return f"keras.applications default for {choice.application} ({choice.size})"
    return f"default {what} {choice.size}; shape inference found none that fits ({choice.reason})"


def plan_inputs(specs: list[TensorSpec], model=None, run=None,
                input_shapes: dict | None = None) -> InputPlan:
    """Choose every input's shape and kind of values.

    Args:
        specs: the reference's input specs (their names key `input_shapes` and the arrays).
        model: a Keras 3 or tf-keras model with those inputs, for shape inference and to find
            the inputs that feed an Embedding; None when there is no architecture.
        run: the reference's call, probed on zeros when there is no `model`.
        input_shapes: parsed `--input-shape` options.
    """
    given = dict(input_shapes or {})
    templates = shape_templates(specs, given)
    dtypes = {spec.name: _numeric_dtype(spec) for spec in specs}
    probe = model_probe(model, dtypes) if model is not None else (
        call_probe(run, dtypes) if run is not None else None)
    sizes = choose_sizes(templates, probe, recognised_application(model) if model else None)
    filled = {name: with_size(shape, sizes[kind].size if (kind := unknown_kind(shape)) else 0, 0)
              for name, shape in templates.items()}
    batch = _batch(list(filled.values()))
    embeddings = embedding_inputs(model) if model is not None else {}
    bound = min([DEFAULT_INT_HIGH] + [dim for _, dim in embeddings.values()])
    choices = []
    for spec in specs:
        shape = [batch if (axis == 0 and dim == 0) else dim
                 for axis, dim in enumerate(filled[spec.name])]
        choice = InputChoice(spec.name, shape, dtypes[spec.name], "", _shape_source(
            spec.name, given, unknown_kind(templates[spec.name]), sizes), high=bound)
        _set_values(choice, embeddings.get(spec.name))
        choices.append(choice)
    plan = InputPlan(choices)
    if model is not None and (given or not all(size.found for size in sizes.values())):
        _check_plan(plan, probe)  # shapes no search has checked: the user's, or a fallback
    return plan


def _check_plan(plan: InputPlan, probe) -> None:
    """Refuse shapes the model's architecture rejects: too small an image does not always
    raise when it runs (empty intermediate results pool to NaN), so it must not get that far."""
    reason = rejection(probe, {choice.name: tuple(choice.shape) for choice in plan.choices})
    if reason:
        raise BadInputError(
            f"the model rejects the verification inputs ({plan.describe()}): {reason}",
            hint=f"Give inputs it accepts: {FIX_OPTIONS}.",
        )


def makeable(specs: list[TensorSpec]) -> bool:
    """Whether random values can be made for every input (no string or resource inputs)."""
    try:
        return all(_numeric_dtype(spec) for spec in specs)
    except BadInputError:
        return False


def _numeric_dtype(spec: TensorSpec) -> str:
    try:
        dtype = np.dtype(spec.dtype)
    except TypeError:
        dtype = None
    if dtype is None or dtype.kind not in "fiub":
        raise BadInputError(
            f"input '{spec.name}' has dtype {spec.dtype}; random inputs cannot be made for it.",
            hint="Pass --inputs FILE.npz with arrays named after the inputs.",
        )
    return dtype.name


def _set_values(choice: InputChoice, embedding: tuple[str, int] | None) -> None:
    kind = np.dtype(choice.dtype).kind
    if embedding is not None:
        layer, vocabulary = embedding
        choice.tokens, choice.high = True, max(1, min(vocabulary, DEFAULT_INT_HIGH))
        choice.values = f"token ids in [0, {choice.high}) for Embedding '{layer}'"
    elif kind in "iu":
        choice.values = f"integers in [0, {choice.high})"
    elif kind == "b":
        choice.values = "booleans"
    else:
        choice.values = "normal(0, 1)"


def plan_from_file(path: Path, specs: list[TensorSpec]) -> InputPlan:
    """The plan of `--inputs FILE.npz`: its arrays, keyed by input name."""
    arrays = read_inputs(Path(path), specs)
    choices = [InputChoice(name, list(array.shape), array.dtype.name, "from file",
                           f"--inputs {path}") for name, array in arrays.items()]
    return InputPlan(choices, fixed=arrays)


def read_inputs(path: Path, specs: list[TensorSpec]) -> Tensors:
    """Inputs from an .npz file: keys are input names, or `x_0, x_1, ...` in input order (a lone
    array fits a lone input)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError) as error:
        raise BadInputError(f"--inputs {path} is not a readable .npz file ({error}).") from None
    names = [spec.name for spec in specs]
    if len(arrays) == 1 and len(specs) == 1:
        return {names[0]: next(iter(arrays.values()))}
    positional = [f"x_{index}" for index in range(len(names))]
    if not set(names) & set(arrays) and set(positional) <= set(arrays):
        # A reference file (`x_0, x_1, ...` in model-input order, `y_*` outputs beside them).
        return {name: arrays[key] for name, key in zip(names, positional)}
    missing = [name for name in names if name not in arrays]
    if missing:
        raise BadInputError(
            f"--inputs {path} lacks arrays for input(s) {', '.join(missing)}; "
            f"it has {', '.join(arrays) or 'none'}."
        )
    return {name: arrays[name] for name in names}


def embedding_inputs(model) -> dict[str, tuple[str, int]]:
    """Input name -> (Embedding layer, vocabulary size) for inputs that feed an Embedding
    directly or through nested models: their values must be token ids, not random floats."""
    from exporter.model_tensors import input_specs, model_inputs

    found = {}
    for spec, tensor in zip(input_specs(model), model_inputs(model)):
        hit = _embedding_fed_by(model, tensor)
        if hit is not None:
            found[spec.name] = hit
    return found


def _embedding_fed_by(model, tensor, depth: int = 0) -> tuple[str, int] | None:
    for layer in getattr(model, "layers", []):
        for node in getattr(layer, "_inbound_nodes", []):
            # tf-keras nodes list their KerasTensor arguments as keras_inputs.
            arguments = list(getattr(node, "keras_inputs", None) or node.input_tensors or [])
            for index, argument in enumerate(arguments):
                if argument is not tensor:
                    continue
                if type(layer).__name__ == "Embedding" and isinstance(
                        getattr(layer, "input_dim", None), int):
                    return layer.name, layer.input_dim
                inner = list(getattr(layer, "inputs", None) or [])
                if hasattr(layer, "layers") and index < len(inner) and depth < 8:
                    hit = _embedding_fed_by(layer, inner[index], depth + 1)
                    if hit is not None:
                        return hit
    return None
