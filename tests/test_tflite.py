"""TFLite: `kexport convert --to tflite`, inspect and verify of .tflite files, and TF Serving's TFLite
test models served with prefer_tflite (MANIFEST.md: serving_default,
input x, output y = 0.5x + 2) over real gRPC on 127.0.0.1:0."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from exporter.formats.detection import detect
from serving.client import PredictClient
from serving.server import start_server
from tests.cli_helpers import one_error_line, run
from tests.conftest import SHARED_FIXTURES

FIXTURES = SHARED_FIXTURES / "tfserving"


def fixture_path(name: str):
    path = FIXTURES / name
    assert path.is_dir(), f"TF Serving test model expected at {path} (see ../shared/fixtures)"
    return path


@pytest.mark.parametrize("model", ["saved_model_half_plus_two_tflite",
                                   "saved_model_half_plus_two_tflite_with_sigdef"])
def test_tflite_versions_are_served_when_preferred(model):
    running = start_server(fixture_path(model), port=0, poll_seconds=0, model_name="m",
                           prefer_tflite_model=True)
    try:
        with PredictClient(running.address) as client:
            signature = client.signature("m")
            assert (set(signature.inputs), set(signature.outputs)) == ({"x"}, {"y"})
            one = client.predict("m", np.array([[2.0]], np.float32))
            many = client.predict("m", np.array([[1.0], [2.0], [5.0]], np.float32))
    finally:
        running.stop()
    assert one.version == 123
    np.testing.assert_array_equal(one.outputs["y"], [[3.0]])
    np.testing.assert_array_equal(many.outputs["y"], [[2.5], [3.0], [4.5]])  # resized input


def test_without_the_preference_a_tflite_only_version_does_not_load():
    running = start_server(fixture_path("saved_model_half_plus_two_tflite"), port=0,
                           poll_seconds=0, model_name="m")
    try:
        state = running.manager.states("m")[123]
    finally:
        running.stop()
    assert state.state == "END"
    assert "Could not find SavedModel .pb or .pbtxt" in state.error_message
    assert "--prefer_tflite_model" in state.error_message


@pytest.fixture(scope="module")
def converted(tmp_path_factory, keras3):
    """A small Keras model and its .tflite, written by `kexport convert --to tflite`."""
    folder = tmp_path_factory.mktemp("tflite")
    model = keras3.Sequential([keras3.Input((6,), name="features"),
                               keras3.layers.Dense(8, activation="relu", name="hidden"),
                               keras3.layers.Dense(3, activation="softmax", name="probs")])
    model.save(folder / "m.keras")
    result = run("convert", folder / "m.keras", folder / "out.bin", "--to", "tflite")
    assert result.exit_code == 0, result.output
    return model, folder


def test_convert_to_tflite_is_verified_with_the_interpreter(converted):
    _, folder = converted
    output = (folder / "out.bin").read_bytes()
    assert output[4:8] == b"TFL3"  # a flatbuffer, detected from content whatever its name
    assert detect(folder / "out.bin").format == "tflite"
    result = run("verify", folder / "m.keras", folder / "out.bin")
    assert result.exit_code == 0 and "1 output(s) match" in result.output


def test_inspect_reads_tflite_signatures(converted):
    _, folder = converted
    result = run("inspect", folder / "out.bin", "--json")
    assert result.exit_code == 0, result.output
    signature = json.loads(result.stdout)["signatures"]["serving_default"]
    assert signature["inputs"] == [{"name": "features", "shape": [None, 6], "dtype": "float32"}]
    assert signature["outputs"] == [{"name": "probs", "shape": [None, 3], "dtype": "float32"}]
    fixture = fixture_path("saved_model_half_plus_two_tflite") / "00000123" / "model.tflite"
    described = json.loads(run("inspect", fixture, "--json").stdout)["signatures"]
    assert list(described) == ["serving_default"]  # named from its tensors, as TF Serving does
    assert [s["name"] for s in described["serving_default"]["inputs"]] == ["x"]


def test_tflite_is_never_a_conversion_source(converted):
    _, folder = converted
    result = run("convert", folder / "out.bin", folder / "back.keras")
    assert result.exit_code == 2
    assert "tflite, a save-only format" in one_error_line(result)
    assert not (folder / "back.keras").exists()


def test_a_converted_tflite_is_served_and_answers_as_keras(converted, tmp_path):
    model, folder = converted
    version = tmp_path / "m" / "1"
    version.mkdir(parents=True)
    (version / "model.tflite").write_bytes((folder / "out.bin").read_bytes())
    features = np.random.default_rng(0).random((4, 6), dtype=np.float32)
    running = start_server(tmp_path / "m", port=0, poll_seconds=0, model_name="m",
                           prefer_tflite_model=True)
    try:
        with PredictClient(running.address) as client:
            probs = client.predict("m", features).outputs["probs"]
    finally:
        running.stop()
    np.testing.assert_allclose(probs, model.predict(features, verbose=0), atol=1e-5)


@pytest.mark.slow
def test_kexport_serve_prefer_tflite_model_flag():
    base = fixture_path("saved_model_half_plus_two_tflite")
    command = [sys.executable, "-m", "exporter.cli", "serve", "--port=0", "--model_name=half",
               f"--model_base_path={base}", "--prefer_tflite_model=true", "--json"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        ready = json.loads(server.stdout.readline() or "{}")
        assert ready.get("models") == {"half": [123]}, server.stderr.read()
        with PredictClient(ready["address"]) as client:
            y = client.predict("half", np.array([[2.0]], np.float32)).outputs["y"]
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=60)
    np.testing.assert_array_equal(y, [[3.0]])
