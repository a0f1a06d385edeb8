"""Classify and Regress from the TF-free client: the library, `kexport predict --method`, and the
standalone script (without TensorFlow), against a real server on 127.0.0.1:0 serving TF Serving's
half_plus_two (MANIFEST.md: classify_x_to_y scores 0.5x + 2, regress_x_to_y2 gives 0.5x + 3);
results in TF Serving's REST shape."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from exporter.errors import BadInputError
from serving.client import PredictClient
from serving.errors import ServingError
from serving.predict_job import run_examples
from serving.protos import regression_pb2
from serving.rest_client import RestPredictClient
from serving.server import start_server
from serving.tf_examples import fill_input
from tests.cli_helpers import one_error_line, run, run_script_without_tensorflow
from tests.conftest import REPO, SHARED_FIXTURES

HALF_PLUS_TWO = SHARED_FIXTURES / "tfserving" / "saved_model_half_plus_two_cpu"
SCRIPT = REPO / "serving" / "client.py"


@pytest.fixture(scope="module")
def running():
    assert HALF_PLUS_TWO.is_dir(), f"TF Serving test model expected at {HALF_PLUS_TWO}"
    server = start_server(HALF_PLUS_TWO, port=0, rest_port=0, poll_seconds=0, model_name="half")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def target(running):
    return running.address


def test_client_classify_and_regress(target):
    with PredictClient(target) as client:
        classified = client.classify("half", [{"x": 2.0}, {"x": 4.0}], signature="classify_x_to_y")
        regressed = client.regress("half", [{"other": 1}], context={"x": 2.0},
                                   signature="regress_x_to_y2", version=123)
    assert classified.results == [[["", 3.0]], [["", 4.0]]]  # TF Serving's REST shape
    assert (classified.version, classified.signature) == (123, "classify_x_to_y")
    assert regressed.results == [4.0]


def test_rest_classify_and_regress(running):
    """TF Serving's REST shapes (DESIGN.md): {"results": [[["", 3.0]]]} and {"results": [3.0]}."""
    def post(path, body):
        request = urllib.request.Request(f"{running.rest_url}{path}", json.dumps(body).encode(),
                                         {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                return reply.status, json.loads(reply.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    assert post("/v1/models/half:classify", {"signature_name": "classify_x_to_y",
                                             "examples": [{"x": 2.0}]}) == (200, {"results": [[["", 3.0]]]})
    assert post("/v1/models/half/versions/123:regress", {
        "signature_name": "regress_x_to_y2", "context": {"x": 4.0}, "examples": [{}, {"x": 0.0}]}) \
        == (200, {"results": [5.0, 3.0]})
    status, doc = post("/v1/models/half:regress", {"examples": [{"x": 1.0}]})  # serving_default
    assert status == 400 and doc["error"].startswith("No regression inputs found in SignatureDef")
    with pytest.raises(BadInputError, match="Unknown --method"):
        run_examples(running.address, "half", "nope", [])
    examples = [{"x": 2.0}]
    with RestPredictClient(running.rest_url) as client:
        assert client.classify("half", examples, signature="classify_x_to_y").results == [[["", 3.0]]]
        assert client.regress("half", examples, signature="regress_x_to_y").results == [3.0]


def test_client_errors_carry_tf_serving_messages(target):
    with PredictClient(target) as client, pytest.raises(ServingError) as err:
        client.regress("half", [{"x": 2.0}], signature="classify_x_to_y")
    assert err.value.exit_code == 4
    assert "Regress on model 'half' failed with INVALID_ARGUMENT: No regression outputs found" \
        in str(err.value)


def test_feature_kinds_follow_tf_serving_json_rules():
    request = regression_pb2.RegressionRequest()
    fill_input(request.input, [{"f": 2.5, "i": 3, "flag": True, "s": "cat", "b": {"b64": "AAE="},
                                "ints": [1, 2]}])
    made = request.input.example_list.examples[0].features.feature
    assert list(made["f"].float_list.value) == [2.5]
    assert list(made["i"].int64_list.value) == [3]
    assert list(made["flag"].int64_list.value) == [1]
    assert list(made["s"].bytes_list.value) == [b"cat"]
    assert list(made["b"].bytes_list.value) == [b"\x00\x01"]
    assert list(made["ints"].int64_list.value) == [1, 2]
    for bad in ([{"x": [1, 2.5]}], [{"x": None}], [1.0], {"x": 1.0}):
        with pytest.raises(BadInputError, match="Invalid examples"):
            fill_input(regression_pb2.RegressionRequest().input, bad)


def test_kexport_predict_classify(target, tmp_path):
    examples = tmp_path / "examples.json"
    examples.write_text(json.dumps({"examples": [{"x": 2.0}, {"x": 0.0}]}))
    result = run("predict", "--model", "half", "--target", target, "--method", "classify",
                 "--signature", "classify_x_to_y", examples)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"results": [[["", 3.0]], [["", 2.0]]]}
    result = run("predict", "--model", "half", "--target", target, "--method", "regress",
                 "--signature", "serving_default", examples)
    assert result.exit_code == 4
    assert one_error_line(result).startswith(
        "error: Regress on model 'half' failed with INVALID_ARGUMENT: No regression inputs found")
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    result = run("predict", "--model", "half", "--target", target, "--method", "regress", empty)
    assert result.exit_code == 2
    assert "No examples given" in one_error_line(result)


def test_script_regresses_without_tensorflow(target, tmp_path):
    examples = tmp_path / "examples.json"
    examples.write_text(json.dumps([{"x": 1.0}, {"x": 5.0}]))
    checked = run_script_without_tensorflow(SCRIPT, [
        "--target", target, "--model", "half", "--method", "regress", "--signature",
        "regress_x_to_y", examples], cwd=tmp_path)
    assert json.loads(checked.stdout.splitlines()[-2]) == {"results": [2.5, 4.5]}
