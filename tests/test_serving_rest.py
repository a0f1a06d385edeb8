"""TF Serving's REST API on a real `start_server` (REST on port 0), spoken to over real HTTP with
the standard library; replies compared with TF Serving's docs and golden files (MANIFEST.md), and
with the gRPC API of the same server, which must never disagree with it. Also the REST client
(`RestPredictClient`, `kexport predict --rest`) and the Prometheus endpoint."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import numpy as np
import pytest

from serving.client import PredictClient
from serving.errors import ServingError
from serving.protos import predict_pb2
from serving.rest_client import RestPredictClient
from serving.server import start_server
from tests.cli_helpers import run_script_without_tensorflow
from tests.conftest import SHARED_FIXTURES

FIXTURES = SHARED_FIXTURES / "tfserving"
HALF_PLUS_TWO = FIXTURES / "saved_model_half_plus_two_cpu"
TWO_VERSIONS = FIXTURES / "saved_model_half_plus_two_2_versions"
SCRIPT = Path(__file__).resolve().parents[1] / "serving" / "client.py"
METRICS = "/monitoring/prometheus/metrics"

CONFIG = """
model_config_list {
  config { name: "default" base_path: "%(half)s" }
  config {
    name: "two"
    base_path: "%(two)s"
    model_version_policy { all {} }
    version_labels { key: "stable" value: 123 }
  }
  config { name: "words" base_path: "%(words)s" }
}
"""


def export_words_model(base: Path) -> Path:
    """A SavedModel with a string input, an int input and three outputs, one of them `_bytes`."""
    import tensorflow as tf

    class Words(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text"),
                                      tf.TensorSpec([None], tf.int64, name="count")])
        def serve(self, text, count):
            return {"text_bytes": text, "length": tf.cast(tf.strings.length(text), tf.int64),
                    "scaled": tf.cast(count, tf.float32) * 0.1}

    module = Words()
    tf.saved_model.save(module, str(base / "1"), signatures={"serving_default": module.serve})
    return base


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    for path in (HALF_PLUS_TWO, TWO_VERSIONS):
        assert path.is_dir(), f"TF Serving test models are expected in {FIXTURES} (MANIFEST.md)"
    root = tmp_path_factory.mktemp("rest")
    words = export_words_model(root / "words")
    (root / "models.config").write_text(CONFIG % {"half": HALF_PLUS_TWO, "two": TWO_VERSIONS,
                                                  "words": words})
    running = start_server(root, port=0, rest_port=0, poll_seconds=0, prometheus_path=METRICS)
    yield running
    running.stop()


def call(server, path, body=None, method=None, raw=None):
    """(HTTP status, parsed JSON or text) of one request."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(server.rest_url + path, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            status, text, kind = reply.status, reply.read().decode(), reply.headers["Content-Type"]
    except urllib.error.HTTPError as err:
        status, text, kind = err.code, err.read().decode(), err.headers["Content-Type"]
    return status, json.loads(text) if kind.startswith("application/json") else text


def test_predict_rows_and_columns_as_tf_serving_documents(server):
    assert call(server, "/v1/models/default:predict", {"instances": [2.0, 3.0, 4.0]}) == (
        200, {"predictions": [3.0, 3.5, 4.0]})
    assert call(server, "/v1/models/default:predict", {"inputs": [2.0, 3.0, 4.0]}) == (
        200, {"outputs": [3.0, 3.5, 4.0]})
    assert call(server, "/v1/models/default:predict",
                {"signature_name": "serving_default", "instances": [{"x": [1.0]}, {"x": [5]}]}) \
        == (200, {"predictions": [[2.5], [4.5]]})


def test_rest_and_grpc_give_the_same_answer(server):
    x = np.array([[0.1], [-7.25], [1e6]], np.float32)
    with PredictClient(server.address) as client:
        grpc_y = client.predict("default", x).outputs["y"]
    status, doc = call(server, "/v1/models/default:predict", {"inputs": {"x": x.tolist()}})
    assert status == 200
    np.testing.assert_array_equal(np.asarray(doc["outputs"], np.float32), grpc_y)
    assert doc["outputs"][0] == [2.05]  # float32 written in its shortest form, as TF Serving


def test_versions_and_labels_in_the_path(server):
    for path in ("/v1/models/two/versions/123:predict", "/v1/models/two/labels/stable:predict",
                 "/v1/models/two:predict"):
        assert call(server, path, {"instances": [[2.0]]}) == (200, {"predictions": [[3.0]]})
    assert call(server, "/v1/models/two/labels/stable") == (200, {"model_version_status": [
        {"version": "123", "state": "AVAILABLE", "status": {"error_code": "OK",
                                                            "error_message": ""}}]})


def test_status_and_metadata_match_tf_serving(server):
    assert call(server, "/v1/models/default") == (200, {"model_version_status": [
        {"version": "123", "state": "AVAILABLE", "status": {"error_code": "OK",
                                                            "error_message": ""}}]})
    status, doc = call(server, "/v1/models/default/metadata")
    expected = json.loads((FIXTURES / "half_plus_two_model_metadata.json").read_text())
    assert status == 200 and doc == expected


@pytest.mark.parametrize(("method", "path", "body", "status", "message"), [
    ("POST", "/v1/models/nope:predict", {"instances": [1.0]}, 404,
     "Servable not found for request: Latest(nope)"),
    ("POST", "/v1/models/default/versions/9:predict", {"instances": [1.0]}, 404,
     "Servable not found for request: Specific(default, 9)"),
    ("POST", "/v1/models/two/labels/canary:predict", {"instances": [1.0]}, 400,
     "Unrecognized servable version label: canary"),
    ("POST", "/v1/models/default:predict", {"signature_name": "nope", "instances": [1.0]}, 400,
     'Serving signature name: "nope" not found in signature def'),
    ("POST", "/v1/models/default:predict", {"instances": [1.0], "inputs": [1.0]}, 400,
     "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist"),
    ("POST", "/v1/models/default:predict", {"values": [1.0]}, 400,
     "Missing 'inputs' or 'instances' key"),
    ("POST", "/v1/models/default:predict", {"instances": []}, 400, "No values in 'instances'"),
    ("POST", "/v1/models/default:predict", {"instances": ["a"]}, 400,
     'JSON Value: "a" Type: String is not of expected type: float'),
    ("POST", "/v1/models/default:predict", {"instances": [[1.0], [1.0, 2.0]]}, 400,
     "Failed to process element: 1 of 'instances' list. Error: Expecting shape [1] but got: [2]"),
    ("POST", "/v1/models/default:predict", {"inputs": [[1.0], [1.0, 2.0]]}, 400,
     "is not a rectangular list"),
    ("POST", "/v1/models/default:predict", {"inputs": {"z": [1.0]}}, 400,
     "Missing named input: x in 'inputs' object."),
    ("POST", "/v1/models/default:predict", {"instances": [{"x": 1.0, "z": 2.0}]}, 400,
     "key: z of 'instances' list. Error: JSON object: does not have named input: z"),
    ("POST", "/v1/models/words:predict", {"instances": ["a"]}, 400,
     "instances is a plain list, but expecting list of objects as multiple input tensors"),
    ("POST", "/v1/models/default:explain", {}, 400, ("Malformed request: POST "
     "/v1/models/default:explain")),
    ("GET", "/v1/models", None, 400, "Missing model name in request."),
    ("GET", "/v1/models/nope", None, 404, "Could not find any versions of model nope"),
    ("PUT", "/v1/models/default", None, 400, "Malformed request: PUT /v1/models/default"),
])
def test_errors_are_tf_serving_json_with_mapped_status(server, method, path, body, status, message):
    got_status, doc = call(server, path, body, method=method, raw=b"" if body is None and
                           method != "GET" else None)
    assert got_status == status
    assert set(doc) == {"error"} and message in doc["error"], doc


def test_unparsable_json_and_unknown_paths(server):
    status, doc = call(server, "/v1/models/default:predict", raw=b"{not json")
    assert status == 400 and doc["error"].startswith("JSON Parse error")
    status, doc = call(server, "/v1/models/default:predict", raw=b" ")
    assert (status, doc) == (400, {"error": "JSON Parse error: The document is empty"})
    status, _ = call(server, "/index.html")
    assert status == 404


def test_binary_strings_travel_as_b64(server):
    blob = bytes(range(256))
    text = "h\u00e9llo"
    rows = [{"text": {"b64": base64.b64encode(blob).decode()}, "count": 3},
            {"text": text, "count": 10}]
    status, doc = call(server, "/v1/models/words:predict", {"instances": rows})
    assert status == 200
    first, second = doc["predictions"]
    assert base64.b64decode(first["text_bytes"]["b64"]) == blob  # `_bytes` outputs come as b64
    assert (first["length"], second["length"]) == (256, len(text.encode()))
    assert (first["scaled"], second["scaled"]) == (pytest.approx(0.3), 1.0)
    status, doc = call(server, "/v1/models/words:predict", {"inputs": {
        "text": [{"b64": "not base64!"}], "count": [1]}})
    assert (status, doc) == (400, {"error": "Unable to base64 decode"})


def test_classify_and_regress_routes_reach_the_servicer(server):
    body = {"signature_name": "classify_x_to_y", "examples": [{"x": 2.0}]}
    status, doc = call(server, "/v1/models/default:classify", body)
    if "Classify" in server.servicer.methods():
        assert (status, doc) == (200, {"results": [[["", 3.0]]]})
    else:  # TF Serving's answer for a method it lacks: 501 with the error JSON
        assert status == 501 and "Classify is not implemented" in doc["error"]
    status, doc = call(server, "/v1/models/default:regress", {"signature_name": "regress_x_to_y",
                                                             "examples": [{"x": 2.0}]})
    if "Regress" in server.servicer.methods():
        assert (status, doc) == (200, {"results": [3.0]})
    else:
        assert status == 501 and "Regress is not implemented" in doc["error"]


def test_prometheus_metrics_under_tf_serving_names(server):
    call(server, "/v1/models/default:predict", {"instances": [1.0]})
    with PredictClient(server.address) as client:
        client.predict("default", np.array([[1.0]], np.float32))
    with grpc.insecure_channel(server.address) as channel:  # a bare Predict, no metadata first
        predict = channel.unary_unary("/tensorflow.serving.PredictionService/Predict",
                                      request_serializer=lambda m: m.SerializeToString())
        with pytest.raises(grpc.RpcError):
            predict(predict_pb2.PredictRequest(model_spec={"name": "nope"}), timeout=30)
    status, text = call(server, METRICS)
    assert status == 200
    assert "# TYPE :tensorflow:serving:request_count untyped" in text
    assert "# TYPE :tensorflow:serving:request_latency histogram" in text
    assert ':tensorflow:serving:request_count{model_name="nope",status="NOT_FOUND"}' in text
    for entrypoint in ("REST", "GRPC"):
        assert (f':tensorflow:serving:request_latency_count{{API="Predict",entrypoint='
                f'"{entrypoint}",model_name="default"}}') in text


def test_rest_client_matches_the_grpc_client(server):
    x = np.array([[1.0], [2.0], [5.0]], np.float32)
    with PredictClient(server.address) as grpc_client, \
            RestPredictClient(server.rest_url) as rest_client:
        over_grpc = grpc_client.predict("two", x, label="stable")
        over_rest = rest_client.predict("two", x, label="stable")
        np.testing.assert_array_equal(over_rest.outputs["y"], over_grpc.outputs["y"])
        assert over_rest.version == over_grpc.version == 123
        batched = rest_client.predict_batched("default", {"x": np.arange(10, dtype=np.float32)
                                                          .reshape(10, 1)}, batch_size=3)
        assert batched.outputs["y"].ravel().tolist() == [0.5 * v + 2 for v in range(10)]
        assert rest_client.status("two")[0].state == "AVAILABLE"
        words = rest_client.predict("words", {"text": np.array([b"\x00\xff", b"ab"], object),
                                              "count": np.array([1, 2])})
        assert words.outputs["text_bytes"].tolist() == [b"\x00\xff", b"ab"]
        assert words.outputs["length"].dtype == np.int64
        with pytest.raises(ServingError, match="NOT_FOUND: Servable not found for request: "
                           r"Specific\(two, 7\)"):
            rest_client.predict("two", x, version=7)


def test_kexport_predict_over_rest_gives_the_grpc_output(server, tmp_path):
    from tests.cli_helpers import run

    x = tmp_path / "x.json"
    x.write_text(json.dumps([[1.0], [2.0]]))
    over_grpc = run("predict", "--target", server.address, "--model", "default", x)
    over_rest = run("predict", "--rest", server.rest_url, "--model", "default", x)
    assert over_grpc.exit_code == over_rest.exit_code == 0, over_rest.output
    assert json.loads(over_rest.stdout) == json.loads(over_grpc.stdout)
    missing = run("predict", "--rest", server.rest_url, "--model", "nope", x)
    assert missing.exit_code == 4
    assert missing.stderr.splitlines() == [
        ("error: GetModelMetadata for model 'nope' failed with NOT_FOUND: Servable not found for "
        "request: Latest(nope). Check --model and --version/--label against the server's models.")]
    closed = run("predict", "--rest", "http://127.0.0.1:9", "--model", "default", x)
    assert closed.exit_code == 4 and "is unavailable" in closed.stderr


def test_client_script_over_rest_imports_no_tensorflow(server, tmp_path):
    x = tmp_path / "x.json"
    x.write_text(json.dumps([[1.0]]))
    result = run_script_without_tensorflow(
        SCRIPT, ["--rest", server.rest_url, "--model", "default", x], tmp_path)
    assert "'serving.rest_client'" in result.stdout.splitlines()[-1]
    assert json.loads("\n".join(result.stdout.splitlines()[:-1]))["y"]["values"] == [[2.5]]


def test_cors_headers_when_enabled(server):
    with urllib.request.urlopen(f"{server.rest_url}/v1/models/default", timeout=30) as reply:
        assert "Access-Control-Allow-Origin" not in reply.headers  # off by default
    running = start_server(HALF_PLUS_TWO, port=0, rest_port=0, poll_seconds=0, rest_cors=True)
    try:
        with urllib.request.urlopen(f"{running.rest_url}/v1/models/default", timeout=30) as reply:
            assert reply.headers["Access-Control-Allow-Origin"] == "*"
            assert reply.headers["Access-Control-Allow-Methods"] == "POST, GET"
        preflight = urllib.request.Request(f"{running.rest_url}/v1/models/default:predict",
                                           method="OPTIONS")
        with urllib.request.urlopen(preflight, timeout=30) as reply:
            assert reply.status == 204 and reply.headers["Access-Control-Allow-Origin"] == "*"
    finally:
        running.stop()


def test_concurrent_rest_clients(server):
    from concurrent.futures import ThreadPoolExecutor

    def work(worker):
        with RestPredictClient(server.rest_url) as client:
            xs = [np.full((2, 1), worker * 100 + i, np.float32) for i in range(25)]
            return all(np.array_equal(client.predict("default", x).outputs["y"], x * 0.5 + 2)
                       for x in xs)

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(work, range(8)))
