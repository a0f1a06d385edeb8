"""TF1 SavedModels the TF2 loader refuses are served from a TF1 session, as TF Serving serves them:
`saved_model_half_plus_three` (y = 0.5x + 3; MANIFEST.md: TF Serving's testGoodModelConfig
expects 4.0 for x = 2) over real gRPC on 127.0.0.1:0."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from serving import tensors
from serving.client import PredictClient
from serving.protos import predict_pb2, regression_pb2
from serving.runners import SessionRunner
from serving.server import start_server
from tests.conftest import SHARED_FIXTURES

HALF_PLUS_THREE = SHARED_FIXTURES / "tfserving" / "saved_model_half_plus_three"


@pytest.fixture(scope="module")
def running():
    assert HALF_PLUS_THREE.is_dir(), f"TF Serving test model expected at {HALF_PLUS_THREE}"
    server = start_server(HALF_PLUS_THREE, port=0, poll_seconds=0, model_name="half_plus_three")
    yield server
    server.stop()


def test_the_tf2_loader_refuses_it_and_the_session_loader_serves_it(running):
    import tensorflow as tf

    with pytest.raises(ValueError, match="rank"):  # "Shapes must be equal rank", or worded per graph state
        tf.saved_model.load(str(HALF_PLUS_THREE / "00000123"))
    servable = running.manager.resolve(predict_pb2.PredictRequest(
        model_spec={"name": "half_plus_three"}).model_spec)
    assert isinstance(servable.runner, SessionRunner)
    status = running.manager.states("half_plus_three")
    assert status[123].state == "AVAILABLE"


def test_predict_from_the_session(running):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "half_plus_three"
    tensors.to_tensor_proto(np.array([2.0], np.float32), out=request.inputs["x"])  # shape [1]
    with grpc.insecure_channel(running.address) as channel:
        stub = channel.unary_unary("/tensorflow.serving.PredictionService/Predict",
                                   request_serializer=lambda m: m.SerializeToString(),
                                   response_deserializer=predict_pb2.PredictResponse.FromString)
        response = stub(request, timeout=30)
        request.inputs["x"].CopyFrom(tensors.to_tensor_proto(np.array(["a"])))
        with pytest.raises(grpc.RpcError) as err:
            stub(request, timeout=30)
    assert list(response.outputs["y"].float_val) == [4.0]
    assert response.model_spec.version.value == 123
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details() == "Expects arg[0] to be float but string is provided"


def test_regress_and_client_from_the_session(running):
    with PredictClient(running.address) as client:
        assert set(client.signatures("half_plus_three")) == {"serving_default",
                                                             "tensorflow/serving/regress"}
        np.testing.assert_allclose(
            client.predict("half_plus_three", np.array([[1.0], [5.0]], np.float32)).outputs["y"],
            [[3.5], [5.5]])
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = "half_plus_three"
    request.model_spec.signature_name = "tensorflow/serving/regress"
    for x in (2.0, 4.0):
        request.input.example_list.examples.add().features.feature["x"].float_list.value.append(x)
    with grpc.insecure_channel(running.address) as channel:
        stub = channel.unary_unary("/tensorflow.serving.PredictionService/Regress",
                                   request_serializer=lambda m: m.SerializeToString(),
                                   response_deserializer=regression_pb2.RegressionResponse.FromString)
        response = stub(request, timeout=30)
    assert [r.value for r in response.result.regressions] == [4.0, 5.0]


def test_a_folder_neither_loader_reads_names_both_failures(tmp_path):
    from serving.runners import load_savedmodel

    (tmp_path / "saved_model.pb").write_bytes(b"not a protobuf")
    with pytest.raises(RuntimeError, match="TF2.s loader failed too"):
        load_savedmodel(tmp_path)


def test_stateful_tf1_graphs_keep_their_state_between_requests():
    # saved_model_counter (MANIFEST.md: reference variables, which TF2's functions cannot call):
    # its variable lives in the session, as in TF Serving, across requests
    counter = SHARED_FIXTURES / "tfserving" / "saved_model_counter"
    assert counter.is_dir(), f"TF Serving test model expected at {counter}"
    server = start_server(counter, port=0, poll_seconds=0, model_name="counter", warmup=False)
    seen = []
    try:
        with grpc.insecure_channel(server.address) as channel:
            stub = channel.unary_unary("/tensorflow.serving.PredictionService/Predict",
                                       request_serializer=lambda m: m.SerializeToString(),
                                       response_deserializer=predict_pb2.PredictResponse.FromString)
            for signature, delta in [("incr_counter", None), ("incr_counter", None),
                                     ("incr_counter_by", 3.0), ("reset_counter", None),
                                     ("get_counter", None)]:
                request = predict_pb2.PredictRequest()
                request.model_spec.name = "counter"
                request.model_spec.signature_name = signature
                if delta is not None:
                    tensors.to_tensor_proto(np.array(delta, np.float32), out=request.inputs["delta"])
                seen.append(float(tensors.to_ndarray(stub(request, timeout=30).outputs["output"])))
    finally:
        server.stop()
    assert seen == [1.0, 2.0, 5.0, 0.0, 0.0]
