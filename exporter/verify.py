"""Numerical verification: run two models on the same seeded inputs and compare every output.

The report is structured (per output: shapes, max abs/rel difference, pass/fail) and collects
every failure before anything is decided, so one run tells the whole story.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from exporter.errors import BadInputError
from exporter.loaded import LoadedModel, Tensors, TensorSpec

DEFAULT_ATOL = 1e-5
DEFAULT_RTOL = 1e-4
DEFAULT_BATCH = 2  # two examples catch batch-mixing bugs (e.g. BatchNorm left in training mode)
# One example for large inputs (a 224x224x3 image is 150k values): the activations of a second
# example cost more memory than the whole export does. `--inputs` sets any batch.
LARGE_EXAMPLE_VALUES = 1 << 16
DEFAULT_DIM = 32  # for unknown non-batch dimensions (sequence length, image size)
DEFAULT_INT_HIGH = 10


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
    inputs: dict = field(default_factory=dict)
    outputs: list[OutputComparison] = field(default_factory=list)

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


def make_inputs(
    specs: list[TensorSpec], seed: int = 0, int_high: int = DEFAULT_INT_HIGH
) -> Tensors:
    """Seeded random inputs built from input specs (unknown dims get fixed sizes)."""
    rng = np.random.default_rng(seed)
    batch = _batch_size(specs)
    inputs = {}
    for spec in specs:
        dims = spec.shape if spec.shape is not None else (None,)  # unknown rank: a batch vector
        shape = [
            (batch if i == 0 else DEFAULT_DIM) if dim is None else dim
            for i, dim in enumerate(dims)
        ]
        dtype = np.dtype(spec.dtype) if spec.dtype not in ("string", "variant", "resource") else None
        if dtype is None:
            raise BadInputError(
                f"input '{spec.name}' has dtype {spec.dtype}; random inputs cannot be made for it.",
                hint="Pass --inputs FILE.npz with arrays named after the inputs.",
            )
        if dtype.kind == "f":
            inputs[spec.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind in "iu":
            inputs[spec.name] = rng.integers(0, int_high, size=shape).astype(dtype)
        elif dtype.kind == "b":
            inputs[spec.name] = rng.integers(0, 2, size=shape).astype(bool)
        else:
            raise BadInputError(f"input '{spec.name}' has unsupported dtype {spec.dtype}.")
    return inputs


def _batch_size(specs: list[TensorSpec]) -> int:
    values = sum(
        int(np.prod([DEFAULT_DIM if d is None else d for d in spec.shape[1:]]))
        for spec in specs
        if spec.shape
    )
    return 1 if values > LARGE_EXAMPLE_VALUES else DEFAULT_BATCH


def read_inputs(path: Path, specs: list[TensorSpec]) -> Tensors:
    """Inputs from an .npz file: keys are input names, or `x_0, x_1, ...` in input order (a lone
    array fits a lone input)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError) as error:
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


def rename_inputs(feed: Tensors, specs: list[TensorSpec]) -> Tensors:
    """Key `feed` by the names of `specs`: by name, or by position when names differ."""
    names = [spec.name for spec in specs]
    if set(names) == set(feed):
        return {name: feed[name] for name in names}
    if len(names) == len(feed):
        return dict(zip(names, feed.values()))
    raise BadInputError(
        f"the two models take different inputs: {', '.join(feed)} vs {', '.join(names)}."
    )


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


def embedding_bound(model) -> int:
    """Largest safe integer input: the smallest Embedding vocabulary in the model."""
    sizes = [
        layer.input_dim
        for layer in getattr(model, "_flatten_layers", list)()
        if hasattr(layer, "input_dim") and isinstance(layer.input_dim, int)
    ]
    return min(sizes) if sizes else DEFAULT_INT_HIGH


def verify_loaded(
    reference: LoadedModel,
    candidate: LoadedModel,
    inputs_file: Path | None = None,
    atol: float = DEFAULT_ATOL,
    rtol: float = DEFAULT_RTOL,
    seed: int = 0,
) -> VerificationReport:
    """Run both on the same inputs (seeded, or from `inputs_file`) and compare their outputs."""
    if inputs_file is not None:
        feed = read_inputs(inputs_file, reference.inputs)
    else:
        model = reference.model if reference.model is not None else candidate.model
        feed = make_inputs(reference.inputs, seed, embedding_bound(model) if model else DEFAULT_INT_HIGH)
    expected = reference.reference(feed)
    actual = candidate.reference(rename_inputs(feed, candidate.inputs))
    report = compare_outputs(expected, actual, atol, rtol)
    report.inputs = {name: list(array.shape) for name, array in feed.items()}
    return report
