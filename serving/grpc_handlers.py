"""The gRPC face of the local server: one generic handler per method of PredictionService and
ModelService, calling the servicer (serving/servicer.py) and answering its RpcFailure with TF
Serving's status code and message; methods the servicer does not serve answer UNIMPLEMENTED.
"""

from __future__ import annotations

import logging
import time

import grpc

from serving import memory
from serving.rpc import RpcFailure
from serving.servicer import SERVICE_METHODS, Servicer

log = logging.getLogger("kexport.serving")


def grpc_handlers(servicer: Servicer):
    """Generic gRPC handlers for every method of both services; unserved ones are UNIMPLEMENTED."""
    handlers = []
    served = servicer.methods()
    for service, names in SERVICE_METHODS.items():
        table = {name: _unary(servicer, name) if name in served else _unimplemented(name)
                 for name in names}
        handlers.append(grpc.method_handlers_generic_handler(service, table))
    return tuple(handlers)


def _unary(servicer: Servicer, name: str):
    method = servicer.methods()[name]

    def behaviour(request, context):
        started = time.perf_counter()
        try:
            response = servicer.call(name, request, wire=True)
        except RpcFailure as failure:
            _log_request(name, request, started, failure.code.name)
            context.abort(failure.code, failure.message)
        except Exception as err:  # a bug or a TF crash: answer INTERNAL, keep serving
            log.exception("%s failed", name)
            context.abort(grpc.StatusCode.INTERNAL, f"{type(err).__name__}: {err}")
        _log_request(name, request, started, "OK")
        memory.release_after(request.ByteSize())
        return response

    return grpc.unary_unary_rpc_method_handler(
        behaviour, request_deserializer=method.request_type.FromString,
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
    if not log.isEnabledFor(logging.DEBUG) or not hasattr(request, "model_spec"):
        return
    spec = request.model_spec
    which = spec.WhichOneof("version_choice")
    version = {"version": lambda: spec.version.value, "version_label": lambda: spec.version_label,
               None: lambda: "latest"}[which]()
    log.debug("%s model=%s version=%s signature=%s %.1f ms %s", method, spec.name, version,
              spec.signature_name or "-", (time.perf_counter() - started) * 1e3, outcome)
