"""TF Serving's PredictionService and ModelService as plain methods: a request message in, a reply
message out, or an RpcFailure with TF Serving's code and message.

Both front ends call `Servicer.call`: the gRPC server (serving/server.py) with the deserialized
request, the REST API (serving/rest.py) with the request it built from JSON, as TF Serving's REST
handler calls its gRPC implementations; so the two can never disagree. A method is served when
`Servicer.methods()` has it; the others answer UNIMPLEMENTED on both front ends.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import grpc

from serving import inference
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
from serving.rpc import RpcFailure
from serving.servable import DEFAULT_SIGNATURE

log = logging.getLogger("kexport.serving")

PREDICTION_SERVICE = "tensorflow.serving.PredictionService"
MODEL_SERVICE = "tensorflow.serving.ModelService"
# Every method of the two services, served or not, by service.
SERVICE_METHODS = {
    PREDICTION_SERVICE: ("Predict", "GetModelMetadata", "Classify", "Regress", "MultiInference"),
    MODEL_SERVICE: ("GetModelStatus", "HandleReloadConfigRequest"),
}
# The methods TF Serving counts in :tensorflow:serving:request_count and request_latency.
INFERENCE_METHODS = ("Predict", "Classify", "Regress", "MultiInference")
SIGNATURE_DEF_MAP_URL = "type.googleapis.com/tensorflow.serving.SignatureDefMap"


@dataclass(frozen=True)
class Method:
    """One served RPC: its message types and the function that answers it."""

    request_type: type
    response_type: type
    handle: object  # request -> response; raises RpcFailure
    handle_wire: object = None  # request -> serialized response, where that saves copies


class Servicer:
    """Answers TF Serving's RPCs from the versions a ModelManager has loaded.

    Args:
        manager: the loaded models.
        tensor_content: reply with raw tensor bytes instead of typed fields.
        metrics: a `serving.metrics.ServingMetrics` to record requests in, or None.
        reload_config: called with a ReloadConfigRequest's ModelServerConfig to apply it; None
            leaves HandleReloadConfigRequest unimplemented.
    """

    def __init__(self, manager: ModelManager, *, tensor_content: bool = False, metrics=None,
                 reload_config=None):
        self.manager = manager
        self.tensor_content = tensor_content
        self.metrics = metrics
        self._reload_config = reload_config
        self._methods = self._build_methods()

    def methods(self) -> dict[str, Method]:
        """The served methods by name (Predict, GetModelStatus, ...)."""
        return self._methods

    def call(self, name: str, request, entrypoint: str = "GRPC", *, wire: bool = False):
        """Answer one request; record it in the metrics as TF Serving does (per model and API).

        With `wire`, a method that can (Predict) answers with the serialized reply, written
        straight from the output arrays; the others answer with the message.

        Raises:
            RpcFailure: the request is refused, or the method is not served here.
        """
        method = self._methods.get(name)
        if method is None:
            raise RpcFailure(grpc.StatusCode.UNIMPLEMENTED, f"{name} is not implemented by kexport "
                             "serve, the local stand-in for TF Serving.")
        started = time.perf_counter()
        outcome = "OK"
        try:
            if wire and method.handle_wire is not None:
                return method.handle_wire(request)
            return method.handle(request)
        except RpcFailure as failure:
            outcome = failure.code.name
            raise
        except Exception:
            outcome = "INTERNAL"
            raise
        finally:
            if self.metrics is not None and name in INFERENCE_METHODS:
                self.metrics.record(_model_name(request), name, entrypoint, outcome,
                                    time.perf_counter() - started)

    def signature_inputs(self, model_spec) -> dict[str, int]:
        """Input aliases and DataTypes of the signature a ModelSpec names (REST needs them).

        Raises:
            RpcFailure: unknown model or version (NOT_FOUND), unknown signature
                (INVALID_ARGUMENT, TF Serving's REST wording).
        """
        servable = self.manager.resolve(model_spec)
        name = model_spec.signature_name or DEFAULT_SIGNATURE
        signature = servable.signature_defs.get(name)
        if signature is None:
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT,
                             f'Serving signature name: "{name}" not found in signature def')
        return {alias: info.dtype for alias, info in signature.inputs.items()}

    def _build_methods(self) -> dict[str, Method]:
        methods = {
            "Predict": Method(predict_pb2.PredictRequest, predict_pb2.PredictResponse,
                              self._predict, self._predict_wire),
            "Classify": Method(classification_pb2.ClassificationRequest,
                               classification_pb2.ClassificationResponse, self._classify),
            "Regress": Method(regression_pb2.RegressionRequest,
                              regression_pb2.RegressionResponse, self._regress),
            "MultiInference": Method(inference_pb2.MultiInferenceRequest,
                                     inference_pb2.MultiInferenceResponse, self._multi_inference),
            "GetModelMetadata": Method(get_model_metadata_pb2.GetModelMetadataRequest,
                                       get_model_metadata_pb2.GetModelMetadataResponse,
                                       self._metadata),
            "GetModelStatus": Method(get_model_status_pb2.GetModelStatusRequest,
                                     get_model_status_pb2.GetModelStatusResponse, self._status),
        }
        if self._reload_config is not None:
            # TF Serving's own messages: a ModelServerConfig has no TF-free copy here, and the
            # server has TensorFlow loaded anyway.
            from tensorflow_serving.apis import model_management_pb2

            methods["HandleReloadConfigRequest"] = Method(
                model_management_pb2.ReloadConfigRequest,
                model_management_pb2.ReloadConfigResponse, self._reload)
        return methods

    def _predict(self, request):
        _require_spec(request)
        servable = self.manager.resolve(request.model_spec)
        return servable.predict(request, tensor_content=self.tensor_content)

    def _predict_wire(self, request) -> bytes:
        _require_spec(request)
        servable = self.manager.resolve(request.model_spec)
        return servable.predict_wire(request, tensor_content=self.tensor_content)

    def _classify(self, request):
        _require_spec(request)
        return inference.classify(self.manager.resolve(request.model_spec), request)

    def _regress(self, request):
        _require_spec(request)
        return inference.regress(self.manager.resolve(request.model_spec), request)

    def _multi_inference(self, request):
        # TF Serving resolves the model from the first task's spec (multi_inference_helper.cc).
        spec = request.tasks[0].model_spec if request.tasks else model_pb2.ModelSpec()
        return inference.multi_inference(self.manager.resolve(spec), request)

    def _metadata(self, request):
        _require_spec(request)
        if not request.metadata_field:
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT,
                             "GetModelMetadataRequest must specify at least one metadata_field")
        for field in request.metadata_field:
            if field != "signature_def":
                raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT,
                                 f"Metadata field {field} is not supported")
        servable = self.manager.resolve(request.model_spec)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        packed = response.metadata["signature_def"]
        packed.type_url = SIGNATURE_DEF_MAP_URL  # TF Serving's type name, which clients look up
        packed.value = servable.signature_map
        return response

    def _status(self, request):
        _require_spec(request)
        spec = request.model_spec
        states = self.manager.states(spec.name)
        choice = spec.WhichOneof("version_choice")
        if choice is not None:
            version = spec.version.value if choice == "version" else self.manager.label_version(
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
            entry = response.model_version_status.add(version=version,
                                                      state=state_enum.Value(state.state))
            entry.status.error_code = state.error_code
            entry.status.error_message = state.error_message
        return response

    def _reload(self, request):
        from tensorflow_serving.apis import model_management_pb2

        if request.config.WhichOneof("config") != "model_config_list":
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT,
                             "ServerModelConfig type not supported by HandleReloadConfigRequest. "
                             "Only ModelConfigList is currently supported")
        self._reload_config(request.config)  # raises RpcFailure when the config is refused
        response = model_management_pb2.ReloadConfigResponse()
        response.status.error_code = 0
        return response


def _require_spec(request) -> None:
    if not request.HasField("model_spec"):
        raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")


def _model_name(request) -> str:
    spec = getattr(request, "model_spec", None)
    if spec is None and getattr(request, "tasks", None):
        spec = request.tasks[0].model_spec  # MultiInference names its model per task
    return spec.name if spec is not None else ""
