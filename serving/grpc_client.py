"""The gRPC client of TF Serving's PredictionService and ModelService, without TensorFlow.

`PredictClient`: signatures, status, predict, batched predict, and (from
`serving.client_examples`) classify and regress. Its REST twin is
`serving.rest_client.RestPredictClient`; the public face is `serving.client`.

The messages come from the project's own protobuf definitions (`serving/protos`, package
`kexport.tfs`), wire-compatible with TF Serving's, and methods are called by path, so neither
`tensorflow` nor `tensorflow_serving` is imported, and the client also works in a process where
TensorFlow is loaded.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import TYPE_CHECKING

import grpc
import numpy as np

from exporter.errors import BadInputError, did_you_mean
from serving import tensors
from serving.client_examples import ExampleMethods
from serving.client_messages import (
    DEFAULT_SIGNATURE,
    Prediction,
    VersionStatus,
    fill_model_spec,
    join_predictions,
    named_inputs,
    split_batches,
)
from serving.errors import ServingError
from serving.lossless_cast import cast_lossless
from serving.protos import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    predict_pb2,
    regression_pb2,
    types_pb2,
)
from serving.signatures import Signature, signatures_from_metadata

if TYPE_CHECKING:
    from typing_extensions import Self

PREDICT = "/tensorflow.serving.PredictionService/Predict"
GET_MODEL_METADATA = "/tensorflow.serving.PredictionService/GetModelMetadata"
GET_MODEL_STATUS = "/tensorflow.serving.ModelService/GetModelStatus"
CLASSIFY = "/tensorflow.serving.PredictionService/Classify"
REGRESS = "/tensorflow.serving.PredictionService/Regress"
# gRPC refuses messages over 4 MiB by default, the most common client failure with images.
CHANNEL_OPTIONS = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]

_HINTS = {
    grpc.StatusCode.NOT_FOUND: "Check --model and --version/--label against the server's models.",
    grpc.StatusCode.FAILED_PRECONDITION: "Check --signature.",
    grpc.StatusCode.INVALID_ARGUMENT: "Check the input names, dtypes and shapes.",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "The message may exceed the server's size limit; "
                                        "lower --batch-size.",
    grpc.StatusCode.DEADLINE_EXCEEDED: "Raise --timeout or lower --batch-size.",
}


class PredictClient(ExampleMethods):
    """A connection to a TF Serving-compatible gRPC endpoint.

    Args:
        target: HOST:PORT of the server.
        timeout: seconds to wait for the connection and for each call.
        tls: use TLS; `ca_cert` is a PEM file of trusted roots (system roots when None).
        ca_cert: path of the PEM file.

    Example:
        >>> with PredictClient("127.0.0.1:8500") as client:
        ...     client.predict("half_plus_two", np.array([[1.0], [2.0]]))
    """

    def __init__(self, target: str, *, timeout: float = 10.0, tls: bool = False,
                 ca_cert: str | None = None):
        self.target = target
        self.timeout = timeout
        if tls or ca_cert:
            self._channel = grpc.secure_channel(target, _credentials(ca_cert), CHANNEL_OPTIONS)
        else:
            self._channel = grpc.insecure_channel(target, CHANNEL_OPTIONS)
        self._connected = False
        self._signatures: dict[tuple, dict[str, Signature]] = {}
        self._predict = self._method(PREDICT, predict_pb2.PredictResponse)
        self._metadata = self._method(GET_MODEL_METADATA, get_model_metadata_pb2.GetModelMetadataResponse)
        self._status = self._method(GET_MODEL_STATUS, get_model_status_pb2.GetModelStatusResponse)
        self._classify = self._method(CLASSIFY, classification_pb2.ClassificationResponse)
        self._regress = self._method(REGRESS, regression_pb2.RegressionResponse)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()

    def signatures(self, model: str, *, version: int | None = None,
                   label: str | None = None) -> dict[str, Signature]:
        """Every signature of a model version, from GetModelMetadata (cached per version)."""
        key = (model, version, label)
        if key not in self._signatures:
            request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
            fill_model_spec(request.model_spec, model, None, version, label)
            response = self._call(self._metadata, request, f"GetModelMetadata for model '{model}'")
            self._signatures[key] = signatures_from_metadata(response)
        return self._signatures[key]

    def signature(self, model: str, signature: str | None = None, *, version: int | None = None,
                  label: str | None = None) -> Signature:
        """One signature (`serving_default` by default).

        Raises:
            ServingError: the server has no such signature (as TF Serving's FAILED_PRECONDITION).
        """
        name = signature or DEFAULT_SIGNATURE
        found = self.signatures(model, version=version, label=label)
        if name not in found:
            # The server would answer FAILED_PRECONDITION; say so, and list what exists.
            raise ServingError(f"Model '{model}' has no signature \"{name}\" (FAILED_PRECONDITION: "
                               f'Serving signature key "{name}" not found.).',
                               hint=f"Its signatures: {', '.join(sorted(found)) or 'none'}."
                               f"{did_you_mean(name, found)}")
        return found[name]

    def status(self, model: str, *, version: int | None = None,
               label: str | None = None) -> list[VersionStatus]:
        """The versions the server knows of a model, with their states (GetModelStatus)."""
        request = get_model_status_pb2.GetModelStatusRequest()
        fill_model_spec(request.model_spec, model, None, version, label)
        response = self._call(self._status, request, f"GetModelStatus for model '{model}'")
        state = get_model_status_pb2.ModelVersionStatus.State
        return [VersionStatus(s.version, state.Name(s.state), s.status.error_code,
                              s.status.error_message) for s in response.model_version_status]

    def predict(self, model: str, inputs, *, signature: str | None = None,
                version: int | None = None, label: str | None = None,
                output_filter: list[str] | None = None) -> Prediction:
        """Send one Predict request.

        Inputs are checked against the signature (names; dtypes cast when no value changes) and
        sent as `tensor_content`. `model_spec.version` stays unset unless `version` or `label`.

        Args:
            model: model name.
            inputs: input name -> array, or one array for a single-input signature.
            signature: signature name (`serving_default` by default).
            version: a specific version; `label` a version label (not both).
            output_filter: output names to fetch (all by default).

        Raises:
            BadInputError: inputs that do not fit the signature (exit 2).
            ServingError: any gRPC failure (exit 4).
        """
        spec = self.signature(model, signature, version=version, label=label)
        request = predict_pb2.PredictRequest(output_filter=output_filter or [])
        fill_model_spec(request.model_spec, model, signature, version, label)
        wire_inputs = []
        for name, arr in named_inputs(spec, inputs).items():
            dtype = spec.inputs[name].dtype
            arr = cast_lossless(arr, dtype, name)
            chunks = None if dtype == types_pb2.DT_STRING else tensors.tensor_wire(
                np.asarray(arr).astype(tensors.numpy_dtype(dtype), copy=False))
            if chunks is None:
                tensors.to_tensor_proto(arr, dtype, out=request.inputs[name])
            else:  # numeric tensors go straight from the array into the request bytes
                wire_inputs += tensors.map_entry_wire(2, name, chunks)
        if wire_inputs:
            request = b"".join([request.SerializeToString(), *wire_inputs])
        response = self._call(self._predict, request, f"Predict on model '{model}'")
        outputs = {name: tensors.to_ndarray(proto) for name, proto in response.outputs.items()}
        served = response.model_spec.version.value if response.model_spec.HasField("version") else None
        return Prediction(outputs, model, served, spec.name, {served} if served is not None else set())

    def predict_batched(self, model: str, inputs: dict[str, np.ndarray], *, batch_size: int = 32,
                        concurrency: int = 4, progress=None, **options) -> Prediction:
        """Split inputs into batches along axis 0, send them concurrently, join the outputs.

        Args:
            model: model name.
            inputs: input name -> array with the examples along the first axis.
            batch_size: examples per request.
            concurrency: requests in flight at once.
            progress: called as progress(done, total) after each batch.
            **options: signature, version, label, output_filter, as for `predict`.
        """
        self.signature(model, options.get("signature"), version=options.get("version"),
                       label=options.get("label"))  # one metadata call before the threads start
        chunks = split_batches(inputs, batch_size)
        results: list[Prediction | None] = [None] * len(chunks)
        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            futures = {pool.submit(self.predict, model, chunk, **options): i
                       for i, chunk in enumerate(chunks)}
            try:
                for done, future in enumerate(as_completed(futures), start=1):
                    results[futures[future]] = future.result()
                    if progress:
                        progress(done, len(chunks))
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
        return join_predictions(results)

    def _method(self, path: str, response_type):
        return self._channel.unary_unary(path, request_serializer=_serialize,
                                         response_deserializer=response_type.FromString)

    def _call(self, method, request, what: str):
        # Until the server has answered once, wait for the connection (a server still starting
        # is fine) up to the deadline; afterwards fail fast if it goes away. This replaces
        # grpc.channel_ready_future, whose polling thread makes close() take 0.2 s.
        connected = self._connected
        try:
            response = method(request, timeout=self.timeout, wait_for_ready=not connected)
        except grpc.RpcError as err:
            code = err.code()
            if code not in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE):
                self._connected = True
            if code == grpc.StatusCode.DEADLINE_EXCEEDED and not connected:
                raise ServingError(f"Cannot reach a server at {self.target} within "
                                   f"{self.timeout:g} s.", hint="Is it running? Check --target "
                                   "(HOST:PORT), and --tls if it uses TLS.") from None
            raise _rpc_failure(err, what, self) from None
        self._connected = True
        return response


def _serialize(message) -> bytes:
    # Predict requests with numeric inputs arrive already serialized (see `predict`).
    return message if isinstance(message, bytes) else message.SerializeToString()


def _credentials(ca_cert: str | None) -> grpc.ChannelCredentials:
    roots = None
    if ca_cert:
        try:
            with open(ca_cert, "rb") as handle:
                roots = handle.read()
        except OSError as err:
            raise BadInputError(f"Cannot read --ca-cert {ca_cert}: {err.strerror}") from None
    return grpc.ssl_channel_credentials(root_certificates=roots)


def _rpc_failure(err: grpc.RpcError, what: str, client: PredictClient) -> ServingError:
    code = err.code()
    details = " ".join((err.details() or "").split())
    if code == grpc.StatusCode.UNAVAILABLE:
        return ServingError(f"{what} failed: server {client.target} is unavailable ({details}).",
                            hint="Is it running? Check --target.")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        details = f"no answer within {client.timeout:g} s"
    hint = _HINTS.get(code)
    if "version label" in details:
        hint = "Check --label against the labels of the server's models.config."
    if details and details[-1] not in ".!?":
        details += "."
    return ServingError(f"{what} failed with {code.name}: {details}", hint=hint)
