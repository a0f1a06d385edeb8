"""Serving benchmarks: the TF-free client and the local server, each beside its usual baseline.

The server runs as its own process (`kexport serve --port 0`), as it would in CI; client-side
numbers and the in-process baselines are measured in this process, alternating where it matters.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from bench.measure import Row, compare

REPO = Path(__file__).resolve().parents[1]

TF_SERVING_API_CLIENT = """
import sys, grpc, numpy as np, tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
channel = grpc.insecure_channel(sys.argv[1])
stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
request = predict_pb2.PredictRequest()
request.model_spec.name = sys.argv[2]
request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.load(sys.argv[3])))
print(stub.Predict(request, timeout=30))
"""


# Small batches on several threads: on this 2-core CPU, MobileNetV2's time per image does not
# fall with the batch size (in process: ~20 img/s at batch 1 and 4, fewer at 8 and 16).
BATCHING = """max_batch_size { value: 4 }
batch_timeout_micros { value: 1000 }
num_batch_threads { value: 4 }
max_enqueued_batches { value: 100 }
"""


@contextmanager
def running_server(bundle: Path, batching: Path | None = None):
    """`kexport serve BUNDLE --port 0` in the background; yields its address. With `batching` (a
    BatchingParameters file) the server batches, as TF Serving's flags ask."""
    command = [sys.executable, "-m", "exporter.cli", "serve", str(bundle), "--port", "0", "--json"]
    if batching is not None:
        command += ["--enable_batching", f"--batching_parameters_file={batching}"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        yield json.loads(server.stdout.readline())["address"]
    finally:
        server.terminate()
        server.wait(timeout=30)


def build_bundle(out: Path, mobilenet_h5: Path) -> Path:
    """A bundle with TF Serving's half_plus_two (x -> y) and a MobileNetV2."""
    bundle = out / "serving_bundle"
    if (bundle / "bundle.json").exists():
        return bundle
    half = REPO.parent / "shared" / "fixtures" / "tfserving" / "saved_model_half_plus_two_cpu" / "00000123"
    subprocess.run([sys.executable, "-m", "exporter.cli", "bundle", str(bundle),
                    "--model", f"half={half}", "--model", f"mobilenet={mobilenet_h5}@1",
                    "--force", "--quiet"], check=True, stdout=subprocess.DEVNULL)
    return bundle


def cold_start_rows(address: str, out: Path) -> list[Row]:
    """Process start to first prediction printed: serving/client.py vs a tensorflow-serving-api script."""
    x = out / "x.npy"
    np.save(x, np.array([[1.0], [2.0], [5.0]], dtype=np.float32))
    ours = [sys.executable, str(REPO / "serving" / "client.py"), "--target", address,
            "--model", "half", str(x)]
    theirs = [sys.executable, "-c", TF_SERVING_API_CLIENT, address, "half", str(x)]
    mine, base = compare(ours, theirs, repeats=3)
    return [
        Row("client cold start vs tf-serving-api script (time)", mine.seconds, base.seconds, "s", "<= 0.15"),
        Row("client cold start vs tf-serving-api script (peak)", mine.peak_mb, base.peak_mb, "M", "<= 0.15"),
    ]


def _latencies(call, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def round_trip_rows(address: str, bundle: Path) -> list[Row]:
    """p50/p99 of half_plus_two through the server vs its signature called in process."""
    from exporter.runtime import tf_module
    from serving.client import PredictClient

    tf = tf_module()
    x = np.array([[1.0], [2.0], [5.0]], dtype=np.float32)
    signature = tf.saved_model.load(str(bundle / "models" / "half" / "123")).signatures["serving_default"]
    with PredictClient(address) as client:
        client.predict("half", x)  # discover the signature once, as a long-lived client does
        rpc, local = [], []
        for _ in range(5):  # alternate in rounds so machine noise hits both alike
            rpc += _latencies(lambda: client.predict("half", x), 200)
            local += _latencies(lambda: signature(x=tf.constant(x)), 200)
    p50_rpc, p50_local = statistics.median(rpc), statistics.median(local)
    p99_rpc = float(np.percentile(rpc, 99))
    p99_local = float(np.percentile(local, 99))
    return [
        Row("round trip p50 (ms): overhead <= 1 ms", p50_rpc, p50_local, "m", "diff<= 1.0"),
        Row("round trip p99 (ms), reported", p99_rpc, p99_local, "m", "report"),
    ]


def throughput_rows(address: str, bundle: Path) -> list[Row]:
    """4 concurrent clients on MobileNetV2 at batch 1 vs 4 threads calling the signature."""
    from exporter.runtime import tf_module
    from serving.client import PredictClient

    tf = tf_module()
    image = np.random.default_rng(0).random((1, 224, 224, 3), dtype=np.float32)
    signature = tf.saved_model.load(str(bundle / "models" / "mobilenet" / "1")).signatures["serving_default"]
    per_thread, threads = 15, 4
    clients = [PredictClient(address) for _ in range(threads)]
    for client in clients:
        client.predict("mobilenet", image)

    def rate(work) -> float:
        start = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda i: [work(i) for _ in range(per_thread)], range(threads)))
        return per_thread * threads / (time.perf_counter() - start)

    served = rate(lambda i: clients[i].predict("mobilenet", image))
    input_name = next(iter(signature.structured_input_signature[1]))
    local = rate(lambda i: signature(**{input_name: tf.constant(image)}))
    for client in clients:
        client.close()
    return [Row("throughput MobileNetV2 4 clients (req/s)", served, local, "r", ">= 0.8")]


def large_tensor_rows(address: str) -> list[Row]:
    """An 8x224x224x3 float32 batch through half_plus_two: encode + RPC + decode, in GB/s."""
    from serving.client import PredictClient

    batch = np.random.default_rng(0).random((8, 224, 224, 3), dtype=np.float32).reshape(-1, 1)
    with PredictClient(address, timeout=60) as client:
        client.predict("half", batch)
        seconds = statistics.median(_latencies(lambda: client.predict("half", batch), 10)) / 1000
    gigabytes = 2 * batch.nbytes / 1e9  # the batch goes out and an equal-sized answer comes back
    return [Row("large tensors GB/s (baseline: the 0.5 GB/s goal)", gigabytes / seconds, 0.5, "G", ">= 1.0")]


def _concurrent_rate(address: str, image: np.ndarray, clients: int, seconds: float) -> float:
    """Requests per second of `clients` threads, each with its own connection, sending one
    image at a time for `seconds`."""
    from serving.client import PredictClient

    connections = [PredictClient(address, timeout=60) for _ in range(clients)]
    try:
        for connection in connections:
            connection.predict("mobilenet", image)

        def work(connection) -> int:
            done, end = 0, time.perf_counter() + seconds
            while time.perf_counter() < end:
                connection.predict("mobilenet", image)
                done += 1
            return done

        start = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            total = sum(pool.map(work, connections))
        return total / (time.perf_counter() - start)
    finally:
        for connection in connections:
            connection.close()


def batching_rows(out: Path, bundle: Path) -> list[Row]:
    """16 concurrent single-image MobileNetV2 clients: a batching server vs the same without."""
    config = out / "batching.config"
    config.write_text(BATCHING)
    image = np.random.default_rng(0).random((1, 224, 224, 3), dtype=np.float32)
    rates: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(2):  # alternate, so machine noise hits both alike
        for batched in (True, False):
            with running_server(bundle, config if batched else None) as address:
                rates[batched].append(_concurrent_rate(address, image, clients=16, seconds=6))
    return [Row("16 clients MobileNetV2 batching vs none (req/s)", statistics.median(rates[True]),
                statistics.median(rates[False]), "r", ">= 1.3")]


def rest_round_trip_rows(bundle: Path) -> list[Row]:
    """p50 of half_plus_two over TF Serving's REST API (its own `kexport serve --rest_api_port 0`,
    a kept-alive connection) vs its signature called in process."""
    from exporter.runtime import tf_module
    from serving.rest_client import RestPredictClient

    tf = tf_module()
    x = np.array([[1.0], [2.0], [5.0]], dtype=np.float32)
    signature = tf.saved_model.load(str(bundle / "models" / "half" / "123")).signatures["serving_default"]
    command = [sys.executable, "-m", "exporter.cli", "serve", str(bundle), "--port", "0",
               "--rest_api_port", "0", "--json"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        with RestPredictClient(json.loads(server.stdout.readline())["rest_url"]) as client:
            client.predict("half", x)  # discover the signature once, as a long-lived client does
            rest, local = [], []
            for _ in range(5):  # alternate in rounds so machine noise hits both alike
                rest += _latencies(lambda: client.predict("half", x), 200)
                local += _latencies(lambda: signature(x=tf.constant(x)), 200)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return [Row("REST round trip p50 (ms): overhead <= 2 ms", statistics.median(rest),
                statistics.median(local), "m", "diff<= 2.0")]


def serving_rows(out: Path, mobilenet_h5: Path) -> list[Row]:
    bundle = build_bundle(out, mobilenet_h5)
    with running_server(bundle) as address:
        rows = cold_start_rows(address, out)
        rows += round_trip_rows(address, bundle)
        rows += throughput_rows(address, bundle)
        rows += large_tensor_rows(address)
    rows += rest_round_trip_rows(bundle)
    rows += batching_rows(out, bundle)
    return rows
