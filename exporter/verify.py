"""Numerical verification: run two models on the same seeded inputs and compare every output.

The report is structured (per output: shapes, max abs/rel difference, pass/fail) and collects
every failure before anything is decided, so one run tells the whole story. `verify_artifacts`
is `kexport verify`: two artifacts read from disk, compared.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from exporter.errors import BadInputError, KexportError
from exporter.formats.failures import first_line
from exporter.model_io import load_model
from exporter.model_types import LoadedModel, LoadOptions, Tensors, TensorSpec
from exporter.tolerances import DEFAULT_ATOL, DEFAULT_RTOL
from exporter.verify_inputs import (
    FIX_OPTIONS,
    InputPlan,
    plan_from_file,
    plan_inputs,
)

# Names Keras and TensorFlow make up for inputs nobody named; they say nothing about order.
_MADE_UP_NAME = re.compile(r"^(input|inputs|input_layer|keras_tensor|args)(_\d+)?$")


@dataclass
class OutputComparison:
    name: str
    reference_shape: list
    candidate_shape: list
    max_abs_diff: float | None
    max_rel_diff: float | None
    passed: bool
    reason: str = ""


@dataclass
class VerificationReport:
    passed: bool
    atol: float
    rtol: float
    inputs: dict = field(default_factory=dict)  # name -> shape fed
    outputs: list[OutputComparison] = field(default_factory=list)
    # name -> shape, dtype, kind of values, and where the shape came from
    input_sources: dict = field(default_factory=dict)
    pairing: str = ""  # how the candidate's inputs were matched to the reference's

    def as_dict(self) -> dict:
        return asdict(self)

    def failures(self) -> list[OutputComparison]:
        return [out for out in self.outputs if not out.passed]

    def summary(self) -> str:
        """One line: what differs, or that everything matched."""
        if self.passed:
            worst = max((o.max_abs_diff or 0.0 for o in self.outputs), default=0.0)
            return f"verified: {len(self.outputs)} output(s) match (max abs diff {worst:.3g})"
        parts = [
            f"{o.name}: {o.reason or f'max abs diff {o.max_abs_diff:.3g}'}" for o in self.failures()
        ]
        return f"outputs differ (atol={self.atol:g}, rtol={self.rtol:g}): " + "; ".join(parts)


def make_inputs(specs: list[TensorSpec], seed: int = 0, int_high: int | None = None) -> Tensors:
    """Seeded random inputs from input specs alone (no architecture: unknown dims get default
    sizes); `int_high` bounds integer values."""
    plan = plan_inputs(specs)
    for choice in plan.choices:
        choice.high = int_high or choice.high
    return plan.make(seed)


def pair_names(reference: list[str], candidate: list[str]) -> tuple[dict[str, str], str]:
    """Match the candidate's inputs to the reference's: by name whenever both sides name them,
    by position only when neither does (a SavedModel sorts its inputs by name, so position
    alone can swap two of them). Returns reference name -> candidate name, and how."""
    if sorted(reference) == sorted(candidate):
        return {name: name for name in reference}, "by name"
    if len(reference) == len(candidate) == 1:
        return {reference[0]: candidate[0]}, "the only input of each"
    if len(reference) == len(candidate) and all(map(_MADE_UP_NAME.match, reference + candidate)):
        return dict(zip(reference, candidate)), "by position (neither side names its inputs)"
    raise BadInputError(
        f"the two models' inputs cannot be paired by name: {', '.join(reference)} vs "
        f"{', '.join(candidate)}; pairing them by position could swap them.",
        hint="Give the input layers the same names on both sides.",
    )


def rename_inputs(feed: Tensors, specs: list[TensorSpec]) -> tuple[Tensors, str]:
    """Key `feed` by the names of `specs` (see `pair_names`); also says how they were paired."""
    mapping, how = pair_names(list(feed), [spec.name for spec in specs])
    return {mapping[name]: value for name, value in feed.items()}, how


def _pair_outputs(reference: Tensors, candidate: Tensors) -> list[tuple[str, str]]:
    if set(reference) == set(candidate):
        return [(name, name) for name in reference]
    if len(reference) == len(candidate) == 1:
        return [(next(iter(reference)), next(iter(candidate)))]
    return []


def compare_outputs(
    reference: Tensors, candidate: Tensors, atol: float = DEFAULT_ATOL, rtol: float = DEFAULT_RTOL
) -> VerificationReport:
    """Compare outputs elementwise: |c - r| <= atol + rtol * |r| (NaN equals NaN)."""
    pairs = _pair_outputs(reference, candidate)
    if not pairs:
        failure = OutputComparison(
            "*", [], [], None, None, False,
            f"outputs cannot be paired: {sorted(reference)} vs {sorted(candidate)}",
        )
        return VerificationReport(False, atol, rtol, outputs=[failure])
    results = [_compare_one(name, reference[name], candidate[other], atol, rtol) for name, other in pairs]
    return VerificationReport(all(r.passed for r in results), atol, rtol, outputs=results)


def _compare_one(name, ref, cand, atol, rtol) -> OutputComparison:
    ref, cand = np.asarray(ref), np.asarray(cand)
    shapes = (list(ref.shape), list(cand.shape))
    if ref.shape != cand.shape:
        return OutputComparison(name, *shapes, None, None, False, f"shape {shapes[1]} != {shapes[0]}")
    if ref.dtype.kind in "fciub" and cand.dtype.kind in "fciub":
        a, b = ref.astype(np.float64), cand.astype(np.float64)
        same_nan = np.isnan(a) == np.isnan(b)
        diff = np.where(np.isnan(a) & np.isnan(b), 0.0, np.abs(b - a))
        rel = diff / np.maximum(np.abs(a), np.finfo(np.float64).tiny)
        ok = bool(np.all(same_nan) and np.all(diff <= atol + rtol * np.abs(a)))
        max_abs = float(np.nanmax(diff)) if diff.size else 0.0
        max_rel = float(np.nanmax(np.where(diff == 0, 0.0, rel))) if diff.size else 0.0
        return OutputComparison(name, *shapes, max_abs, max_rel, ok, "" if ok else "values differ")
    ok = bool(np.array_equal(ref, cand))
    return OutputComparison(name, *shapes, 0.0 if ok else None, 0.0 if ok else None, ok,
                            "" if ok else "values differ")


def architecture(loaded: LoadedModel, specs: list[TensorSpec]):
    """The Keras model (Keras 3, else the tf-keras reference) whose inputs are `specs`, to plan
    verification inputs from; None when there is none (a SavedModel signature)."""
    from exporter.model_tensors import input_specs

    wanted = sorted((spec.name, spec.dtype) for spec in specs)
    for model in (loaded.model, getattr(loaded.reference, "model", None)):
        if model is not None and sorted(
            (spec.name, spec.dtype) for spec in input_specs(model)
        ) == wanted:
            return model
    return None


def plan_for(loaded: LoadedModel, inputs_file: Path | None = None,
             input_shapes: dict | None = None, other: LoadedModel | None = None,
             model=None) -> InputPlan:
    """The inputs to verify `loaded` on: from `inputs_file`, else planned from `model`, its
    architecture, or `other`'s when it has none; `--input-shape` first."""
    if inputs_file is not None:
        if input_shapes:
            raise BadInputError("--inputs fixes every input's shape; drop --input-shape.")
        return plan_from_file(Path(inputs_file), loaded.inputs)
    model = model or architecture(loaded, loaded.inputs)
    if model is None and other is not None:
        model = architecture(other, loaded.inputs)
    return plan_inputs(loaded.inputs, model, loaded.reference, input_shapes)


def run_reference(loaded: LoadedModel, feed: Tensors, plan: InputPlan) -> Tensors:
    """Call the reference; a model that rejects the inputs is bad input (exit 2), named."""
    try:
        return loaded.reference(feed)
    except KexportError:
        raise
    except Exception as error:
        raise inputs_rejected(loaded.path, plan, error) from error


def inputs_rejected(path: Path, plan: InputPlan, error: Exception) -> BadInputError:
    """The error for a model that fails on its verification inputs: what it got, how to fix."""
    return BadInputError(
        f"{path} rejects the verification inputs ({plan.describe()}): "
        f"{type(error).__name__}: {first_line(error)}",
        hint=f"Give inputs it accepts: {FIX_OPTIONS}.",
    )


def run_candidate(loaded: LoadedModel, feed: Tensors) -> Tensors | str:
    """Call the candidate; a failure on inputs the reference accepts is returned as its reason."""
    try:
        return loaded.reference(feed)
    except KexportError:
        raise
    except Exception as error:  # noqa: BLE001 - it is a verification failure, reported
        return f"{loaded.path} fails on inputs the reference accepts: " \
               f"{type(error).__name__}: {first_line(error)}"


def compare_runs(expected: Tensors, actual: Tensors | str, atol: float,
                 rtol: float) -> VerificationReport:
    """`compare_outputs`, or a failed report when the candidate could not run."""
    if isinstance(actual, str):
        failure = OutputComparison("*", [], [], None, None, False, actual)
        return VerificationReport(False, atol, rtol, outputs=[failure])
    return compare_outputs(expected, actual, atol, rtol)


def verify_loaded(
    reference: LoadedModel,
    candidate: LoadedModel,
    inputs_file: Path | None = None,
    atol: float = DEFAULT_ATOL,
    rtol: float = DEFAULT_RTOL,
    seed: int = 0,
    input_shapes: dict | None = None,
) -> VerificationReport:
    """Run both on the same inputs and compare their outputs.

    Args:
        reference / candidate: what to compare; the reference's inputs are planned and fed.
        inputs_file: an .npz of inputs (`--inputs`), else seeded values of planned shapes.
        input_shapes: parsed `--input-shape` options, keyed by the reference's input names.

    Raises:
        BadInputError: the reference rejects the inputs, or the inputs cannot be paired.
    """
    mapping, pairing = pair_names([s.name for s in reference.inputs],
                                  [s.name for s in candidate.inputs])
    plan = plan_for(reference, inputs_file, input_shapes, other=candidate)
    feed = plan.make(seed)
    expected = run_reference(reference, feed, plan)
    actual = run_candidate(candidate, {mapping[name]: value for name, value in feed.items()})
    report = compare_runs(expected, actual, atol, rtol)
    report.inputs = {name: list(array.shape) for name, array in feed.items()}
    report.input_sources = plan.as_dict()
    report.pairing = pairing
    return report


def verify_artifacts(
    first: Path,
    second: Path,
    options: LoadOptions | None = None,
    second_options: LoadOptions | None = None,
    inputs_file: Path | None = None,
    atol: float = DEFAULT_ATOL,
    rtol: float = DEFAULT_RTOL,
    input_shapes: dict | None = None,
) -> VerificationReport:
    """Compare what two artifacts compute on the same inputs (`first` is the reference)."""
    reference = load_model(Path(first), options)
    candidate = load_model(Path(second), second_options or options)
    return verify_loaded(reference, candidate, inputs_file, atol, rtol,
                         input_shapes=input_shapes)
