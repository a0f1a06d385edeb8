"""A local gRPC server that speaks TF Serving's API over a model repository or bundle.

PredictionService (Predict, Classify, Regress, MultiInference, GetModelMetadata) and ModelService
(GetModelStatus) are served with TF Serving's status codes and messages.
It is a stand-in for development and CI on machines without a container engine; production is
the tensorflow/serving container.

    running = start_server("bundle/", port=0)   # returns once the models are loaded
    print(running.port); ...; running.stop()

`serve()` does the same and blocks until SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc

from exporter.errors import BadInputError, ServingError
from serving import inference, memory
from serving.batching import batching_config
from serving.manager import ModelManager
from serving.protos import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_pb2,
    predict_pb2,
    regression_pb2,
)
from serving.repository import load_repository
from serving.servable import LoadOptions, RpcFailure

log = logging.getLogger("kexport.serving")

SIGNATURE_DEF_MAP_URL = "type.googleapis.com/tensorflow.serving.SignatureDefMap"
SERVER_OPTIONS = [
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
    # Without this, a second server could silently share a busy port on Linux.
    ("grpc.so_reuseport", 0),
]


@dataclass
class RunningServer:
    """A started server: where it listens, and how to stop it."""

    server: grpc.Server
    manager: ModelManager
    health: object
    host: str
    port: int

    @property
    def address(self) -> str:
        """HOST:PORT clients connect to."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def stop(self, grace: float | None = 2.0) -> None:
        """Stop accepting requests, let running ones finish for `grace` seconds, unload models."""
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()
        self.manager.stop()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server stops; False on timeout."""
        return self.server.wait_for_termination(timeout)


def start_server(path: str | Path, *, host: str = "127.0.0.1", port: int = 8500,
                 model_name: str = "default", poll_seconds: float = 1.0,
                 tensor_content: bool = False, max_workers: int = 16, warmup: bool = True,
                 credentials: grpc.ServerCredentials | None = None, batching=None,
                 prefer_tflite: bool = False, method_name_check: bool = False) -> RunningServer:
    """Load the models under PATH and start serving them; return once they are loaded.

    Args:
        path: a bundle (with models.config), a models.config file, or a model base path.
        host: interface to bind; 127.0.0.1 keeps the server private to this machine.
        port: TCP port; 0 picks a free one (see `RunningServer.port`).
        model_name: the model's name when PATH is a base path.
        poll_seconds: how often to look for new and removed versions; 0 never.
        tensor_content: reply with raw tensor bytes instead of typed fields.
        max_workers: requests handled at once.
        warmup: replay warm-up records when a version loads.
        credentials: serve TLS with these (`grpc.ssl_server_credentials`); plain text when None.
        batching: merge concurrent calls per signature (--enable_batching): a
            `serving.batching.BatchingConfig`, the path of a BatchingParameters text file
            (--batching_parameters_file), True for TF Serving's defaults, False for none; None
            batches as a bundle built with `kexport bundle --batching` asks (its batching.config).
        prefer_tflite: serve a version's model.tflite when it has one (--prefer_tflite_model).
        method_name_check: Classify/Regress demand the signature's method_name
            (--enable_signature_method_name_check).

    Raises:
        BadInputError: PATH or its models.config is invalid.
        ServingError: the address cannot be bound.
    """
    options = LoadOptions(warmup=warmup, prefer_tflite=prefer_tflite,
                          batching=batching_config(batching, path),
                          method_name_check=method_name_check)
    manager = ModelManager(load_repository(path, model_name), options=options)
    manager.refresh()
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    server = grpc.server(ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="kexport"),
                         options=SERVER_OPTIONS)
    server.add_generic_rpc_handlers(_handlers(manager, tensor_content))
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        if credentials is None:
            bound = server.add_insecure_port(address)
        else:
            bound = server.add_secure_port(address, credentials)
    except RuntimeError:
        bound = 0
    if not bound:
        manager.stop()
        raise ServingError(f"Cannot listen on {address}: the port is in use or the address is "
                           "not on this machine.", hint="Pick another --port, or --port 0.")
    server.start()
    for service in ("", "tensorflow.serving.PredictionService", "tensorflow.serving.ModelService"):
        health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    manager.start_polling(poll_seconds)
    running = RunningServer(server, manager, health_servicer, host, bound)
    scope = ("this machine only" if host in ("127.0.0.1", "localhost", "::1")
             else "the network: anyone who can reach it may call it")
    log.info("serving on %s (%s, %s)", running.address, "TLS" if credentials else "plain text",
             scope)
    for name, versions in manager.available().items():
        log.info("model %s: versions %s", name, versions or "none loaded")
    return running


def tls_credentials(cert: str | Path | None, key: str | Path | None):
    """Server credentials from a PEM certificate chain and key; None when neither is given."""
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise BadInputError("TLS needs both --tls-cert and --tls-key.")
    try:
        chain, private = Path(cert).read_bytes(), Path(key).read_bytes()
    except OSError as err:
        raise BadInputError(f"cannot read {err.filename}: {err.strerror}.") from None
    if b"CERTIFICATE-----" not in chain or b"PRIVATE KEY-----" not in private:
        raise BadInputError(f"--tls-cert {cert} and --tls-key {key} must be PEM files "
                            "(a certificate chain and its private key).")
    return grpc.ssl_server_credentials([(private, chain)])


def serve(path: str | Path, host: str = "127.0.0.1", port: int = 8500,
          model_name: str = "default", poll_seconds: float = 1.0, tensor_content: bool = False,
          *, max_workers: int = 16, warmup: bool = True, on_ready=None,
          credentials: grpc.ServerCredentials | None = None, batching=None,
          prefer_tflite: bool = False, method_name_check: bool = False) -> None:
    """Serve until SIGTERM or Ctrl-C, then stop cleanly; "serving on HOST:PORT" goes to stderr.

    Arguments are those of `start_server`; `on_ready(running)` is called once serving (e.g. to
    print the bound port as JSON). Logging goes to stderr through the `kexport.serving` logger,
    set up here at INFO unless the application configured it.
    """
    if not log.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(handler)
        log.propagate = False  # TensorFlow may give the root logger a handler of its own later
        if log.level == logging.NOTSET:
            log.setLevel(logging.INFO)
    if not log.isEnabledFor(logging.DEBUG):
        # TensorFlow's load chatter (oneDNN, CUDA probes, TF1 reference variables) is not news
        # to someone serving a model; --verbose keeps it.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        for name in ("tensorflow", "absl"):
            logging.getLogger(name).setLevel(logging.ERROR)
    running = start_server(path, host=host, port=port, model_name=model_name,
                           poll_seconds=poll_seconds, tensor_content=tensor_content,
                           max_workers=max_workers, warmup=warmup, credentials=credentials,
                           batching=batching, prefer_tflite=prefer_tflite,
                           method_name_check=method_name_check)
    stop = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, lambda *_: stop.set())
    try:
        if on_ready is not None:
            on_ready(running)
        stop.wait()
        log.info("stopping")
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        running.stop()
        log.info("stopped")


def _handlers(manager: ModelManager, tensor_content: bool):
    def predict(request):
        return _resolve(manager, request).predict_wire(request, tensor_content=tensor_content)

    def multi_inference(request):
        # TF Serving resolves the model from the first task's spec (multi_inference_helper.cc).
        spec = request.tasks[0].model_spec if request.tasks else model_pb2.ModelSpec()
        servable = manager.resolve(spec)
        return inference.multi_inference(servable, request)

    prediction = {
        "Predict": _unary(predict, predict_pb2.PredictRequest),
        "Classify": _unary(lambda r: inference.classify(_resolve(manager, r), r),
                           classification_pb2.ClassificationRequest),
        "Regress": _unary(lambda r: inference.regress(_resolve(manager, r), r),
                          regression_pb2.RegressionRequest),
        "MultiInference": _unary(multi_inference, inference_pb2.MultiInferenceRequest),
        "GetModelMetadata": _unary(lambda r: _metadata(manager, r),
                                   get_model_metadata_pb2.GetModelMetadataRequest),
    }
    model = {
        "GetModelStatus": _unary(lambda r: _status(manager, r),
                                 get_model_status_pb2.GetModelStatusRequest),
        "HandleReloadConfigRequest": _unimplemented("HandleReloadConfigRequest"),
    }
    return (grpc.method_handlers_generic_handler("tensorflow.serving.PredictionService", prediction),
            grpc.method_handlers_generic_handler("tensorflow.serving.ModelService", model))


def _resolve(manager: ModelManager, request):
    """The version a request's ModelSpec names; "Missing ModelSpec" as TF Serving without one."""
    if not request.HasField("model_spec"):
        raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")
    return manager.resolve(request.model_spec)


def _metadata(manager: ModelManager, request):
    if not request.HasField("model_spec"):
        raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")
    if not request.metadata_field:
        raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT,
                         "GetModelMetadataRequest must specify at least one metadata_field")
    for field in request.metadata_field:
        if field != "signature_def":
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT,
                             f"Metadata field {field} is not supported")
    servable = manager.resolve(request.model_spec)
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = servable.name
    response.model_spec.version.value = servable.version
    packed = response.metadata["signature_def"]
    packed.type_url = SIGNATURE_DEF_MAP_URL  # TF Serving's type name, which clients look up
    packed.value = servable.signature_map
    return response


def _status(manager: ModelManager, request):
    if not request.HasField("model_spec"):
        raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")
    spec = request.model_spec
    states = manager.states(spec.name)
    choice = spec.WhichOneof("version_choice")
    if choice is not None:
        version = spec.version.value if choice == "version" else manager.label_version(
            spec.name, spec.version_label)
        if version not in states:
            raise RpcFailure(grpc.StatusCode.NOT_FOUND,
                             f"Could not find version {version} of model {spec.name}")
        states = {version: states[version]}
    elif not states:
        raise RpcFailure(grpc.StatusCode.NOT_FOUND,
                         f"Could not find any versions of model {spec.name}")
    response = get_model_status_pb2.GetModelStatusResponse()
    state_enum = get_model_status_pb2.ModelVersionStatus.State
    for version, state in states.items():
        entry = response.model_version_status.add(version=version, state=state_enum.Value(state.state))
        entry.status.error_code = state.error_code
        entry.status.error_message = state.error_message
    return response


def _unary(handle, request_type):
    def behaviour(request, context):
        started = time.perf_counter()
        method = request_type.DESCRIPTOR.name.removesuffix("Request")
        try:
            response = handle(request)
        except RpcFailure as failure:
            _log_request(method, request, started, failure.code.name)
            context.abort(failure.code, failure.message)
        except Exception as err:  # a bug or a TF crash: answer INTERNAL, keep serving
            log.exception("%s failed", method)
            context.abort(grpc.StatusCode.INTERNAL, f"{type(err).__name__}: {err}")
        _log_request(method, request, started, "OK")
        memory.release_after(request.ByteSize())
        return response

    return grpc.unary_unary_rpc_method_handler(
        behaviour, request_deserializer=request_type.FromString,
        response_serializer=_serialize)


def _serialize(response) -> bytes:
    # Predict replies come already serialized (Servable.predict_wire).
    return response if isinstance(response, bytes) else response.SerializeToString()


def _unimplemented(method: str):
    def behaviour(request, context):
        log.debug("%s UNIMPLEMENTED", method)
        context.abort(grpc.StatusCode.UNIMPLEMENTED,
                      f"{method} is not implemented by kexport serve, the local stand-in for TF "
                      "Serving; use Predict, or the tensorflow/serving container.")

    # Raw bytes in: the request is never parsed.
    return grpc.unary_unary_rpc_method_handler(behaviour)


def _log_request(method: str, request, started: float, outcome: str) -> None:
    if not log.isEnabledFor(logging.DEBUG):
        return
    spec = request.tasks[0].model_spec if hasattr(request, "tasks") and request.tasks else (
        getattr(request, "model_spec", None))
    if spec is None:
        log.debug("%s %.1f ms %s", method, (time.perf_counter() - started) * 1e3, outcome)
        return
    which = spec.WhichOneof("version_choice")
    version = {"version": lambda: spec.version.value, "version_label": lambda: spec.version_label,
               None: lambda: "latest"}[which]()
    log.debug("%s model=%s version=%s signature=%s %.1f ms %s", method, spec.name, version,
              spec.signature_name or "-", (time.perf_counter() - started) * 1e3, outcome)
