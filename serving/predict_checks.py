"""TF Serving's checks of a PredictRequest against its SignatureDef (predict_util.cc), with its
status codes and messages: the inputs sent against those the signature has (or defaults), their
decoded values, the output filter, and the dtypes (TensorFlow's own message for those).
"""

from __future__ import annotations

import grpc
import numpy as np

from exporter.errors import BadInputError
from serving import tensors
from serving.rpc import RpcFailure


def check_inputs_size(signature, request) -> None:
    """INVALID_ARGUMENT when more inputs are sent than the signature has, or fewer and it has no
    defaults."""
    sent, wanted = set(request.inputs), set(signature.inputs)
    if len(sent) > len(wanted) or (len(sent) < len(wanted) and not signature.defaults):
        raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, (
            f"input size does not match signature: {len(sent)}!={len(wanted)} "
            f"len({{{_join(sent)}}}) != len({{{_join(wanted)}}}). "
            f"Sent extra: {{{_join(sent - wanted)}}}. Missing but required: {{{_join(wanted - sent)}}}."))


def input_values(signature, request) -> list[tuple[str, np.ndarray]]:
    """(alias, array) of every signature input, sorted, from the request or its default.

    Raises:
        RpcFailure: INVALID_ARGUMENT for a missing input, an unknown name or a bad tensor.
    """
    feeds, seen = [], set()
    for alias in sorted(signature.inputs):
        if alias in request.inputs:
            proto = request.inputs[alias]
            seen.add(alias)
        elif alias in signature.defaults:
            proto = signature.defaults[alias]
        else:
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, (
                f"Signature input alias: {alias}(feed name: {signature.inputs[alias].name}) not "
                f"found in request and no default value provided. Inputs expected to be in the "
                f"request {{{_join(request.inputs)}}}, or default input alias set: "
                f"{_join(signature.defaults)}"))
        try:
            feeds.append((alias, tensors.to_ndarray(proto)))
        except BadInputError:
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT,
                             f"tensor parsing error: {alias}") from None
    if request.inputs and len(seen) != len(request.inputs):
        raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT,
                         f"Inputs contains invalid name. Used request inputs: {_join(seen)}, "
                         f"request input: {_join(request.inputs)}")
    return feeds


def output_aliases(signature, output_filter) -> list[str]:
    """The outputs to compute: the filter's, in its order, or every output sorted; an unknown or
    repeated alias in the filter is INVALID_ARGUMENT."""
    if not output_filter:
        return sorted(signature.outputs)
    seen: list[str] = []
    for alias in output_filter:
        if alias not in signature.outputs:
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, (
                f"output tensor alias not found in signature: {alias} Outputs expected to be in "
                f"the set {{{_join(signature.outputs)}}}."))
        if alias in seen:
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT,
                             f"duplicate output tensor alias: {alias}")
        seen.append(alias)
    return seen


def check_dtypes(signature, feeds) -> None:
    """INVALID_ARGUMENT when an input's dtype is not the signature's."""
    # TF Serving leaves this to the TensorFlow runtime, whose message this is.
    for index, (alias, arr) in enumerate(feeds):
        expected = signature.inputs[alias].dtype
        sent = tensors.dtype_from_numpy(arr.dtype)
        if sent != expected:
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, (
                f"Expects arg[{index}] to be {tensors.dtype_name(expected)} but "
                f"{tensors.dtype_name(sent)} is provided"))


def _join(names) -> str:
    return ",".join(sorted(names))
