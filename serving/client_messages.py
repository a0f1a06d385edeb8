"""What the prediction clients send and get back, whatever the transport (gRPC or REST).

A request names a model version by number or by label (TF Serving's ModelSpec holds them as a
oneof, so never both), names its inputs after the signature, and is cut into batches whose
answers are joined again; the answers are `Prediction` and `VersionStatus`. Shared by
`serving.grpc_client`, `serving.rest_client` and `serving.client_examples`. TF-free.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from exporter.errors import BadInputError, did_you_mean
from serving.signatures import Signature

DEFAULT_SIGNATURE = "serving_default"


@dataclass
class Prediction:
    """A Predict answer: output arrays by name, and which model version computed them."""

    outputs: dict[str, np.ndarray]
    model: str
    version: int | None
    signature: str
    versions: set[int] = field(default_factory=set)


@dataclass(frozen=True)
class VersionStatus:
    """One entry of GetModelStatus: version, state name (AVAILABLE, ...) and error."""

    version: int
    state: str
    error_code: int
    error_message: str


def check_version_choice(version: int | None, label: str | None) -> None:
    """Refuse a version and a label together: ModelSpec's version_choice is a oneof.

    Raises:
        BadInputError: both were given (exit 2).
    """
    if version is not None and label:
        raise BadInputError("--version and --label exclude each other; pass one.")


def fill_model_spec(spec, model: str, signature, version, label) -> None:
    """Fill a request's ModelSpec: model name, signature (if any), version or label (if any)."""
    check_version_choice(version, label)
    spec.name = model
    if signature:
        spec.signature_name = signature
    if version is not None:
        spec.version.value = int(version)
    elif label:
        spec.version_label = label


def named_inputs(spec: Signature, inputs) -> dict:
    """Inputs by name: one array for a single-input signature gets its name; a dict is checked
    against the signature (unknown names, missing inputs without defaults).

    Raises:
        BadInputError: the inputs do not fit the signature (exit 2).
    """
    if not isinstance(inputs, dict):
        required = [n for n in spec.inputs if n not in spec.defaults] or list(spec.inputs)
        if len(required) != 1:
            raise BadInputError(f"Signature '{spec.name}' has inputs {', '.join(sorted(required))}: "
                                "pass a dict of arrays by input name.")
        return {required[0]: inputs}
    for name in inputs:
        if name not in spec.inputs:
            raise BadInputError(f"Signature '{spec.name}' has no input '{name}'; its inputs are "
                                f"{', '.join(sorted(spec.inputs))}.{did_you_mean(name, spec.inputs)}")
    missing = sorted(set(spec.inputs) - set(inputs) - spec.defaults)
    if missing:
        raise BadInputError(f"Missing input(s) {', '.join(missing)} for signature '{spec.name}'.")
    return inputs


def split_batches(inputs: dict[str, np.ndarray], batch_size: int) -> list[dict[str, np.ndarray]]:
    """Cut the inputs into requests of at most batch_size examples; inputs whose first dimensions
    differ (or scalars) cannot be cut and go as one request."""
    leading = {arr.shape[0] if arr.ndim else None for arr in inputs.values()}
    if batch_size < 1 or len(leading) != 1 or None in leading:
        return [inputs]
    total = leading.pop()
    if total <= batch_size:
        return [inputs]
    return [{name: arr[start:start + batch_size] for name, arr in inputs.items()}
            for start in range(0, total, batch_size)]


def join_predictions(results: list[Prediction]) -> Prediction:
    """The answers of `split_batches`' requests, in order, as one Prediction."""
    if len(results) == 1:
        return results[0]
    outputs = {}
    for name in results[0].outputs:
        parts = [r.outputs[name] for r in results]
        joinable = all(p.ndim for p in parts)
        outputs[name] = np.concatenate(parts) if joinable else np.stack(parts)
    versions = set().union(*(r.versions for r in results))
    first = results[0]
    return Prediction(outputs, first.model, first.version, first.signature, versions)
