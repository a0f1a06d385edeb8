"""Classify, Regress and MultiInference over real gRPC against `start_server` on 127.0.0.1:0, with
TF Serving's own test models; expected values from MANIFEST.md (y = 0.5x + 2, y2 = 0.5x + 3) and
messages from TF Serving's classifier.cc, regressor.cc, multi_inference.cc and util.cc."""

from __future__ import annotations

import grpc
import pytest

from serving.protos import classification_pb2, inference_pb2, regression_pb2
from serving.server import start_server
from tests.conftest import SHARED_FIXTURES

FIXTURES = SHARED_FIXTURES / "tfserving"
CONFIG = """
model_config_list {
  config { name: "tf1" base_path: "%(tf1)s" }
  config { name: "tf2" base_path: "%(tf2)s" }
}
"""


def fixture_path(name: str):
    path = FIXTURES / name
    assert path.is_dir(), f"TF Serving test model expected at {path} (see ../shared/fixtures)"
    return path


@pytest.fixture(scope="module")
def channel(tmp_path_factory):
    config = tmp_path_factory.mktemp("classify") / "models.config"
    config.write_text(CONFIG % {"tf1": fixture_path("saved_model_half_plus_two_cpu"),
                                "tf2": fixture_path("saved_model_half_plus_two_tf2_cpu")})
    running = start_server(config, port=0, poll_seconds=0)
    with grpc.insecure_channel(running.address) as channel:
        yield channel
    running.stop()


def call(channel, method, request):
    responses = {"Classify": classification_pb2.ClassificationResponse,
                 "Regress": regression_pb2.RegressionResponse,
                 "MultiInference": inference_pb2.MultiInferenceResponse}
    stub = channel.unary_unary(f"/tensorflow.serving.PredictionService/{method}",
                               request_serializer=lambda m: m.SerializeToString(),
                               response_deserializer=responses[method].FromString)
    return stub(request, timeout=30)


def with_examples(request, *xs, context=None):
    if context is None:
        examples = request.input.example_list.examples
    else:
        listed = request.input.example_list_with_context
        for name, value in context.items():
            listed.context.features.feature[name].float_list.value.append(value)
        examples = listed.examples
    for x in xs:
        example = examples.add()
        for name, value in (x.items() if isinstance(x, dict) else [("x", x)]):
            example.features.feature[name].float_list.value.append(value)
    return request


def classify_request(model="tf1", signature="classify_x_to_y", *xs, **kw):
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    return with_examples(request, *xs, **kw)


def regress_request(model="tf1", signature="regress_x_to_y", *xs, **kw):
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    return with_examples(request, *xs, **kw)


def failure(channel, method, request):
    with pytest.raises(grpc.RpcError) as err:
        call(channel, method, request)
    return err.value.code(), err.value.details()


@pytest.mark.parametrize("model", ["tf1", "tf2"])
def test_classify_scores_each_example(channel, model):
    response = call(channel, "Classify", classify_request(model, "classify_x_to_y", 2.0, 4.0))
    scores = [[(c.label, c.score) for c in e.classes] for e in response.result.classifications]
    assert scores == [[("", 3.0)], [("", 4.0)]]
    assert response.model_spec.name == model
    assert response.model_spec.version.value == 123
    assert response.model_spec.signature_name == "classify_x_to_y"


@pytest.mark.parametrize("signature, expected", [("regress_x_to_y", [3.0, 2.5]),
                                                 ("regress_x_to_y2", [4.0, 3.5])])
def test_regress_gives_one_value_per_example(channel, signature, expected):
    response = call(channel, "Regress", regress_request("tf1", signature, 2.0, 1.0))
    assert [r.value for r in response.result.regressions] == expected
    assert response.model_spec.signature_name == signature


def test_context_features_are_merged_into_each_example(channel):
    # x comes from the context for both examples; the examples carry an unrelated feature.
    request = regress_request("tf1", "regress_x_to_y", {"other": 1.0}, {"other": 2.0},
                              context={"x": 6.0})
    assert [r.value for r in call(channel, "Regress", request).result.regressions] == [5.0, 5.0]
    # an example's own value wins over the context's
    request = regress_request("tf1", "regress_x_to_y", 2.0, context={"x": 6.0})
    assert [r.value for r in call(channel, "Regress", request).result.regressions] == [3.0]


def test_default_signature_is_echoed_as_serving_default(channel):
    request = classify_request("tf1", "", 2.0)
    code, details = failure(channel, "Classify", request)
    # serving_default is a predict signature with input x: not classifiable
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith("No classification inputs found in SignatureDef: inputs {")
    assert 'key: "x"' in details


def test_signature_errors_match_tf_serving(channel):
    code, details = failure(channel, "Classify", classify_request("tf1", "nope", 2.0))
    assert (code, details) == (grpc.StatusCode.INVALID_ARGUMENT,
                               "No signature was found with the name: nope")
    code, details = failure(channel, "Classify", classify_request("tf1", "regress_x_to_y", 2.0))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith('Expected classification signature outputs to contain at least one '
                              'of "classes" or "scores". Signature was: ')
    code, details = failure(channel, "Regress", regress_request("tf1", "classify_x_to_y", 2.0))
    assert details.startswith("No regression outputs found in SignatureDef: ")
    code, details = failure(channel, "Regress", regress_request("tf1", "serving_default", 2.0))
    assert details.startswith("No regression inputs found in SignatureDef: ")


def test_empty_input_and_missing_model(channel):
    assert failure(channel, "Regress", regress_request("tf1", "regress_x_to_y")) == (
        grpc.StatusCode.INVALID_ARGUMENT, "Input is empty.")
    assert failure(channel, "Classify", classification_pb2.ClassificationRequest()) == (
        grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")
    assert failure(channel, "Regress", regress_request("absent", "regress_x_to_y", 1.0)) == (
        grpc.StatusCode.NOT_FOUND, "Servable not found for request: Latest(absent)")


def test_float_input_signature_refuses_examples(channel):
    # regress_x2_to_y3 takes a float tensor named inputs, not serialized examples
    code, details = failure(channel, "Regress", regress_request("tf2", "regress_x2_to_y3", 2.0))
    assert (code, details) == (grpc.StatusCode.INVALID_ARGUMENT,
                               "Expects arg[0] to be float but string is provided")


def multi_request(*tasks, xs=(2.0,)):
    request = inference_pb2.MultiInferenceRequest()
    for model, signature, method in tasks:
        task = request.tasks.add(method_name=f"tensorflow/serving/{method}")
        task.model_spec.name = model
        task.model_spec.signature_name = signature
    return with_examples(request, *xs)


def test_multi_inference_runs_every_task_on_the_same_examples(channel):
    request = multi_request(("tf1", "classify_x_to_y", "classify"),
                            ("tf1", "regress_x_to_y2", "regress"), xs=(2.0, 0.0))
    results = call(channel, "MultiInference", request).results
    assert [[c.score for c in e.classes] for e in results[0].classification_result.classifications] \
        == [[3.0], [2.0]]
    assert [r.value for r in results[1].regression_result.regressions] == [4.0, 3.0]
    assert [(r.model_spec.name, r.model_spec.signature_name, r.model_spec.version.value)
            for r in results] == [("tf1", "classify_x_to_y", 123), ("tf1", "regress_x_to_y2", 123)]


@pytest.mark.parametrize("tasks, code, message", [
    ([("tf1", "regress_x_to_y", "regress"), ("tf2", "regress_x_to_y", "regress")],
     grpc.StatusCode.INVALID_ARGUMENT,
     "All ModelSpecs in a MultiInferenceRequest must access the same model name."),
    ([("tf1", "regress_x_to_y", "regress"), ("tf1", "regress_x_to_y", "regress")],
     grpc.StatusCode.INVALID_ARGUMENT, "Duplicate evaluation of signature: regress_x_to_y"),
    ([("tf1", "nope", "regress")], grpc.StatusCode.INVALID_ARGUMENT,
     "Requested signature not found in model graph: nope"),
    ([("tf1", "regress_x_to_y", "predict")], grpc.StatusCode.UNIMPLEMENTED,
     "Unsupported signature method_name: tensorflow/serving/predict"),
    # TF2's export gives each signature its own input tensor (and names every method
    # "predict", which passes: the method name check is off by default)
    ([("tf2", "classify_x_to_y", "classify"), ("tf2", "regress_x_to_y2", "regress")],
     grpc.StatusCode.INVALID_ARGUMENT, "Input tensor must be the same for all Signatures."),
])
def test_multi_inference_errors_match_tf_serving(channel, tasks, code, message):
    assert failure(channel, "MultiInference", multi_request(*tasks)) == (code, message)


def test_method_name_check_refuses_predict_signatures(tmp_path):
    # TF2 exports label every signature "predict"; with the check on, Classify refuses them
    running = start_server(fixture_path("saved_model_half_plus_two_tf2_cpu"), port=0,
                           poll_seconds=0, model_name="tf2", signature_method_check=True, warmup=False)
    try:
        with grpc.insecure_channel(running.address) as channel:
            code, details = failure(channel, "Classify",
                                    classify_request("tf2", "classify_x_to_y", 2.0))
    finally:
        running.stop()
    expected = ("Expected classification signature method_name to be "
                "tensorflow/serving/classify. Was: tensorflow/serving/predict")
    assert (code, details) == (grpc.StatusCode.INVALID_ARGUMENT, expected)


def test_classify_and_regress_warmup_records_are_replayed(tmp_path, caplog):
    import logging

    from tensorflow_serving.apis import prediction_log_pb2

    from tests.test_serving_lifecycle import version_with_warmup

    caplog.set_level(logging.INFO, logger="kexport.serving")
    good = prediction_log_pb2.PredictionLog()
    good.regress_log.request.model_spec.signature_name = "regress_x_to_y"
    good.regress_log.request.input.example_list.examples.add().features.feature[
        "x"].float_list.value.append(1.0)
    bad = prediction_log_pb2.PredictionLog()  # serving_default cannot classify: the load fails
    bad.classify_log.request.input.example_list.examples.add()
    version_with_warmup(tmp_path / "good" / "1", [good, good])
    version_with_warmup(tmp_path / "bad" / "1", [good, bad])
    config = tmp_path / "models.config"
    config.write_text(CONFIG.replace('"tf1"', '"good"').replace('"tf2"', '"bad"') % {
        "tf1": tmp_path / "good", "tf2": tmp_path / "bad"})
    running = start_server(config, port=0, poll_seconds=0)
    try:
        assert running.manager.available() == {"good": [1], "bad": []}
        failed = running.manager.states("bad")[1]
    finally:
        running.stop()
    assert "model good version 1: replayed 2 warm-up request(s)" in caplog.text
    assert "with record 1: No classification inputs found in SignatureDef" in failed.error_message
