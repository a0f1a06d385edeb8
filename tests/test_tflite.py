"""TFLite: TF Serving's TFLite test models served with prefer_tflite (MANIFEST.md: serving_default,
input x, output y = 0.5x + 2) over real gRPC on 127.0.0.1:0."""

from __future__ import annotations

import numpy as np
import pytest

from serving.client import PredictClient
from serving.server import start_server
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
                           prefer_tflite=True)
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
