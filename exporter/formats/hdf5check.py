"""Structural checks of an HDF5 file that the HDF5 library itself does not make.

A damaged global heap collection (where variable-length strings such as Keras's `model_config`
and `keras_version` attributes live) can send the HDF5 C library into an endless loop while it
reads an attribute: found by the robustness suite (a bit flip in the free-space entry's size).
h5py holds the GIL while HDF5 runs, so nothing in the process can interrupt it; the collections
are therefore checked here, from the raw bytes, before h5py opens the file. An attribute's
stored size is checked before h5py reads it, for the same kind of damage (`read_small_attr`).
"""

from __future__ import annotations

import mmap
import struct
from pathlib import Path

from exporter.errors import FormatError

_SIGNATURE = b"GCOL"
_HEADER = 16  # signature, version, 3 reserved bytes, 8-byte collection size
_OBJECT_HEADER = 16  # index, reference count, 4 reserved bytes, 8-byte object size


def check_global_heaps(path: Path) -> None:
    """Raise FormatError when a global heap collection's objects do not tile it exactly."""
    with path.open("rb") as stream:
        try:
            data = mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # empty file: h5py reports it
            return
    with data:
        start = data.find(_SIGNATURE)
        while start >= 0:
            # A real collection is version 1 with zero reserved bytes; anything else is four
            # bytes of weight data that happen to spell GCOL.
            if data[start + 4:start + 8] == b"\x01\x00\x00\x00":
                _check_collection(data, start, path)
            start = data.find(_SIGNATURE, start + 4)


def _check_collection(data, start: int, path: Path) -> None:
    if start + _HEADER > len(data):
        raise FormatError(f"{path} is truncated inside a global heap (offset {start}).")
    (size,) = struct.unpack_from("<Q", data, start + 8)
    end = start + size
    if size < _HEADER or end > len(data):
        raise FormatError(f"{path}: a global heap at offset {start} claims {size:,} bytes; "
                          "the file is corrupt or truncated.")
    offset = start + _HEADER
    while offset + _OBJECT_HEADER <= end:
        index, _refs = struct.unpack_from("<HH", data, offset)
        (length,) = struct.unpack_from("<Q", data, offset + 8)
        if index == 0:  # the free-space object: it runs exactly to the collection's end
            if offset + length != end:
                raise FormatError(f"{path}: the global heap at offset {start} is damaged "
                                  "(free space does not match its size); the file is corrupt.")
            return
        offset += _OBJECT_HEADER + (length + 7) // 8 * 8
    if offset > end:
        raise FormatError(f"{path}: an object overruns the global heap at offset {start}; "
                          "the file is corrupt.")


MAX_ATTR_BYTES = 64 * 1024 * 1024


def read_small_attr(handle, name: str, path: Path):
    """Read an HDF5 attribute after checking its stored size: a damaged header can claim
    gigabytes, and h5py would try to read them all."""
    size = handle.attrs.get_id(name).get_storage_size()
    if size > MAX_ATTR_BYTES:
        raise FormatError(f"{path}: attribute '{name}' claims {size:,} bytes; the file is corrupt.")
    return handle.attrs[name]
