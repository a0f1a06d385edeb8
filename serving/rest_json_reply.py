"""Outputs as TF Serving's REST JSON replies: `predictions` (row requests) or `outputs`
(columnar ones), floats in their shortest exact form, `{"b64": ...}` for outputs whose name ends
in `_bytes`, and `{"error": ...}` bodies (json_tensor.cc, http_rest_api_handler.cc). The request
side is serving/rest_json.py.
"""

from __future__ import annotations

import base64
import json

import numpy as np

from serving.rpc import invalid


def predict_reply(outputs: dict[str, np.ndarray], request_format: str) -> bytes:
    """The JSON reply to :predict: `predictions` for row requests, `outputs` for columnar ones."""
    if not outputs:
        raise invalid("Cannot convert empty tensor map to JSON")
    names = sorted(outputs)
    if request_format == "columnar":
        if len(names) == 1:
            body = _array_text(names[0], outputs[names[0]])
        else:
            body = _object_text({name: _array_text(name, outputs[name]) for name in names})
        return f'{{"outputs": {body}}}'.encode()
    batch = None
    for name in names:
        if outputs[name].ndim == 0:
            raise invalid(f"Tensor name: {name} has no shape information ")
        if batch is not None and outputs[name].shape[0] != batch:
            raise invalid(f"Tensor name: {name} has inconsistent batch size: "
                          f"{outputs[name].shape[0]} expecting: {batch}")
        batch = outputs[name].shape[0]
    if len(names) == 1:
        rows = [_array_text(names[0], item) for item in outputs[names[0]]]
    else:
        rows = [_object_text({name: _array_text(name, outputs[name][i]) for name in names})
                for i in range(batch)]
    return ('{"predictions": [' + ",".join(rows) + "]}").encode()


def error_body(message: str) -> bytes:
    """TF Serving's error reply: `{"error": "<message>"}`."""
    return json.dumps({"error": message}).encode()


def _array_text(name: str, arr) -> str:
    """JSON text of an array (or one element of it), floats in their shortest exact form."""
    arr = np.asarray(arr)
    if arr.dtype == object or arr.dtype.kind in "SU":
        as_b64 = name.endswith("_bytes")
        tokens = np.array([_string_token(v, as_b64) for v in arr.ravel()], dtype=object)
        tokens = tokens.reshape(arr.shape)
    elif arr.dtype.kind == "b":
        tokens = np.where(arr, "true", "false")
    elif arr.dtype.kind == "f":
        tokens = arr.astype(np.float32 if arr.dtype.itemsize <= 4 else arr.dtype).astype(str)
        tokens = np.where(np.isnan(arr), "NaN", tokens)
        tokens = np.where(np.isposinf(arr), "Infinity", np.where(np.isneginf(arr), "-Infinity",
                                                                 tokens))
    elif arr.dtype.kind in "iu":
        tokens = arr.astype(str)
    else:
        raise invalid(f"Failed to write JSON value for tensor type: {arr.dtype}")
    return _nest(tokens)


def _nest(tokens: np.ndarray) -> str:
    if tokens.ndim == 0:
        return str(tokens.item() if tokens.dtype == object else tokens)
    if tokens.ndim == 1:
        return "[" + ",".join(map(str, tokens.tolist())) + "]"
    return "[" + ",".join(_nest(part) for part in tokens) + "]"


def _string_token(value, as_b64: bool) -> str:
    raw = value if isinstance(value, bytes) else str(value).encode("utf-8")
    if as_b64:
        return '{"b64": ' + json.dumps(base64.b64encode(raw).decode("ascii")) + "}"
    return json.dumps(raw.decode("utf-8", errors="replace"))


def _object_text(items: dict[str, str]) -> str:
    return "{" + ",".join(f"{json.dumps(key)}: {text}" for key, text in items.items()) + "}"


def float_token(value: float) -> str:
    return _array_text("", np.float32(value))
