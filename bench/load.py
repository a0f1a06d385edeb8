"""Load and abuse a running `kexport serve`: concurrent clients, malformed RPCs, raw garbage.

Used by tests/test_server_load.py (scaled down) and bench/stress.py (16 clients x 2,000). Every
client sends valid Predict calls and, every few requests, a malformed one that must be answered
with TF Serving's status code while the valid ones keep succeeding. The server's resident memory
is sampled after the first and before the last thousand requests.
"""

from __future__ import annotations

import json
import os
import random
import select
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np

from serving import tensors
from serving.protos import predict_pb2, types_pb2

PREDICT = "/tensorflow.serving.PredictionService/Predict"
MODEL = "small"
INPUT = "features"
FEATURES = 6
OPTIONS = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
CODE = grpc.StatusCode
# name -> (request builder, the status code TF Serving answers it with)
MALFORMED = {
    "wrong dtype": (lambda: _request({INPUT: np.array([b"x"] * FEATURES, dtype=object)
                                      .reshape(1, FEATURES)}), CODE.INVALID_ARGUMENT),
    "wrong input name": (lambda: _request({"nope": _batch(1)}), CODE.INVALID_ARGUMENT),
    "wrong shape": (lambda: _request({INPUT: np.ones((1, FEATURES + 3), np.float32)}),
                    CODE.INVALID_ARGUMENT),
    "empty model name": (lambda: _request({INPUT: _batch(1)}, model=""), CODE.INVALID_ARGUMENT),
    "unknown signature": (lambda: _request({INPUT: _batch(1)}, signature="nope"),
                          CODE.FAILED_PRECONDITION),
    "unknown model": (lambda: _request({INPUT: _batch(1)}, model="nope"), CODE.NOT_FOUND),
}


def _batch(rows: int) -> np.ndarray:
    return np.random.default_rng(rows).standard_normal((rows, FEATURES)).astype(np.float32)


def _request(inputs: dict, model: str = MODEL, signature: str = "") -> bytes:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    if signature:
        request.model_spec.signature_name = signature
    for name, array in inputs.items():
        dtype = types_pb2.DT_STRING if array.dtype == object else None
        tensors.to_tensor_proto(array, dtype, out=request.inputs[name])
    return request.SerializeToString()


def start_server(base_path: Path, *extra: str, timeout: float = 120.0):
    """Start `kexport serve BASE --port 0`; return (process, port, stderr log path)."""
    log = Path(base_path).with_name(f"serve-{os.getpid()}-{time.monotonic_ns()}.log")
    stderr = log.open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "exporter.cli", "serve", str(base_path), "--port", "0", "--json",
         "--model-name", MODEL, "--poll-seconds", "0", *extra],
        stdout=subprocess.PIPE, stderr=stderr, text=True)
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline() if ready else ""
    if not line:
        proc.kill()
        proc.wait(10)
        raise RuntimeError(f"kexport serve did not start: {log.read_text()[-2000:]}")
    return proc, json.loads(line)["port"], log


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


@dataclass
class LoadResult:
    served: int = 0
    failures: list[str] = field(default_factory=list)
    malformed: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    rss_first: int = 0
    rss_last: int = 0

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) * 1e3 if self.latencies else 0.0

    @property
    def memory_growth(self) -> float:
        return (self.rss_last - self.rss_first) / self.rss_first if self.rss_first else 0.0


def run_load(port: int, pid: int, clients: int, requests: int, *, malformed_every: int = 10,
             big_payload: bool = True, seed: int = 0) -> LoadResult:
    """`clients` threads x `requests` calls; every `malformed_every`-th call is malformed."""
    result, lock = LoadResult(), threading.Lock()
    total = clients * requests
    first_window = min(1000, total // 4)
    # 64 MiB payloads go in during the first window: the allocator keeps the high-water mark
    # they set (that is not a leak), so the baseline is taken after them and growth between
    # the two samples measures what steady serving leaks.
    big_until = max(1, first_window // clients // 2)
    big_answered = threading.Event()  # the baseline waits until every 64 MiB request is answered
    if not big_payload:
        big_answered.set()
    done = [0]
    good = _request({INPUT: _batch(4)})

    def client(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        with grpc.insecure_channel(f"127.0.0.1:{port}", OPTIONS) as channel:
            call = channel.unary_unary(PREDICT)
            for i in range(requests):
                if i % malformed_every == malformed_every - 1:
                    _abuse(call, port, rng, result, lock,
                           big=big_payload and index == 0 and i < big_until)
                if index == 0 and i >= big_until:
                    big_answered.set()
                started = time.perf_counter()
                try:
                    reply = predict_pb2.PredictResponse.FromString(call(good, timeout=30))
                    shape = tensors.shape_of(next(iter(reply.outputs.values())))
                    problem = None if shape == [4, 3] else f"output shape {shape}"
                except grpc.RpcError as err:
                    problem = f"{err.code().name}: {err.details()}"
                elapsed = time.perf_counter() - started
                with lock:
                    done[0] += 1
                    if problem:
                        result.failures.append(problem)
                    else:
                        result.served += 1
                        result.latencies.append(elapsed)
                    if not result.rss_first and done[0] >= first_window and big_answered.is_set():
                        result.rss_first = rss_bytes(pid)
                    if done[0] == max(total - 1000, total * 3 // 4):
                        result.rss_last = rss_bytes(pid)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(600)
    return result


def _abuse(call, port: int, rng: random.Random, result: LoadResult, lock, big: bool) -> None:
    """One malformed call (or garbage on a raw socket); record a wrong answer as a failure."""
    kinds = sorted(MALFORMED) + ["garbage bytes on the socket", "garbage protobuf"]
    kind = "64 MiB payload" if big else rng.choice(kinds)
    if kind == "garbage bytes on the socket":
        problem = _garbage_socket(port, rng)
    elif kind == "garbage protobuf":
        problem = _expect(call, rng.randbytes(rng.randrange(1, 512)),
                          {CODE.INVALID_ARGUMENT, CODE.INTERNAL, CODE.NOT_FOUND})
    elif kind == "64 MiB payload":
        rows = (64 << 20) // (4 * FEATURES)
        try:
            reply = predict_pb2.PredictResponse.FromString(
                call(_request({INPUT: _batch(rows)}), timeout=120))
            shape = tensors.shape_of(next(iter(reply.outputs.values())))
            problem = None if shape == [rows, 3] else f"64 MiB payload: shape {shape}"
        except grpc.RpcError as err:
            problem = f"64 MiB payload: {err.code().name}"
    else:
        build, code = MALFORMED[kind]
        problem = _expect(call, build(), {code})
    with lock:
        result.malformed[kind] = result.malformed.get(kind, 0) + 1
        if problem:
            result.failures.append(f"{kind}: {problem}")


def _expect(call, payload: bytes, codes: set) -> str | None:
    try:
        call(payload, timeout=30)
    except grpc.RpcError as err:
        return None if err.code() in codes else f"{err.code().name} {err.details()}"
    return "answered OK" if CODE.OK not in codes else None


def _garbage_socket(port: int, rng: random.Random) -> str | None:
    """Random bytes instead of HTTP/2: the server must close the connection, promptly."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(rng.randbytes(rng.randrange(1, 4096)))
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if not sock.recv(65536):
                    return None
        except (ConnectionResetError, BrokenPipeError):
            return None
        except TimeoutError:
            pass
    return "the server kept a garbage connection open"
