"""Arrays converted to a signature's DataType only when no value changes (`cast_lossless`): what
clients check before they encode an input (serving/tensors.py) as the dtype the server expects.
"""

from __future__ import annotations

import numpy as np

from exporter.errors import BadInputError
from serving.protos import types_pb2
from serving.tensors import as_bytes, dtype_name, numpy_dtype


def cast_lossless(array, dtype: int, name: str = "input") -> np.ndarray:
    """Convert an array to a DataType when no value changes; else say why not.

    Floats may round to a narrower float (JSON numbers carry no precision), but never overflow;
    every other conversion must keep each value exactly (integral floats to ints, 0/1 to bool).

    Args:
        array: the values, any numpy-convertible input.
        dtype: the DataType the signature declares.
        name: what to call the array in the message (an input name).

    Raises:
        BadInputError: the conversion would change values or makes no sense (text to numbers).
    """
    arr = np.asarray(array)
    target = numpy_dtype(dtype)
    if arr.dtype == target:
        return arr
    wanted = dtype_name(dtype)
    if dtype == types_pb2.DT_STRING:
        if arr.dtype.kind in "USO":
            return _as_object_bytes(arr, name, wanted)
        raise BadInputError(f"Input '{name}' holds {arr.dtype} values but the signature expects "
                            f"{wanted}.")
    if arr.dtype.kind in "USO":
        raise BadInputError(f"Input '{name}' holds text but the signature expects {wanted}.",
                            hint="Send numbers, or check the input name.")
    if arr.size == 0:
        return arr.astype(target)
    reason = _loss_reason(arr, target)
    if reason:
        raise BadInputError(f"Input '{name}' cannot be sent as {wanted}: {reason}.")
    return arr.astype(target)


def _loss_reason(arr: np.ndarray, target: np.dtype) -> str | None:
    """Why casting arr to target would change a value, or None when it would not."""
    kind = target.kind
    if arr.dtype.kind == "c" and kind != "c":
        return "it holds complex values"
    if kind == "b":
        if np.isin(arr, (0, 1)).all():
            return None
        return "only 0 and 1 convert to bool"
    if kind in "iu":
        if arr.dtype.kind == "f":
            if not np.isfinite(arr).all():
                return "it holds NaN or infinity"
            fractional = arr[arr != np.round(arr)]
            if fractional.size:
                return f"it holds non-integer values (e.g. {fractional.flat[0].item()!r})"
        info = np.iinfo(target)
        low, high = arr.min(), arr.max()
        if low < info.min or high > info.max:
            values = f"value {low}" if low == high else f"values {low}..{high}"
            return f"{values} outside {target.name}'s range {info.min}..{info.max}"
        return None
    # float, bfloat16 ('V' kind) and complex targets
    if arr.dtype.kind in "iu":
        back = arr.astype(target).astype(arr.dtype)
        if not np.array_equal(back, arr):
            return f"integers this large lose precision in {target.name}"
        return None
    if arr.dtype.kind in "fc":
        with np.errstate(over="ignore", invalid="ignore"):
            converted = arr.astype(target)
        overflow = np.isinf(converted) & ~np.isinf(arr)
        if overflow.any():
            return f"{arr[overflow].flat[0].item()!r} overflows {target.name}"
    return None


def _as_object_bytes(arr: np.ndarray, name: str, wanted: str) -> np.ndarray:
    out = np.empty(arr.shape, dtype=object)
    try:
        out.ravel()[:] = [as_bytes(v) for v in arr.ravel()]
    except BadInputError as err:
        raise BadInputError(f"Input '{name}' cannot be sent as {wanted}: {err.message}") from None
    return out
