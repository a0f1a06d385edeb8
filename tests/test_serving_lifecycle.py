"""Server lifecycle: version polling, warm-up replay, failed loads, ports, signals, `kexport serve`."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from serving.client import PredictClient
from serving.errors import ServingError
from serving.server import serve, start_server
from tests.conftest import SHARED_FIXTURES

FIXTURES = SHARED_FIXTURES / "tfserving"
VERSION_123 = FIXTURES / "saved_model_half_plus_two_2_versions" / "00000123"
VERSION_124 = FIXTURES / "saved_model_half_plus_two_2_versions" / "00000124"
ROOT = Path(__file__).resolve().parents[1]


def wait_for(condition, seconds=30.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def served_version(client, model="default"):
    try:
        return client.predict(model, np.array([[1.0]], np.float32)).version
    except ServingError:
        return None


def version_with_warmup(folder: Path, records) -> Path:
    """A version folder that reuses the fixture's files and adds assets.extra warm-up records."""
    import tensorflow as tf

    folder.mkdir(parents=True)
    for name in ("saved_model.pb", "variables", "assets"):
        (folder / name).symlink_to(VERSION_123 / name)
    (folder / "assets.extra").mkdir()
    with tf.io.TFRecordWriter(str(folder / "assets.extra" / "tf_serving_warmup_requests")) as out:
        for record in records:
            out.write(record.SerializeToString())
    return folder


def warmup_log(input_name="x", kind="predict"):
    """A PredictionLog written with TF Serving's own protos, as bundle tools write them."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    entry = prediction_log_pb2.PredictionLog()
    if kind == "predict":
        request = entry.predict_log.request
        request.model_spec.name = "default"
        request.inputs[input_name].CopyFrom(tf.make_tensor_proto([[1.0], [2.0]], tf.float32))
    elif kind == "classify":
        entry.classify_log.request.model_spec.name = "default"
    else:  # a kind the server does not replay
        entry.session_run_log.request.model_spec.name = "default"
    return entry


def test_new_versions_are_picked_up_and_removed_ones_unloaded(tmp_path):
    base = tmp_path / "model"
    base.mkdir()
    (base / "123").symlink_to(VERSION_123)
    (base / "not-a-version").symlink_to(VERSION_124)  # non-numeric: skipped, as TF Serving does
    running = start_server(base, port=0, poll_seconds=0.2)
    try:
        with PredictClient(running.address) as client:
            assert served_version(client) == 123
            (base / "124").symlink_to(VERSION_124)
            assert wait_for(lambda: served_version(client) == 124)
            assert wait_for(lambda: [(s.version, s.state) for s in client.status("default")] ==
                            [(124, "AVAILABLE"), (123, "END")])
            (base / "124").unlink()
            assert wait_for(lambda: served_version(client) == 123)
            assert wait_for(lambda: running.manager.available() == {"default": [123]})
    finally:
        running.stop()


def test_warmup_records_are_replayed_at_load(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="kexport.serving")
    records = [warmup_log(), warmup_log(), warmup_log(kind="session_run")]
    version_with_warmup(tmp_path / "model" / "1", records)
    running = start_server(tmp_path / "model", port=0, poll_seconds=0)
    try:
        with PredictClient(running.address) as client:
            assert served_version(client) == 1
    finally:
        running.stop()
    assert "model default version 1: replayed 2 warm-up request(s)" in caplog.text
    assert "skipped 1 warm-up record(s) of a kind this server does not replay" in caplog.text


def test_failed_loads_are_reported_and_keep_the_server_up(tmp_path):
    models = tmp_path / "models"
    version_with_warmup(models / "warm" / "1", [warmup_log(input_name="wrong")])
    (models / "broken" / "3").mkdir(parents=True)
    (models / "broken" / "3" / "saved_model.pb").write_bytes(b"not a protobuf")
    (models / "good").mkdir()
    (models / "good" / "123").symlink_to(VERSION_123)
    configs = " ".join(f'config {{ name: "{n}" base_path: "/models/{n}" }}'
                       for n in ("warm", "broken", "good"))
    (tmp_path / "models.config").write_text(f"model_config_list {{ {configs} }}")
    running = start_server(tmp_path, port=0, poll_seconds=0)
    try:
        with PredictClient(running.address) as client:
            assert served_version(client, "good") == 123
            [warm] = client.status("warm")
            assert (warm.version, warm.state, warm.error_code) == (1, "END", 2)
            assert warm.error_message.startswith("Failed to warm up model warm version 1")
            assert "Signature input alias: x(feed name: x:0) not found" in warm.error_message
            [broken] = client.status("broken")
            assert (broken.version, broken.state) == (3, "END")
            assert "Cannot read the SavedModel" in broken.error_message
            with pytest.raises(ServingError, match=r"Latest\(broken\)"):
                client.predict("broken", np.ones((1, 1)))
    finally:
        running.stop()


def test_a_busy_port_is_refused(tmp_path):
    (tmp_path / "1").symlink_to(VERSION_123)
    first = start_server(tmp_path, port=0, poll_seconds=0)
    try:
        with pytest.raises(ServingError, match=f"Cannot listen on 127.0.0.1:{first.port}") as err:
            start_server(tmp_path, port=first.port, poll_seconds=0)
        assert err.value.exit_code == 4
    finally:
        first.stop()


def test_serve_stops_cleanly_on_ctrl_c(tmp_path):
    (tmp_path / "1").symlink_to(VERSION_123)
    answers = []

    def on_ready(running):
        def client_then_interrupt():
            with PredictClient(running.address) as client:
                answers.append(served_version(client))
            os.kill(os.getpid(), signal.SIGINT)

        threading.Thread(target=client_then_interrupt, daemon=True).start()

    before = signal.getsignal(signal.SIGINT)
    serve(tmp_path, port=0, poll_seconds=0, on_ready=on_ready)  # returns after Ctrl-C
    assert answers == [1]
    assert signal.getsignal(signal.SIGINT) is before


SERVE_APP = """
import typer
from serving.cli import register
app = typer.Typer()
app.callback()(lambda: None)
register(app)
app()
"""


@pytest.mark.slow  # a fresh interpreter imports TensorFlow (~6 s)
def test_kexport_serve_command_reports_port_and_stops_on_sigterm(tmp_path):
    (tmp_path / "7").symlink_to(VERSION_123)
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE_APP, "serve", str(tmp_path), "--port", "0", "--json",
         "--model-name", "half", "--verbose"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready = json.loads(process.stdout.readline())
        assert ready["host"] == "127.0.0.1" and ready["models"] == {"half": [7]}
        with PredictClient(ready["address"]) as client:
            assert served_version(client, "half") == 7
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
    stderr = process.stderr.read()
    assert f"serving on 127.0.0.1:{ready['port']}" in stderr
    assert "Predict model=half version=latest signature=- " in stderr  # --verbose: per request
    assert "stopped" in stderr and "Traceback" not in stderr


def test_kexport_serve_bad_path_is_one_line_exit_2(tmp_path):
    result = subprocess.run([sys.executable, "-c", SERVE_APP, "serve", str(tmp_path / "nope")],
                            cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        (f"error: {tmp_path / 'nope'} does not exist. Pass a bundle folder (with "
        "models.config) or a model base path with numbered version folders.")]
