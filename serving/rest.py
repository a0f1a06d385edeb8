"""TF Serving's REST API (port 8501 in the container) over the same Servicer as gRPC.

Routes, bodies, status codes and error JSON are TF Serving's (http_rest_api_handler, its REST API
docs): `GET /v1/models/NAME[/versions/N | /labels/L][/metadata]`, `POST ...:predict`,
`:classify`, `:regress`; errors are `{"error": "<message>"}` with the HTTP status mapped from the
gRPC code; other `/v1/` paths are "Malformed request"; Prometheus metrics at the path the
monitoring config names.

The server is the standard library's ThreadingHTTPServer: a thread per connection with HTTP/1.1
keep-alive is what a local stand-in needs (a few clients, small JSON bodies; the model call
dominates), and it adds no dependency or event loop next to gRPC's own thread pool.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

import grpc
from google.protobuf import json_format

from serving import rest_examples, rest_json, rest_json_reply, tensors
from serving.protos import get_model_metadata_pb2, get_model_status_pb2, predict_pb2
from serving.rpc import RpcFailure

log = logging.getLogger("kexport.serving")

_POST = re.compile(r"/v1/models/([^/:]+)(?:/versions/(\d+)|/labels/([^/:]+))?:"
                   r"(classify|regress|predict)", re.IGNORECASE)
_GET = re.compile(r"/v1/models(?:/([^/:]+))?(?:/versions/(\d+)|/labels/([^/:]+))?(?:/(metadata))?",
                  re.IGNORECASE)
# TF Serving's mapping of status codes to HTTP (http_server.cc).
HTTP_STATUS = {
    "OK": 200, "CANCELLED": 499, "UNKNOWN": 500, "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504, "NOT_FOUND": 404, "ALREADY_EXISTS": 409, "PERMISSION_DENIED": 403,
    "RESOURCE_EXHAUSTED": 429, "FAILED_PRECONDITION": 400, "ABORTED": 409, "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501, "INTERNAL": 500, "UNAVAILABLE": 503, "DATA_LOSS": 500,
    "UNAUTHENTICATED": 401,
}
_JSON_OPTIONS = {"preserving_proto_field_name": True, "always_print_fields_with_no_presence": True}


class RestServer:
    """The REST API on HOST:PORT in a background thread.

    Args:
        servicer: the `serving.servicer.Servicer` the gRPC server uses.
        host, port: where to listen; port 0 picks a free one (see `port`).
        timeout_ms: how long a connection may stay idle (--rest_api_timeout_in_ms).
        cors: add TF Serving's CORS headers (--rest_api_enable_cors_support).
        metrics: a `ServingMetrics` and the path to serve it at, or None.
    """

    def __init__(self, servicer, host: str, port: int, *, timeout_ms: int = 30000,
                 cors: bool = False, metrics: tuple | None = None):
        handler = type("Handler", (_Handler,), {
            "servicer": servicer, "timeout": max(timeout_ms, 1) / 1000, "cors": cors,
            "metrics": metrics})
        server_type = _IPv6Server if ":" in host else _Server
        self.httpd = server_type((host, port), handler)
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="kexport-rest",
                                        daemon=True)

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting connections and close the socket."""
        self.httpd.shutdown()
        self.httpd.server_close()


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # the listen backlog: many clients may connect at once


class _IPv6Server(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a client's second request skips the handshake
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall
    server_version = "kexport-serve"
    servicer = None
    metrics = None
    cors = False

    # do_<METHOD> and log_message are the names and signature http.server calls.
    def do_GET(self):
        self._answer("GET")

    def do_POST(self):
        self._answer("POST")

    def do_PUT(self):
        self._answer("PUT")

    def do_DELETE(self):
        self._answer("DELETE")

    def do_OPTIONS(self):
        if self.cors:  # a browser's preflight before a cross-origin JSON POST
            self._read_body()
            self._reply(204, b"")
        else:
            self._answer("OPTIONS")

    def log_message(self, format, *args):
        log.debug("REST %s", format % args)

    def _answer(self, method: str) -> None:
        body = self._read_body()
        path = self.path.split("?", 1)[0]
        if self.metrics is not None and method == "GET" and path == self.metrics[1]:
            self._reply(200, self.metrics[0].render(), "text/plain; version=0.0.4")
            return
        if not path.lower().startswith("/v1/"):
            self._reply(404, rest_json_reply.error_body(f"Not found: {method} {path}"))
            return
        try:
            reply = route(self.servicer, method, path, body)
        except RpcFailure as failure:
            self._reply(HTTP_STATUS.get(failure.code.name, 500),
                        rest_json_reply.error_body(failure.message))
            return
        except Exception as err:  # a bug or a TF crash: answer 500, keep serving
            log.exception("REST %s %s failed", method, path)
            self._reply(500, rest_json_reply.error_body(f"{type(err).__name__}: {err}"))
            return
        self._reply(200, reply)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if self.cors:
            self.send_header("Access-Control-Allow-Origin", "*")
            self.send_header("Access-Control-Allow-Methods", "POST, GET")
            self.send_header("Access-Control-Allow-Headers", "Content-Type")
        self.end_headers()
        self.wfile.write(body)


def route(servicer, method: str, path: str, body: bytes) -> bytes:
    """Answer one REST request through the servicer; raise RpcFailure for TF Serving's errors."""
    post = _POST.fullmatch(path) if method == "POST" else None
    get = _GET.fullmatch(path) if method == "GET" else None
    if post is None and get is None:
        raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, f"Malformed request: {method} {path}")
    if post is not None:
        name, version, label, verb = post.groups()
        spec = _model_spec(name, version, label)
        doc = rest_json.parse_body(body)
        if verb.lower() == "predict":
            return _predict(servicer, spec, doc)
        return _classify_or_regress(servicer, "Classify" if verb.lower() == "classify" else
                                    "Regress", spec, doc)
    name, version, label, metadata = get.groups()
    if not name:
        raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, "Missing model name in request.")
    spec = _model_spec(name, version, label)
    if metadata:
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        request.model_spec.CopyFrom(spec)
        return _metadata_json(servicer.call("GetModelMetadata", request, "REST"))
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.CopyFrom(spec)
    response = servicer.call("GetModelStatus", request, "REST")
    return json_format.MessageToJson(response, indent=2, **_JSON_OPTIONS).encode()


def _model_spec(name: str, version: str | None, label: str | None):
    spec = predict_pb2.PredictRequest().model_spec
    spec.name = unquote(name)
    if version is not None:
        spec.version.value = int(version)
    elif label is not None:
        spec.version_label = unquote(label)
    return spec


def _predict(servicer, spec, doc: dict) -> bytes:
    request = predict_pb2.PredictRequest()
    request.model_spec.CopyFrom(spec)
    request.model_spec.signature_name = rest_json.signature_name(doc)
    request_format = rest_json.fill_predict_inputs(
        doc, servicer.signature_inputs(request.model_spec), request)
    response = servicer.call("Predict", request, "REST")
    outputs = {alias: tensors.to_ndarray(proto) for alias, proto in response.outputs.items()}
    return rest_json_reply.predict_reply(outputs, request_format)


def _classify_or_regress(servicer, method_name: str, spec, doc: dict) -> bytes:
    method = servicer.methods().get(method_name)
    if method is None:
        raise RpcFailure(grpc.StatusCode.UNIMPLEMENTED, f"{method_name} is not implemented by "
                         "kexport serve, the local stand-in for TF Serving.")
    request = method.request_type()
    request.model_spec.ParseFromString(spec.SerializeToString())  # its own ModelSpec class
    request.model_spec.signature_name = rest_json.signature_name(doc)
    rest_examples.examples_from_json(doc, request.input)
    response = servicer.call(method_name, request, "REST")
    if method_name == "Classify":
        return rest_examples.classify_reply(response.result)
    return rest_examples.regress_reply(response.result)


def _metadata_json(response) -> bytes:
    sigmap = get_model_metadata_pb2.SignatureDefMap.FromString(
        response.metadata["signature_def"].value)
    document = {
        "model_spec": json_format.MessageToDict(response.model_spec, **_JSON_OPTIONS),
        "metadata": {"signature_def": json_format.MessageToDict(sigmap, **_JSON_OPTIONS)},
    }
    return json.dumps(document, indent=2).encode()
