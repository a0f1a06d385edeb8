"""TF Serving's REST JSON <-> the protobuf requests and replies of its gRPC API.

The REST handler turns a JSON body into the same request message the gRPC servicer takes, calls
the same code, and turns the reply back into JSON, as TF Serving's http_rest_api_handler does; so
REST and gRPC cannot disagree. The JSON rules are TF Serving's (its REST API docs and
json_tensor.cc): row (`instances`) and columnar (`inputs`) requests, `{"b64": ...}` for binary
strings, tf.Example features for classify and regress (serving/rest_examples.py), and its error
messages. The `predictions` / `outputs` replies are written by serving/rest_json_reply.py. TF-free:
numpy and the project's wire layer only.
"""

from __future__ import annotations

import base64
import binascii
import json

import grpc
import numpy as np

from serving import tensors
from serving.protos import types_pb2
from serving.rpc import RpcFailure, invalid

_FLOATS = (types_pb2.DT_FLOAT, types_pb2.DT_DOUBLE, types_pb2.DT_HALF, types_pb2.DT_BFLOAT16)
_FLOAT32_MAX_INT = (1 << 24) - 1  # larger integers do not survive a float32 (TF Serving refuses)


def parse_body(body: bytes) -> dict:
    """The request body as a JSON object; TF Serving's parse errors otherwise."""
    if not body.strip():
        raise invalid("JSON Parse error: The document is empty")
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        raise invalid(f"JSON Parse error: {err}") from None
    if not isinstance(doc, dict):
        raise invalid(f"JSON Value: {short(doc)} Is not object")
    return doc


def signature_name(doc: dict) -> str:
    """The optional `signature_name` of a request body ('' when absent)."""
    name = doc.get("signature_name", "")
    if not isinstance(name, str):
        raise invalid(f"JSON Value: {short(doc)} not formatted correctly. 'signature_name' key "
                      "must be a string value.")
    return name


def fill_predict_inputs(doc: dict, input_dtypes: dict[str, int], request) -> str:
    """Fill `request.inputs` from `instances` (rows) or `inputs` (columns); return the format.

    Args:
        doc: the parsed body.
        input_dtypes: the signature's input aliases and DataTypes (TF Serving reads them from the
            SignatureDef to know how to read the JSON values).
        request: a PredictRequest to fill.

    Returns:
        "row" or "columnar": the reply uses `predictions` or `outputs` accordingly.
    """
    if "instances" in doc and "inputs" in doc:
        raise invalid(f"JSON Value: {short(doc)} Not formatted correctly expecting only one of "
                      "'inputs' or 'instances' keys to exist ")
    if "instances" in doc:
        rows = doc["instances"]
        if not isinstance(rows, list):
            raise invalid(f"JSON Value: {short(doc)} Excepting 'instances' to be an list/array")
        if not rows:
            raise invalid(f"JSON Value: {short(doc)} No values in 'instances' array")
        for name, arr in _rows_to_arrays(rows, input_dtypes).items():
            tensors.to_tensor_proto(arr, input_dtypes[name], tensor_content=False,
                                    out=request.inputs[name])
        return "row"
    if "inputs" in doc:
        for name, value in _columns(doc["inputs"], input_dtypes).items():
            arr = json_to_array(value, input_dtypes[name])
            tensors.to_tensor_proto(arr, input_dtypes[name], tensor_content=False,
                                    out=request.inputs[name])
        return "columnar"
    raise invalid("Missing 'inputs' or 'instances' key")


def json_to_array(value, dtype: int) -> np.ndarray:
    """One JSON value (a scalar or nested lists) as an array of `dtype`, checked as TF Serving does.

    Raises:
        RpcFailure: INVALID_ARGUMENT for ragged lists, values of the wrong JSON type, lossy
            numbers and bad base64.
    """
    if dtype == types_pb2.DT_STRING:
        return _strings(value)
    try:
        arr = np.array(value)
    except ValueError:
        raise invalid(f"JSON Value: {short(value)} is not a rectangular list: every list at one "
                      "level must have the same size") from None
    kind = arr.dtype.kind
    wanted = tensors.numpy_dtype(dtype) if dtype in _SUPPORTED else None
    if wanted is None:
        raise RpcFailure(grpc.StatusCode.UNIMPLEMENTED, f"Conversion of JSON Value: "
                         f"{short(value)} to type: {tensors.dtype_name(dtype)}")
    expected = "b" if dtype == types_pb2.DT_BOOL else ("fiu" if dtype in _FLOATS else "iu")
    if arr.size and kind not in expected:
        raise invalid(f"JSON Value: {short(value)} Type: {json_type(value)} is not of expected "
                      f"type: {tensors.dtype_name(dtype)}")
    if dtype in _FLOATS and kind in "iu" and arr.size and np.abs(arr).max() > _FLOAT32_MAX_INT \
            and dtype != types_pb2.DT_DOUBLE:
        raise invalid(f"Cannot convert JSON value: {short(value)} to float without loss of "
                      "precision.")
    if wanted.kind in "iu" and arr.size and (arr.min() < np.iinfo(wanted).min or
                                             arr.max() > np.iinfo(wanted).max):
        raise invalid(f"JSON Value: {short(value)} Type: Number is not of expected type: "
                      f"{tensors.dtype_name(dtype)} (out of range)")
    with np.errstate(over="ignore"):
        converted = arr.astype(wanted)
    if kind == "f" and not np.array_equal(np.isfinite(converted), np.isfinite(arr)):
        raise invalid(f"Cannot convert JSON value: {short(value)} to "
                      f"{tensors.dtype_name(dtype)} without loss of precision.")
    return converted


_SUPPORTED = {types_pb2.DT_FLOAT, types_pb2.DT_DOUBLE, types_pb2.DT_INT32, types_pb2.DT_INT16,
              types_pb2.DT_INT8, types_pb2.DT_UINT8, types_pb2.DT_INT64, types_pb2.DT_BOOL,
              types_pb2.DT_UINT32, types_pb2.DT_UINT64, types_pb2.DT_HALF}


def _rows_to_arrays(rows: list, input_dtypes: dict[str, int]) -> dict[str, np.ndarray]:
    names = sorted(input_dtypes)
    if not _is_named(rows[0]):
        if len(names) > 1:
            raise invalid("instances is a plain list, but expecting list of objects as multiple "
                          "input tensors required as per tensorinfo_map")
        for index, row in enumerate(rows):
            if _is_named(row):
                raise invalid(f"Expecting value/list but got object at item {index} of input list")
        return {names[0]: _batch(rows, input_dtypes[names[0]], names[0])}
    for index, row in enumerate(rows):
        if not _is_named(row):
            raise invalid(f"Expecting object but got list at item {index} of input list")
        for key in row:
            if key not in input_dtypes:
                raise invalid(f"Failed to process element: {index} key: {key} of 'instances' "
                              f"list. Error: JSON object: does not have named input: {key}")
        if set(row) != set(names):
            raise invalid(f"Failed to process element: {index} of 'instances' list. JSON object: "
                          f"{short(row)} keys must be equal to: {','.join(names)}")
    return {name: _batch([row[name] for row in rows], input_dtypes[name], name) for name in names}


def _batch(items: list, dtype: int, name: str) -> np.ndarray:
    parts = [json_to_array(item, dtype) for item in items]
    first = parts[0].shape
    for index, part in enumerate(parts):
        if part.shape != first:
            raise invalid(f"Failed to process element: {index} of 'instances' list. Error: "
                          f"Expecting shape {list(first)} but got: {list(part.shape)} "
                          f"(input '{name}')")
    return np.stack(parts) if parts else np.zeros((0,))


def _columns(value, input_dtypes: dict[str, int]) -> dict:
    names = sorted(input_dtypes)
    if not _is_named(value):
        if len(names) > 1:
            raise invalid("inputs is a plain value/list, but expecting an object as multiple "
                          "input tensors required as per tensorinfo_map")
        return {names[0]: value}
    for name in names:
        if name not in value:
            raise invalid(f"Missing named input: {name} in 'inputs' object.")
    return {name: value[name] for name in names}


def _is_named(value) -> bool:
    """A JSON object naming inputs, as opposed to a value or a `{"b64": ...}` string."""
    return isinstance(value, dict) and not is_b64(value)


def is_b64(value) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _strings(value) -> np.ndarray:
    shape: list[int] = []
    probe = value
    while isinstance(probe, list):
        shape.append(len(probe))
        probe = probe[0] if probe else None
    flat: list[bytes] = []
    _flatten_strings(value, shape, 0, flat)
    arr = np.empty(len(flat), dtype=object)
    arr[:] = flat
    return arr.reshape(shape)


def _flatten_strings(value, shape: list[int], level: int, out: list) -> None:
    if not isinstance(value, list):
        if level != len(shape):
            raise invalid(f"JSON Value: {short(value)} found at incorrect level: {level + 1} in "
                          f"the JSON DOM. Expected at level: {len(shape)}")
        out.append(string_value(value))
        return
    if level >= len(shape) or len(value) != shape[level]:
        raise invalid(f"Encountered list at unexpected size: {len(value)} at level: {level} "
                      f"expected size: {shape[level] if level < len(shape) else 0}")
    for item in value:
        _flatten_strings(item, shape, level + 1, out)


def string_value(value) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, dict):
        return _decode_b64(value)
    raise invalid(f"JSON Value: {short(value)} Type: {json_type(value)} is not of expected "
                  "type: string")


def _decode_b64(value) -> bytes:
    if not is_b64(value):
        raise invalid(f"JSON Value: {short(value)} not formatted correctly for base64 data")
    try:
        return base64.b64decode(value["b64"], validate=True)
    except (binascii.Error, ValueError):
        try:  # TF Serving also takes the web-safe alphabet
            return base64.urlsafe_b64decode(value["b64"])
        except (binascii.Error, ValueError):
            raise invalid("Unable to base64 decode") from None


def json_type(value) -> str:
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "True" if value else "False"
    return {dict: "Object", list: "Array", str: "String"}.get(type(value), "Number")


def short(value, limit: int = 200) -> str:
    """A JSON value for an error message, cut short when long."""
    text = json.dumps(value)
    return text if len(text) <= limit else text[:limit] + "..."

