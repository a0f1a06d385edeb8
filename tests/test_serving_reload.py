"""Changing the served models while serving: the models.config re-read every poll period, and
ModelService/HandleReloadConfigRequest called with TF Serving's own client messages. Models are
added and removed, policies and labels change, and requests in flight are never dropped."""

from __future__ import annotations

import threading
import time

import grpc
import numpy as np
import pytest

from serving.client import PredictClient
from serving.errors import ServingError
from serving.server import start_server
from tests.conftest import SHARED_FIXTURES
from tests.test_serving_lifecycle import wait_for

FIXTURES = SHARED_FIXTURES / "tfserving"
HALF_PLUS_TWO = FIXTURES / "saved_model_half_plus_two_cpu"
TWO_VERSIONS = FIXTURES / "saved_model_half_plus_two_2_versions"
X = np.array([[2.0]], np.float32)


def entry(name, path, extra=""):
    return f'config {{ name: "{name}" base_path: "{path}" model_platform: "tensorflow" {extra} }}'


def write_config(path, *entries):
    path.write_text("model_config_list {\n  " + "\n  ".join(entries) + "\n}\n")


def served(client, model, **spec):
    try:
        return client.predict(model, X, **spec).version
    except ServingError:
        return None


@pytest.fixture(scope="module", autouse=True)
def fixtures_present():
    for path in (HALF_PLUS_TWO, TWO_VERSIONS):
        assert path.is_dir(), f"TF Serving test models are expected in {FIXTURES} (MANIFEST.md)"


@pytest.mark.slow
def test_config_file_is_polled_without_dropping_requests(tmp_path):
    config = tmp_path / "models.config"
    write_config(config, entry("half", HALF_PLUS_TWO))
    running = start_server(config, port=0, poll_seconds=0, config_poll_seconds=0.2)
    failures, answered, stop = [], [], threading.Event()

    def keep_asking():  # `half` stays in every config: none of its requests may fail
        with PredictClient(running.address) as client:
            while not stop.is_set():
                try:
                    answered.append(client.predict("half", X).outputs["y"].item())
                except ServingError as err:
                    failures.append(str(err))

    worker = threading.Thread(target=keep_asking)
    worker.start()
    try:
        with PredictClient(running.address) as client:
            assert served(client, "two") is None
            write_config(config, entry("half", HALF_PLUS_TWO), entry("two", TWO_VERSIONS))
            assert wait_for(lambda: served(client, "two") == 124)  # added, latest policy
            write_config(config, entry("half", HALF_PLUS_TWO), entry(
                "two", TWO_VERSIONS, 'model_version_policy { all {} } '
                'version_labels { key: "stable" value: 123 }'))
            assert wait_for(lambda: served(client, "two", label="stable") == 123)  # policy+label
            assert served(client, "two", version=124) == 124
            write_config(config, entry("half", HALF_PLUS_TWO))
            assert wait_for(lambda: running.manager.available() == {"half": [123]})  # removed
            with pytest.raises(ServingError, match=r"Servable not found for request: Latest\(two\)"):
                client.predict("two", X, version=None)
            config.write_text("not a config")  # logged and skipped; serving goes on
            time.sleep(0.5)
            assert served(client, "half") == 123
    finally:
        stop.set()
        worker.join(timeout=60)
        running.stop()
    assert not failures and answered and set(answered) == {3.0}


def test_zero_poll_period_reads_the_config_once(tmp_path):
    config = tmp_path / "models.config"
    write_config(config, entry("half", HALF_PLUS_TWO))
    running = start_server(config, port=0, poll_seconds=0, config_poll_seconds=0)
    try:
        write_config(config, entry("other", HALF_PLUS_TWO))
        assert running.watcher is not None and running.watcher._thread is None
        time.sleep(0.5)
        assert running.manager.available() == {"half": [123]}
    finally:
        running.stop()


def reload_request(*entries):
    """A ReloadConfigRequest built with TF Serving's own client classes, as its users send it."""
    from google.protobuf import text_format
    from tensorflow_serving.apis import model_management_pb2

    request = model_management_pb2.ReloadConfigRequest()
    text_format.Parse("model_config_list {" + " ".join(entries) + "}", request.config)
    return request


def test_handle_reload_config_request(tmp_path):
    from tensorflow_serving.apis import model_service_pb2_grpc

    running = start_server(HALF_PLUS_TWO, port=0, poll_seconds=0)
    try:
        with grpc.insecure_channel(running.address) as channel, \
                PredictClient(running.address) as client:
            stub = model_service_pb2_grpc.ModelServiceStub(channel)
            reply = stub.HandleReloadConfigRequest(reload_request(
                entry("default", HALF_PLUS_TWO), entry(
                    "two", TWO_VERSIONS, 'model_version_policy { specific { versions: 123 } }')),
                timeout=120)
            assert reply.status.error_code == 0
            assert running.manager.available() == {"default": [123], "two": [123]}
            assert served(client, "two") == 123
            with pytest.raises(grpc.RpcError) as relative:
                stub.HandleReloadConfigRequest(reload_request(entry("x", "relative/path")),
                                               timeout=30)
            assert relative.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "relative base_path" in relative.value.details()
            with pytest.raises(grpc.RpcError) as label:
                stub.HandleReloadConfigRequest(reload_request(entry(
                    "two", TWO_VERSIONS, 'model_version_policy { specific { versions: 123 } } '
                    'version_labels { key: "canary" value: 124 }')), timeout=120)
            assert label.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert label.value.details() == ("Request to assign label to version 124 of model "
                                             "two, which is not currently available for inference")
            with pytest.raises(grpc.RpcError) as custom:
                request = reload_request()
                request.config.ClearField("model_config_list")
                request.config.custom_model_config.type_url = "x"
                stub.HandleReloadConfigRequest(request, timeout=30)
            assert custom.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "Only ModelConfigList is currently supported" in custom.value.details()
    finally:
        running.stop()


def test_labels_for_unavailable_versions_when_allowed():
    running = start_server(HALF_PLUS_TWO, port=0, poll_seconds=0, labels_for_unavailable=True)
    try:
        reload = running.servicer.methods()["HandleReloadConfigRequest"].handle
        reply = reload(reload_request(entry(
            "two", TWO_VERSIONS, 'model_version_policy { specific { versions: 123 } } '
            'version_labels { key: "canary" value: 124 }')))
        assert reply.status.error_code == 0
        assert running.manager.models["two"].labels == {"canary": 124}
    finally:
        running.stop()
