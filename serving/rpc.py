"""What a failed request carries back: a gRPC status code and TF Serving's message for it."""

from __future__ import annotations

import grpc


class RpcFailure(Exception):
    """A request refused with a gRPC status code and TF Serving's message for it."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def invalid(message: str) -> RpcFailure:
    """INVALID_ARGUMENT, TF Serving's answer to most malformed requests."""
    return RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, message)


def one_line(err) -> str:
    """An exception's text on one line (TensorFlow's messages span several)."""
    return " ".join(str(err).split())
