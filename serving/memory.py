"""Hand memory back to the system after very large requests.

A 64 MiB request passes through gRPC's buffers, the parsed protobuf and numpy arrays; glibc keeps
the freed pages in its per-thread arenas, so a long-running server would sit on hundreds of MB
after a few such requests. `malloc_trim(0)` returns them. It runs a moment after the request,
once gRPC has dropped its buffers, and at most one trim is pending at a time.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading

LARGE_REQUEST_BYTES = 16 << 20
TRIM_DELAY_SECONDS = 0.2


def _load_trim():
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return None


_malloc_trim = _load_trim()
_pending = threading.Event()


def _trim() -> None:
    _pending.clear()
    _malloc_trim(0)


def release_after(request_bytes: int) -> None:
    """Schedule a trim when a request of `request_bytes` was large enough to matter."""
    if _malloc_trim is None or request_bytes < LARGE_REQUEST_BYTES or _pending.is_set():
        return
    _pending.set()
    timer = threading.Timer(TRIM_DELAY_SECONDS, _trim)
    timer.daemon = True
    timer.start()
