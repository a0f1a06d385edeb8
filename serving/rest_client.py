"""The prediction client over TF Serving's REST API, for networks where only HTTP is open.

`RestPredictClient` has `PredictClient`'s interface (signatures, status, predict, batched predict)
and its errors (BadInputError exit 2, ServingError exit 4), so `kexport predict --rest URL` and
`python serving/client.py --rest URL` give the same outputs as over gRPC. Requests are columnar
JSON (`{"inputs": {...}}`, binary strings as `{"b64": ...}`); replies are read back into arrays
of the signature's dtypes. TF-free: the standard library's http.client, numpy and protobuf.
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import threading
from urllib.parse import quote, urlsplit

import numpy as np
from google.protobuf import json_format

from exporter.errors import BadInputError
from serving import tensors
from serving.client_examples import ExampleResults
from serving.client_messages import (
    DEFAULT_SIGNATURE,
    Prediction,
    VersionStatus,
    check_version_choice,
    named_inputs,
)
from serving.errors import ServingError
from serving.grpc_client import PredictClient
from serving.lossless_cast import cast_lossless
from serving.protos import get_model_metadata_pb2, status_pb2, types_pb2
from serving.signatures import Signature, signatures_from_metadata

# HTTP statuses back to the gRPC codes TF Serving mapped them from (400 covers two codes).
_CODES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
          404: "NOT_FOUND", 409: "ABORTED", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED",
          500: "INTERNAL", 501: "UNIMPLEMENTED", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
_HINTS = {"NOT_FOUND": "Check --model and --version/--label against the server's models.",
          "INVALID_ARGUMENT": "Check --signature and the input names, dtypes and shapes."}


class RestPredictClient(PredictClient):
    """A connection to a TF Serving REST endpoint (`http://HOST:8501`).

    Args:
        url: the server's base URL, `http://` or `https://`.
        timeout: seconds for the connection and for each call.
        ca_cert: PEM file of trusted roots for https (system roots when None).
    """

    def __init__(self, url: str, *, timeout: float = 10.0, tls: bool = False,
                 ca_cert: str | None = None):
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BadInputError(f"--rest expects http://HOST:PORT, got '{url}'.")
        self.target = url
        self.timeout = timeout
        self._https = parts.scheme == "https" or tls
        self._host, self._port = parts.hostname, parts.port
        self._prefix = parts.path.rstrip("/")
        self._context = _ssl_context(ca_cert) if self._https else None
        self._local = threading.local()  # http.client connections are not thread-safe
        self._signatures: dict[tuple, dict[str, Signature]] = {}
        self._versions: dict[tuple, int] = {}

    def close(self) -> None:
        """Close this thread's connection (others close with their threads)."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()

    def signatures(self, model: str, *, version: int | None = None,
                   label: str | None = None) -> dict[str, Signature]:
        """Every signature of a model version, from GET .../metadata (cached per version)."""
        key = (model, version, label)
        if key not in self._signatures:
            doc = self._call("GET", _model_path(model, version, label) + "/metadata", None,
                             f"GetModelMetadata for model '{model}'")
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            json_format.ParseDict(doc.get("model_spec", {}), response.model_spec,
                                  ignore_unknown_fields=True)
            sigmap = json_format.ParseDict(doc["metadata"]["signature_def"],
                                           get_model_metadata_pb2.SignatureDefMap(),
                                           ignore_unknown_fields=True)
            packed = response.metadata["signature_def"]
            packed.type_url = "type.googleapis.com/tensorflow.serving.SignatureDefMap"
            packed.value = sigmap.SerializeToString()
            self._signatures[key] = signatures_from_metadata(response)
            self._versions[key] = response.model_spec.version.value
        return self._signatures[key]

    def status(self, model: str, *, version: int | None = None,
               label: str | None = None) -> list[VersionStatus]:
        """The versions the server knows of a model, with their states (GET /v1/models/NAME)."""
        doc = self._call("GET", _model_path(model, version, label), None,
                         f"GetModelStatus for model '{model}'")
        return [VersionStatus(int(s["version"]), s["state"],
                              status_pb2.ErrorCode.Value(s["status"].get("error_code", "OK")),
                              s["status"].get("error_message", ""))
                for s in doc.get("model_version_status", [])]

    def predict(self, model: str, inputs, *, signature: str | None = None,
                version: int | None = None, label: str | None = None,
                output_filter: list[str] | None = None) -> Prediction:
        """POST one :predict request with columnar inputs; see `PredictClient.predict`."""
        spec = self.signature(model, signature, version=version, label=label)
        body = {"signature_name": spec.name, "inputs": {
            name: _to_json(cast_lossless(np.asarray(arr), spec.inputs[name].dtype, name),
                           spec.inputs[name].dtype)
            for name, arr in named_inputs(spec, inputs).items()}}
        doc = self._call("POST", _model_path(model, version, label) + ":predict", body,
                         f"Predict on model '{model}'")
        outputs = _outputs(doc.get("outputs"), spec)
        if output_filter:
            outputs = {name: outputs[name] for name in output_filter if name in outputs}
        served = version if version is not None else self._versions.get((model, version, label))
        return Prediction(outputs, model, served, spec.name,
                          {served} if served is not None else set())

    def _examples_call(self, kind, model, examples, context, signature, version,
                       label) -> ExampleResults:
        """Classify/Regress over REST: POST `:classify` / `:regress` with TF Serving's body."""
        body = {"examples": examples}
        if signature:
            body["signature_name"] = signature
        if context is not None:
            body["context"] = context
        doc = self._call("POST", _model_path(model, version, label) + f":{kind.lower()}", body,
                         f"{kind} on model '{model}'")
        return ExampleResults(doc.get("results", []), model, version,
                              signature or DEFAULT_SIGNATURE)

    def _call(self, method: str, path: str, body, what: str) -> dict:
        payload = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        for attempt in (1, 2):  # a kept-alive connection the server closed is retried once
            connection = self._connection()
            try:
                connection.request(method, self._prefix + path, payload, headers)
                reply = connection.getresponse()
                data = reply.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self._drop_connection()
                if attempt == 2:
                    raise ServingError(f"{what} failed: server {self.target} closed the "
                                       "connection.") from None
            except TimeoutError:
                self._drop_connection()
                raise ServingError(f"{what} failed with DEADLINE_EXCEEDED: no answer within "
                                   f"{self.timeout:g} s.", hint="Raise --timeout.") from None
            except OSError as err:
                self._drop_connection()
                raise ServingError(f"{what} failed: server {self.target} is unavailable "
                                   f"({err.strerror or err}).",
                                   hint="Is it running? Check --rest (http://HOST:PORT).") from None
        return _reply_document(reply.status, data, what)

    def _connection(self) -> http.client.HTTPConnection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            if self._https:
                connection = http.client.HTTPSConnection(self._host, self._port,
                                                         timeout=self.timeout,
                                                         context=self._context)
            else:
                connection = http.client.HTTPConnection(self._host, self._port,
                                                        timeout=self.timeout)
            self._local.connection = connection
        return connection

    def _drop_connection(self) -> None:
        self.close()
        self._local.connection = None


def _reply_document(status: int, data: bytes, what: str) -> dict:
    try:
        doc = json.loads(data) if data else {}
    except ValueError:
        doc = {"error": data.decode("utf-8", "replace")[:200]}
    if status == 200 and isinstance(doc, dict):
        return doc
    code = _CODES.get(status, f"HTTP {status}")
    details = " ".join(str(doc.get("error", doc) if isinstance(doc, dict) else doc).split())
    if details and details[-1] not in ".!?":
        details += "."
    if "signature" in details:
        hint = "Check --signature."
    elif "version label" in details:
        hint = "Check --label against the labels of the server's models.config."
    else:
        hint = _HINTS.get(code)
    raise ServingError(f"{what} failed with {code}: {details}", hint=hint)


def _model_path(model: str, version: int | None, label: str | None) -> str:
    check_version_choice(version, label)
    path = f"/v1/models/{quote(model, safe='')}"
    if version is not None:
        return f"{path}/versions/{int(version)}"
    return f"{path}/labels/{quote(label, safe='')}" if label else path


def _to_json(arr: np.ndarray, dtype: int):
    if dtype == types_pb2.DT_STRING:
        flat = [{"b64": base64.b64encode(v if isinstance(v, bytes) else str(v).encode()).decode()}
                for v in arr.ravel()]
        return np.array(flat, dtype=object).reshape(arr.shape).tolist() if arr.ndim else flat[0]
    return arr.tolist()


def _outputs(value, spec: Signature) -> dict[str, np.ndarray]:
    if value is None:
        raise ServingError("The REST reply has no 'outputs'.")
    names = sorted(spec.outputs)
    if not isinstance(value, dict) or len(names) == 1 and set(value) != set(names):
        value = {names[0]: value}  # one output comes back without its name
    return {name: _from_json(name, item, spec.outputs[name].dtype if name in spec.outputs
                             else types_pb2.DT_FLOAT) for name, item in value.items()}


def _from_json(name: str, value, dtype: int) -> np.ndarray:
    if dtype == types_pb2.DT_STRING:
        arr = np.array(value, dtype=object)
        decode = np.vectorize(lambda v: base64.b64decode(v["b64"]) if isinstance(v, dict)
                              else str(v).encode("utf-8"), otypes=[object])
        return decode(arr) if arr.size else arr
    try:
        return np.asarray(value, dtype=tensors.numpy_dtype(dtype))
    except (TypeError, ValueError):
        raise ServingError(f"The REST reply's output '{name}' is not a rectangular array of "
                           f"{tensors.dtype_name(dtype)}.") from None


def _ssl_context(ca_cert: str | None) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=ca_cert)
    except OSError as err:
        raise BadInputError(f"Cannot read --ca-cert {ca_cert}: {err.strerror}") from None
