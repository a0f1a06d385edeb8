"""TensorProto <-> numpy without TensorFlow: the wire layer shared by the client and the server.

A TensorProto carries its values either as `tensor_content` (raw little-endian bytes) or in the
typed repeated field of its dtype (`float_val`, `int_val`, ...). TF Serving replies in typed fields
unless told otherwise, clients usually send `tensor_content`: both directions read both.
"""

from __future__ import annotations

import math

import numpy as np

from exporter.errors import BadInputError
from serving.protos import tensor_pb2, types_pb2

TensorProto = tensor_pb2.TensorProto
DataType = types_pb2.DataType

# DataType -> (numpy dtype name, typed field). bfloat16 needs ml_dtypes, imported only when used.
_SPECS: dict[int, tuple[str, str]] = {
    types_pb2.DT_FLOAT: ("float32", "float_val"),
    types_pb2.DT_DOUBLE: ("float64", "double_val"),
    types_pb2.DT_HALF: ("float16", "half_val"),
    types_pb2.DT_BFLOAT16: ("bfloat16", "half_val"),
    types_pb2.DT_INT8: ("int8", "int_val"),
    types_pb2.DT_INT16: ("int16", "int_val"),
    types_pb2.DT_INT32: ("int32", "int_val"),
    types_pb2.DT_INT64: ("int64", "int64_val"),
    types_pb2.DT_UINT8: ("uint8", "int_val"),
    types_pb2.DT_UINT16: ("uint16", "int_val"),
    types_pb2.DT_UINT32: ("uint32", "uint32_val"),
    types_pb2.DT_UINT64: ("uint64", "uint64_val"),
    types_pb2.DT_BOOL: ("bool", "bool_val"),
    types_pb2.DT_COMPLEX64: ("complex64", "scomplex_val"),
    types_pb2.DT_COMPLEX128: ("complex128", "dcomplex_val"),
    types_pb2.DT_STRING: ("object", "string_val"),
}
_BY_NUMPY = {name: dt for dt, (name, _) in _SPECS.items()}

# Typed fields of fixed-width elements: their packed wire form is the raw little-endian array, so
# they can be written from bytes (tag, length, payload) instead of element by element.
_PACKED_FIXED = {"float_val": (5, "<f4"), "double_val": (6, "<f8"),
                 "scomplex_val": (9, "<f4"), "dcomplex_val": (12, "<f8")}


def dtype_name(dtype: int) -> str:
    """TensorFlow's name of a DataType (`float`, `int64`, `string`), as in its error messages."""
    try:
        return DataType.Name(dtype)[3:].lower()
    except ValueError:
        return f"unknown dtype {dtype}"


def numpy_dtype(dtype: int) -> np.dtype:
    """The numpy dtype that holds a DataType's values (object for strings).

    Raises:
        BadInputError: the DataType has no numpy counterpart here (resource, variant, quantized).
    """
    spec = _SPECS.get(dtype)
    if spec is None:
        raise BadInputError(f"Tensors of dtype {dtype_name(dtype)} cannot be converted to numpy.")
    if spec[0] == "bfloat16":
        import ml_dtypes  # only bfloat16 needs it; it ships with TensorFlow and JAX

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(spec[0])


def dtype_from_numpy(dtype: np.dtype) -> int:
    """The DataType of a numpy dtype; unicode, bytes and object arrays are DT_STRING.

    Raises:
        BadInputError: numpy dtypes TensorFlow has no type for (datetime, structured, float128).
    """
    dtype = np.dtype(dtype)
    if dtype.kind in "USO":
        return types_pb2.DT_STRING
    found = _BY_NUMPY.get(dtype.name)
    if found is None:
        raise BadInputError(f"numpy dtype {dtype} has no TensorFlow counterpart.")
    return found


def shape_of(proto: TensorProto) -> list[int]:
    """The dimensions of a TensorProto, -1 for unknown ones."""
    return [dim.size for dim in proto.tensor_shape.dim]


def to_tensor_proto(array, dtype: int | None = None, *, tensor_content: bool = True,
                    out: TensorProto | None = None) -> TensorProto:
    """Encode an array as a TensorProto.

    Args:
        array: anything `numpy.asarray` accepts; strings may be `str` (sent as UTF-8) or bytes.
        dtype: the DataType to send; by default the array's own. The array is converted with
            `astype`, so check losslessness first (`serving.lossless_cast`).
        tensor_content: write raw bytes (what clients send, fastest); False writes the typed field
            of the dtype, as TF Serving replies by default. Strings always use `string_val`.
        out: an empty message to fill in place (e.g. a map entry of a request), which saves
            copying large tensors.

    Returns:
        The message, in the private `kexport.tfs` package (wire-compatible with TensorFlow's).
    """
    arr = np.asarray(array)
    dtype = dtype_from_numpy(arr.dtype) if dtype is None else dtype
    proto = TensorProto() if out is None else out
    proto.dtype = dtype
    for size in arr.shape:
        proto.tensor_shape.dim.add().size = size
    if dtype == types_pb2.DT_STRING:
        proto.string_val.extend(as_bytes(v) for v in arr.ravel())
        return proto
    arr = arr.astype(numpy_dtype(dtype), copy=False)
    if tensor_content:
        little = arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype
        proto.tensor_content = np.ascontiguousarray(arr, dtype=little).tobytes()
    else:
        _fill_typed_field(proto, arr, _SPECS[dtype][1])
    return proto


def tensor_wire(array: np.ndarray, *, tensor_content: bool = True) -> list | None:
    """The serialized TensorProto of a numeric array, as chunks whose payload is a view of the
    array's memory: large tensors are copied once, when the chunks are joined, instead of into a
    message and again out of it.

    Returns:
        bytes-like chunks to join, or None when the message path is needed (strings, and typed
        fields that are not fixed-width: int_val, half_val, bool_val, ...).
    """
    dtype = dtype_from_numpy(array.dtype)
    if dtype == types_pb2.DT_STRING:
        return None
    if tensor_content:
        number, wire_dtype = 4, array.dtype.newbyteorder("<")
    elif _SPECS[dtype][1] in _PACKED_FIXED:
        number, wire_dtype = _PACKED_FIXED[_SPECS[dtype][1]]
    else:
        return None
    head = TensorProto(dtype=dtype)
    for size in array.shape:
        head.tensor_shape.dim.add().size = size
    if array.size == 0:
        return [head.SerializeToString()]
    flat = array.reshape(-1)
    if not tensor_content and flat.dtype.kind == "c":
        flat = flat.view(flat.real.dtype)  # complex values go as (real, imaginary) pairs
    payload = memoryview(np.ascontiguousarray(flat, dtype=wire_dtype).view(np.uint8))
    return [head.SerializeToString(), _varint(number << 3 | 2), _varint(len(payload)), payload]


def map_entry_wire(field_number: int, key: str, value_chunks: list) -> list:
    """A `map<string, TensorProto>` entry (e.g. PredictRequest.inputs) as wire chunks: appended to
    a serialized message, it adds the entry as if it had been set on the message."""
    key_bytes = key.encode("utf-8")
    value_size = sum(len(chunk) for chunk in value_chunks)
    entry = [_varint(1 << 3 | 2), _varint(len(key_bytes)), key_bytes,
             _varint(2 << 3 | 2), _varint(value_size)]
    entry_size = sum(len(chunk) for chunk in entry) + value_size
    return [_varint(field_number << 3 | 2), _varint(entry_size), *entry, *value_chunks]


def to_ndarray(proto: TensorProto) -> np.ndarray:
    """Decode a TensorProto from `tensor_content` or its typed field.

    A typed field shorter than the shape is padded with its last value and an empty one means
    zeros, as TensorFlow does. Arrays decoded from `tensor_content` are read-only views of the
    message bytes.

    Raises:
        BadInputError: unsupported dtype, unknown dimensions, or a value count the shape rejects.
    """
    np_dtype = numpy_dtype(proto.dtype)
    shape = shape_of(proto)
    if proto.tensor_shape.unknown_rank or any(size < 0 for size in shape):
        raise BadInputError(f"A tensor with an unknown shape {shape} cannot hold values.")
    count = math.prod(shape)
    if proto.dtype == types_pb2.DT_STRING:
        flat = np.empty(len(proto.string_val), dtype=object)
        flat[:] = list(proto.string_val)
    elif content := proto.tensor_content:  # read once: each access copies the bytes
        little = np_dtype.newbyteorder("<") if np_dtype.itemsize > 1 else np_dtype
        if len(content) != count * np_dtype.itemsize:
            raise BadInputError(
                f"tensor_content has {len(content)} bytes but a {dtype_name(proto.dtype)} "
                f"tensor of shape {shape} needs {count * np_dtype.itemsize}.")
        return np.frombuffer(content, dtype=little).reshape(shape)
    else:
        flat = _read_typed_field(proto, np_dtype)
    return _fit_to_shape(flat, shape, count, proto.dtype)


def _fill_typed_field(proto: TensorProto, arr: np.ndarray, field: str) -> None:
    flat = arr.ravel()
    if field in _PACKED_FIXED:
        number, wire_dtype = _PACKED_FIXED[field]
        view = flat.view(flat.real.dtype) if flat.dtype.kind == "c" else flat
        payload = np.ascontiguousarray(view, dtype=wire_dtype).tobytes()
        # field key with wire type 2 (length-delimited), then the length as a varint
        proto.MergeFromString(_varint(number << 3 | 2) + _varint(len(payload)) + payload)
    elif field == "half_val":
        getattr(proto, field).extend(flat.view(np.uint16).astype(np.int32).tolist())
    else:
        getattr(proto, field).extend(flat.tolist())


def _read_typed_field(proto: TensorProto, np_dtype: np.dtype) -> np.ndarray:
    field = getattr(proto, _SPECS[proto.dtype][1])
    if proto.dtype in (types_pb2.DT_HALF, types_pb2.DT_BFLOAT16):
        return np.array(field, dtype=np.int32).astype(np.uint16).view(np_dtype)
    if np_dtype.kind == "c":
        return np.array(field, dtype=np_dtype.type(0).real.dtype).view(np_dtype)
    return np.array(field, dtype=np_dtype)


def _fit_to_shape(flat: np.ndarray, shape: list[int], count: int, dtype: int) -> np.ndarray:
    if flat.size == count:
        return flat.reshape(shape)
    if flat.size > count:
        raise BadInputError(f"A {dtype_name(dtype)} tensor of shape {shape} holds {count} values, "
                            f"but {flat.size} were sent.")
    if flat.size == 0:
        fill = b"" if dtype == types_pb2.DT_STRING else 0
    else:
        fill = flat[-1]
    out = np.empty(count, dtype=flat.dtype)
    out[: flat.size] = flat
    out[flat.size:] = fill
    return out.reshape(shape)


def as_bytes(value) -> bytes:
    """A string tensor element as bytes: bytes as they are, `str` as UTF-8.

    Raises:
        BadInputError: anything else.
    """
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    raise BadInputError(f"A string tensor cannot hold {type(value).__name__} values.")


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)
