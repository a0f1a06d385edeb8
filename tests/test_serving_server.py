"""The local TF Serving-compatible server, spoken to over real gRPC on 127.0.0.1 with raw requests,
so every status code and message can be compared with TF Serving's own (DESIGN.md, MANIFEST.md)."""

from __future__ import annotations

import json
import threading

import grpc
import numpy as np
import pytest
from google.protobuf import json_format

from serving import tensors
from serving.client import PredictClient
from serving.protos import get_model_metadata_pb2, get_model_status_pb2, predict_pb2, types_pb2
from serving.server import start_server
from tests.conftest import SHARED_FIXTURES

FIXTURES = SHARED_FIXTURES / "tfserving"
HALF_PLUS_TWO = FIXTURES / "saved_model_half_plus_two_cpu"
TWO_VERSIONS = FIXTURES / "saved_model_half_plus_two_2_versions"

CONFIG = """
model_config_list {
  config { name: "half_plus_two" base_path: "/models/half_plus_two" model_platform: "tensorflow" }
  config { name: "two_latest" base_path: "%(two)s" }
  config {
    name: "two_all"
    base_path: "%(two)s"
    model_version_policy { all {} }
    version_labels { key: "stable" value: 123 }
    version_labels { key: "canary" value: 124 }
  }
}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    bundle = tmp_path_factory.mktemp("bundle")
    (bundle / "models").mkdir()
    (bundle / "models" / "half_plus_two").symlink_to(HALF_PLUS_TWO)  # as the container sees it
    (bundle / "models.config").write_text(CONFIG % {"two": TWO_VERSIONS})
    running = start_server(bundle, port=0, poll_seconds=0)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def channel(server):
    with grpc.insecure_channel(server.address) as channel:
        yield channel


def rpc(channel, method, request, response_type):
    service = "ModelService" if method == "GetModelStatus" else "PredictionService"
    call = channel.unary_unary(f"/tensorflow.serving.{service}/{method}",
                               request_serializer=lambda m: m.SerializeToString(),
                               response_deserializer=response_type.FromString)
    return call(request, timeout=30)


def predict_request(model="half_plus_two", inputs=None, **spec):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    for key, value in spec.items():
        if key == "version":
            request.model_spec.version.value = value
        else:
            setattr(request.model_spec, key, value)
    for name, arr in (inputs if inputs is not None else {"x": np.array([[1.0]], np.float32)}).items():
        tensors.to_tensor_proto(arr, out=request.inputs[name])
    return request


def predict(channel, request):
    return rpc(channel, "Predict", request, predict_pb2.PredictResponse)


def test_golden_predict_replies_in_typed_fields(channel):
    # tensorflow_model_server_test.py: x = [2.0] with shape [1] as float_val, output_filter ["y"]
    request = predict_pb2.PredictRequest(output_filter=["y"])
    request.model_spec.name = "half_plus_two"
    request.model_spec.signature_name = "serving_default"
    request.inputs["x"].dtype = types_pb2.DT_FLOAT
    request.inputs["x"].tensor_shape.dim.add().size = 1
    request.inputs["x"].float_val.append(2.0)
    response = predict(channel, request)
    assert list(response.outputs) == ["y"]
    assert list(response.outputs["y"].float_val) == [3.0]
    assert response.outputs["y"].tensor_content == b""
    assert response.outputs["y"].dtype == types_pb2.DT_FLOAT
    assert response.model_spec.name == "half_plus_two"
    assert response.model_spec.version.value == 123
    assert response.model_spec.signature_name == "serving_default"


def test_batch_sent_as_tensor_content(channel):
    x = np.array([[1.0], [2.0], [5.0]], np.float32)
    response = predict(channel, predict_request(inputs={"x": x}))
    np.testing.assert_array_equal(tensors.to_ndarray(response.outputs["y"]), [[2.5], [3.0], [4.5]])


def test_metadata_matches_tf_serving_golden_json(channel):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "half_plus_two"
    response = rpc(channel, "GetModelMetadata", request,
                   get_model_metadata_pb2.GetModelMetadataResponse)
    assert (response.model_spec.name, response.model_spec.version.value) == ("half_plus_two", 123)
    packed = response.metadata["signature_def"]
    assert packed.type_url == "type.googleapis.com/tensorflow.serving.SignatureDefMap"
    sigmap = get_model_metadata_pb2.SignatureDefMap.FromString(packed.value)
    ours = json_format.MessageToDict(sigmap, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)
    golden = json.loads((FIXTURES / "half_plus_two_model_metadata.json").read_text())
    assert ours == golden["metadata"]["signature_def"]


def test_status_lists_the_loaded_version(channel):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "half_plus_two"
    response = rpc(channel, "GetModelStatus", request, get_model_status_pb2.GetModelStatusResponse)
    [status] = response.model_version_status
    assert status.version == 123
    assert status.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
    assert status.status.error_code == 0 and status.status.error_message == ""


@pytest.mark.parametrize("model, spec, served", [
    ("two_latest", {}, 124),
    ("two_all", {}, 124),
    ("two_all", {"version": 123}, 123),
    ("two_all", {"version_label": "stable"}, 123),
    ("two_all", {"version_label": "canary"}, 124),
])
def test_versions_policies_and_labels(channel, model, spec, served):
    response = predict(channel, predict_request(model, **spec))
    assert response.model_spec.version.value == served
    np.testing.assert_array_equal(tensors.to_ndarray(response.outputs["y"]), [[2.5]])


def test_status_of_every_version(channel):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "two_all"
    response = rpc(channel, "GetModelStatus", request, get_model_status_pb2.GetModelStatusResponse)
    assert [s.version for s in response.model_version_status] == [124, 123]
    request.model_spec.version_label = "stable"
    response = rpc(channel, "GetModelStatus", request, get_model_status_pb2.GetModelStatusResponse)
    assert [s.version for s in response.model_version_status] == [123]


NOT_FOUND, INVALID, PRECONDITION = (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT,
                                    grpc.StatusCode.FAILED_PRECONDITION)


@pytest.mark.parametrize("request_, code, message", [
    (predict_request("nope"), NOT_FOUND, "Servable not found for request: Latest(nope)"),
    (predict_request(version=7), NOT_FOUND, "Servable not found for request: Specific(half_plus_two, 7)"),
    (predict_request("two_latest", version=123), NOT_FOUND,
     "Servable not found for request: Specific(two_latest, 123)"),
    (predict_request("two_all", version_label="nope"), INVALID,
     "Unrecognized servable version label: nope"),
    (predict_request(signature_name="nope"), PRECONDITION, 'Serving signature key "nope" not found.'),
    (predict_request(""), INVALID, "ModelSpec has no name specified."),
    (predict_pb2.PredictRequest(), INVALID, "Missing ModelSpec"),
    (predict_request(inputs={"a": np.ones((1, 1), np.float32)}), INVALID,
     ("Signature input alias: x(feed name: x:0) not found in request and no default value "
     "provided. Inputs expected to be in the request {a}, or default input alias set: ")),
    (predict_request(inputs={"a": np.ones(1, np.float32), "x": np.ones(1, np.float32)}), INVALID,
     ("input size does not match signature: 2!=1 len({a,x}) != len({x}). Sent extra: {a}. "
     "Missing but required: {}.")),
    (predict_request(inputs={"x": np.array([b"oops"], object)}), INVALID,
     "Expects arg[0] to be float but string is provided"),
    (predict_request(inputs={"x": np.ones((2, 1), np.float64)}), INVALID,
     "Expects arg[0] to be float but double is provided"),
    (predict_pb2.PredictRequest(
        model_spec={"name": "half_plus_two"},
        inputs={"x": {"dtype": types_pb2.DT_FLOAT, "tensor_content": b"12345"}}),
     INVALID, "tensor parsing error: x"),
])
def test_errors_have_tf_serving_codes_and_messages(channel, request_, code, message):
    with pytest.raises(grpc.RpcError) as err:
        predict(channel, request_)
    assert (err.value.code(), err.value.details()) == (code, message)


@pytest.mark.parametrize("output_filter, message", [
    (["z"], "output tensor alias not found in signature: z Outputs expected to be in the set {y}."),
    (["y", "y"], "duplicate output tensor alias: y"),
])
def test_output_filter_errors(channel, output_filter, message):
    request = predict_request()
    request.output_filter.extend(output_filter)
    with pytest.raises(grpc.RpcError) as err:
        predict(channel, request)
    assert (err.value.code(), err.value.details()) == (INVALID, message)


@pytest.mark.parametrize("method, fields, model, code, message", [
    ("GetModelMetadata", [], "half_plus_two", INVALID,
     "GetModelMetadataRequest must specify at least one metadata_field"),
    ("GetModelMetadata", ["signature_def", "x"], "half_plus_two", INVALID,
     "Metadata field x is not supported"),
    ("GetModelMetadata", ["signature_def"], "nope", NOT_FOUND,
     "Servable not found for request: Latest(nope)"),
    ("GetModelStatus", None, "nope", NOT_FOUND, "Could not find any versions of model nope"),
])
def test_metadata_and_status_errors(channel, method, fields, model, code, message):
    if method == "GetModelMetadata":
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=fields)
        response_type = get_model_metadata_pb2.GetModelMetadataResponse
    else:
        request = get_model_status_pb2.GetModelStatusRequest()
        response_type = get_model_status_pb2.GetModelStatusResponse
    request.model_spec.name = model
    with pytest.raises(grpc.RpcError) as err:
        rpc(channel, method, request, response_type)
    assert (err.value.code(), err.value.details()) == (code, message)


@pytest.mark.parametrize("method, message", [
    ("Classify", "Missing ModelSpec"), ("Regress", "Missing ModelSpec"),
    ("MultiInference", "ModelSpec has no name specified."),
])
def test_other_prediction_methods_check_the_model_spec(channel, method, message):
    # the methods are served (tests/test_serving_classify.py); an empty request names no model
    call = channel.unary_unary(f"/tensorflow.serving.PredictionService/{method}")
    with pytest.raises(grpc.RpcError) as err:
        call(b"", timeout=10)
    assert (err.value.code(), err.value.details()) == (grpc.StatusCode.INVALID_ARGUMENT, message)


def test_health_service(channel):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    stub = health_pb2_grpc.HealthStub(channel)
    for service in ("", "tensorflow.serving.PredictionService"):
        reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_messages_over_4_mib_both_ways(server):
    x = np.linspace(-1, 1, 1_300_000, dtype=np.float32).reshape(-1, 1)  # 5.2 MB each way
    with PredictClient(server.address, timeout=60) as client:
        result = client.predict("half_plus_two", x)
    np.testing.assert_allclose(result.outputs["y"], x * 0.5 + 2, rtol=1e-6)


def test_eight_concurrent_clients(server):
    failures, results = [], {}

    def work(worker):
        try:
            with PredictClient(server.address, timeout=30) as client:
                for step in range(10):
                    x = np.full((worker + 1, 1), worker * 100 + step, np.float32)
                    y = client.predict("two_all", x, version=123 + worker % 2).outputs["y"]
                    results[(worker, step)] = (x, y)
        except Exception as err:  # noqa: BLE001 -- surfaced by the assertion below
            failures.append(err)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures
    assert len(results) == 80
    for x, y in results.values():
        np.testing.assert_array_equal(y, x * 0.5 + 2)


def test_tensor_content_replies_when_asked():
    running = start_server(HALF_PLUS_TWO, port=0, poll_seconds=0, tensor_content=True)
    try:
        with grpc.insecure_channel(running.address) as channel:
            response = predict(channel, predict_request("default"))
    finally:
        running.stop()
    assert response.outputs["y"].tensor_content and not response.outputs["y"].float_val
    np.testing.assert_array_equal(tensors.to_ndarray(response.outputs["y"]), [[2.5]])
