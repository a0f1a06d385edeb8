"""Server-side batching: BatchingParameters parsing as TF Serving's, and concurrent Predict and
Regress calls to a real server on 127.0.0.1:0 merged into shared runs, each caller getting its own
result (y = 0.5x + 2, MANIFEST.md) or its own error."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest

from exporter.errors import BadInputError
from serving import tensors
from serving.batching_config import (
    BatchingConfig,
    BatchingSettings,
    parse_batching_config,
    read_batching_config,
)
from serving.protos import predict_pb2, regression_pb2
from serving.server import start_server
from tests.conftest import SHARED_FIXTURES

FIXTURES = SHARED_FIXTURES / "tfserving"
HALF_PLUS_TWO = FIXTURES / "saved_model_half_plus_two_cpu"


def test_tf_serving_batching_config_parses():
    path = FIXTURES / "batching_config.txt"
    assert path.is_file(), f"TF Serving's batching_config.txt expected at {path}"
    config = read_batching_config(path)
    assert (config.max_batch_size, config.batch_timeout_micros, config.max_enqueued_batches,
            config.num_batch_threads) == (128, 0, 1000000, 8)
    assert config.allowed_batch_sizes == () and not config.pad_variable_length_inputs


def test_bundle_batching_config_parses():
    written = BatchingSettings()
    config = parse_batching_config(written.render())
    assert config.max_batch_size == written.max_batch_size
    assert config.batch_timeout_micros == written.batch_timeout_micros
    assert config.num_batch_threads == written.num_batch_threads


def test_unset_fields_take_scheduler_defaults():
    config = parse_batching_config("allowed_batch_sizes: 8 allowed_batch_sizes: 1000\n"
                                   "pad_variable_length_inputs: true")
    assert config.max_batch_size == 1000 and config.max_enqueued_batches == 10
    assert config.allowed_batch_sizes == (8, 1000) and config.pad_variable_length_inputs


@pytest.mark.parametrize("text, message", [
    ("max_batch_size { value: 8 } allowed_batch_sizes: 4 allowed_batch_sizes: 2",
     "monotonically increasing"),
    ("max_batch_size { value: 8 } allowed_batch_sizes: 4", "must equal max_batch_size"),
    ("max_batch_size { value: 0 }", "max_batch_size must be positive"),
    ("max_batch_size: 3", "Error parsing text-format tensorflow.serving.BatchingParameters"),
])
def test_bad_batching_configs_are_refused(text, message):
    with pytest.raises(BadInputError, match=message) as err:
        parse_batching_config(text)
    assert err.value.exit_code == 2


@pytest.fixture(scope="module")
def batched():
    assert HALF_PLUS_TWO.is_dir(), f"TF Serving test model expected at {HALF_PLUS_TWO}"
    # A long timeout and one batch thread: calls arriving together must share runs.
    config = BatchingConfig(max_batch_size=8, batch_timeout_micros=300_000, num_batch_threads=1,
                            allowed_batch_sizes=(4, 8))
    running = start_server(HALF_PLUS_TWO, port=0, poll_seconds=0, model_name="m", warmup=False,
                           batching=config)
    yield running
    running.stop()


def runner_of(running):
    return running.manager.resolve(predict_pb2.PredictRequest(model_spec={"name": "m"}).model_spec).runner


def stub(channel, method, response_type):
    return channel.unary_unary(f"/tensorflow.serving.PredictionService/{method}",
                               request_serializer=lambda m: m.SerializeToString(),
                               response_deserializer=response_type.FromString)


def concurrently(calls):
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait()
        try:
            return call()
        except grpc.RpcError as err:
            return err

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def test_concurrent_predicts_share_runs_and_get_their_own_rows(batched):
    runner = runner_of(batched)
    before_calls, before_runs = runner.calls, runner.runs
    with grpc.insecure_channel(batched.address) as channel:
        call = stub(channel, "Predict", predict_pb2.PredictResponse)

        def predict(xs):
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "m"
            tensors.to_tensor_proto(np.array(xs, np.float32).reshape(-1, 1), out=request.inputs["x"])
            return lambda: tensors.to_ndarray(call(request, timeout=30).outputs["y"]).ravel().tolist()

        inputs = [[float(i)] for i in range(5)] + [[10.0, 20.0]]  # 7 rows: padded to 8
        results = concurrently([predict(xs) for xs in inputs])
    assert results == [[0.5 * x + 2 for x in xs] for xs in inputs]
    assert runner.calls - before_calls == 6
    assert runner.runs - before_runs < 6  # merged: fewer runs than calls


def test_a_bad_call_fails_alone(batched):
    with grpc.insecure_channel(batched.address) as channel:
        call = stub(channel, "Regress", regression_pb2.RegressionResponse)

        def regress(feature):
            request = regression_pb2.RegressionRequest()
            request.model_spec.name = "m"
            request.model_spec.signature_name = "regress_x_to_y"
            request.input.example_list.examples.add().features.feature[feature].float_list.value.append(4.0)
            return lambda: [r.value for r in call(request, timeout=30).result.regressions]

        results = concurrently([regress("x"), regress("not_x"), regress("x")])
    assert results[0] == results[2] == [4.0]
    assert results[1].code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "x" in results[1].details()


def test_calls_larger_than_max_batch_size_are_refused(batched):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "m"
    tensors.to_tensor_proto(np.zeros((9, 1), np.float32), out=request.inputs["x"])
    with grpc.insecure_channel(batched.address) as channel, pytest.raises(grpc.RpcError) as err:
        stub(channel, "Predict", predict_pb2.PredictResponse)(request, timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details() == "Task size 9 is larger than maximum input batch size 8"


def test_a_bundle_built_with_batching_batches(tmp_path):
    from serving.batching_config import batching_config

    (tmp_path / "batching.config").write_text(BatchingSettings(max_batch_size=16).render())
    assert batching_config(None, tmp_path) is None  # not a bundle that asked for it
    (tmp_path / "bundle.json").write_text('{"batching": true, "models": {}}')
    assert batching_config(None, tmp_path).max_batch_size == 16
    assert batching_config(False, tmp_path) is None  # an explicit no wins
    assert batching_config(True).max_batch_size == BatchingConfig().max_batch_size
    assert batching_config(str(tmp_path / "batching.config")).max_batch_size == 16


def test_tf_serving_flags_reach_the_loader(tmp_path):
    from serving.options import serve_options
    from serving.server import load_options

    flags = serve_options(HALF_PLUS_TWO, enable_batching=True,
                          batching_parameters_file=FIXTURES / "batching_config.txt",
                          prefer_tflite_model=True)
    loading = load_options(flags)
    assert loading.batching.max_batch_size == 128 and loading.batching.num_batch_threads == 8
    assert loading.prefer_tflite and not loading.method_name_check  # TF Serving's default
    assert load_options(serve_options(HALF_PLUS_TWO, enable_batching=True)).batching == \
        BatchingConfig()  # no parameters file: the scheduler's defaults
    # the file alone does not batch, as in TF Serving
    assert load_options(serve_options(HALF_PLUS_TWO, batching_parameters_file=FIXTURES /
                                      "batching_config.txt")).batching is None


def test_per_model_batching_parameters(tmp_path):
    from serving.options import BatchingOptions

    version = tmp_path / "m" / "123"
    version.mkdir(parents=True)
    for name in ("saved_model.pb", "variables"):
        (version / name).symlink_to(HALF_PLUS_TWO / "00000123" / name)
    (version / "batching_params.pbtxt").write_text("max_batch_size { value: 2 }\n")
    running = start_server(tmp_path / "m", port=0, poll_seconds=0, model_name="m", warmup=False,
                           batching=BatchingOptions(enabled=True, per_model=True))
    try:
        assert runner_of(running).config.max_batch_size == 2  # the version's own file wins
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "m"
        tensors.to_tensor_proto(np.zeros((3, 1), np.float32), out=request.inputs["x"])
        with grpc.insecure_channel(running.address) as channel, \
                pytest.raises(grpc.RpcError) as err:
            stub(channel, "Predict", predict_pb2.PredictResponse)(request, timeout=30)
    finally:
        running.stop()
    assert err.value.details() == "Task size 3 is larger than maximum input batch size 2"
