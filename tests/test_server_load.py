"""`kexport serve` under concurrent load with malformed RPCs mixed in, and its security defaults.

The normal run is scaled down (4 clients x 100 requests); `make stress` sets KEXPORT_STRESS=1
for 16 x 2,000 and reads the numbers from KEXPORT_STRESS_REPORT. Real gRPC on 127.0.0.1, port 0.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from bench import load

STRESS = os.environ.get("KEXPORT_STRESS") == "1"
CLIENTS, REQUESTS = (16, 2000) if STRESS else (4, 100)


def report(**numbers) -> None:
    """Append numbers for bench/stress.py's table (only when it asks)."""
    path = os.environ.get("KEXPORT_STRESS_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as stream:
            stream.write(json.dumps(numbers) + "\n")


@pytest.fixture(scope="module")
def base_path(k3_files, tmp_path_factory):
    """A model base path with version 1 of the small sequential model (6 -> 3)."""
    from exporter.model_io import load_model, save_model

    base = tmp_path_factory.mktemp("serve") / "small"
    save_model(load_model(k3_files["sequential"]).model, base / "1", "savedmodel")
    return base


@pytest.fixture(scope="module")
def server(base_path):
    proc, port, log = load.start_server(base_path)
    yield proc, port, log
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def test_load_with_malformed_requests_mixed_in(server):
    proc, port, _ = server
    result = load.run_load(port, proc.pid, CLIENTS, REQUESTS, malformed_every=10)
    assert result.failures == [], result.failures[:10]
    assert result.served == CLIENTS * REQUESTS
    assert set(result.malformed) >= set(load.MALFORMED) | {"garbage bytes on the socket"}
    assert "64 MiB payload" in result.malformed
    assert proc.poll() is None  # still serving
    report(requests=result.served, malformed=sum(result.malformed.values()),
           failures=len(result.failures), p50_ms=result.percentile(50),
           p99_ms=result.percentile(99), memory_growth=result.memory_growth)
    print(f"\nload: {result.served} served, p50 {result.percentile(50):.2f} ms, "
          f"p99 {result.percentile(99):.2f} ms, memory growth {result.memory_growth:+.1%}")
    if STRESS:
        assert result.memory_growth < 0.05


def test_binds_localhost_by_default_and_says_so(server):
    _proc, port, log = server
    text = log.read_text()
    assert f"serving on 127.0.0.1:{port}" in text and "this machine only" in text
    address = outward_address()
    if address is None:
        pytest.skip("no non-loopback address on this machine to try")
    with pytest.raises(OSError):  # refused: nothing listens there
        socket.create_connection((address, port), timeout=5).close()


def outward_address() -> str | None:
    """This machine's address on its default route (no packet is sent), if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: never routed anywhere real
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") else address


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """A self-signed CA-free certificate for 127.0.0.1 (openssl CLI; `cryptography` is not
    installed in the venv), and an unrelated one a client must not trust."""
    root = tmp_path_factory.mktemp("certs")
    for name in ("server", "other"):
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-keyout", str(root / f"{name}.key"), "-out", str(root / f"{name}.pem"),
             "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
            check=True, capture_output=True, timeout=60)
    return root


@pytest.mark.slow
def test_tls_with_the_right_ca_works_and_without_it_fails_cleanly(base_path, certs, tmp_path):
    import numpy as np

    proc, port, log = load.start_server(base_path, "--tls-cert", str(certs / "server.pem"),
                                        "--tls-key", str(certs / "server.key"))
    try:
        assert "TLS" in log.read_text()
        features = tmp_path / "x.npy"
        np.save(features, np.ones((2, 6), np.float32))
        base = [sys.executable, "-m", "exporter.cli", "predict", "--model", load.MODEL,
                "--target", f"127.0.0.1:{port}", "--timeout", "10", str(features)]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        good = subprocess.run(base + ["--tls", "--ca-cert", str(certs / "server.pem")],
                              capture_output=True, text=True, timeout=120, env=env, check=False)
        assert good.returncode == 0, good.stderr
        assert json.loads(good.stdout)
        for extra in (["--tls", "--ca-cert", str(certs / "other.pem")], []):
            bad = subprocess.run(base + extra, capture_output=True, text=True, timeout=120,
                                 env=env, check=False)
            errors = [line for line in bad.stderr.splitlines() if line.startswith("error:")]
            assert bad.returncode == 4 and len(errors) == 1, bad.stderr
            assert "Traceback" not in bad.stderr
    finally:
        proc.terminate()
        proc.wait(30)


def test_tls_needs_both_files(base_path, certs):
    from tests.cli_helpers import one_error_line, run

    result = run("serve", base_path, "--port", "0", "--tls-cert", certs / "server.pem")
    assert result.exit_code == 2 and "--tls-key" in one_error_line(result)
    result = run("serve", base_path, "--port", "0", "--tls-cert", certs / "server.key",
                 "--tls-key", certs / "server.key")
    assert result.exit_code == 2 and "PEM" in one_error_line(result)
