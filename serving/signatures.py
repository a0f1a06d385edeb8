"""Serving signatures as GetModelMetadata describes them: input and output names, dtypes, shapes.

TF-free: decoded from the `signature_def` Any of a GetModelMetadataResponse with the private
wire-compatible messages.
"""

from __future__ import annotations

from dataclasses import dataclass

from serving import tensors
from serving.errors import ServingError
from serving.protos import get_model_metadata_pb2


@dataclass(frozen=True)
class SignatureTensor:
    """One input or output of a signature as its TensorInfo describes it: alias, DataType enum and
    shape (-1 for unknown dimensions, None for an unknown rank). Not `exporter.model_types.
    TensorSpec`, which holds a Keras model's tensor with a dtype name and None dimensions."""

    name: str
    dtype: int
    shape: tuple[int, ...] | None

    @property
    def dtype_name(self) -> str:
        """TensorFlow's name of the dtype, e.g. `float`."""
        return tensors.dtype_name(self.dtype)


@dataclass(frozen=True)
class Signature:
    """A serving signature: its name, inputs and outputs by alias, and inputs with defaults."""

    name: str
    inputs: dict[str, SignatureTensor]
    outputs: dict[str, SignatureTensor]
    method_name: str = ""
    defaults: frozenset[str] = frozenset()


def signatures_from_metadata(response) -> dict[str, Signature]:
    """Every signature in a GetModelMetadataResponse, by name.

    Raises:
        ServingError: the response carries no `signature_def` map.
    """
    packed = response.metadata.get("signature_def")
    if packed is None or not packed.type_url.endswith("SignatureDefMap"):
        raise ServingError("GetModelMetadata answered without a signature_def map.")
    sigmap = get_model_metadata_pb2.SignatureDefMap.FromString(packed.value)
    return {name: Signature(name, _specs(sig.inputs), _specs(sig.outputs), sig.method_name,
                            frozenset(sig.defaults)) for name, sig in sigmap.signature_def.items()}


def _specs(infos) -> dict[str, SignatureTensor]:
    specs = {}
    for name, info in infos.items():
        # No tensor_shape at all means unknown, as does unknown_rank; an empty one is a scalar.
        known = info.HasField("tensor_shape") and not info.tensor_shape.unknown_rank
        shape = tuple(d.size for d in info.tensor_shape.dim) if known else None
        specs[name] = SignatureTensor(name, info.dtype, shape)
    return specs
