"""Everything `kexport serve` was asked to do, as one options object, and TF Serving's config files.

`ServeOptions` is what `start_server` reads; the CLI fills it from kexport's options and TF
Serving's flags (serving/tfs_flags.py). Config files named by flags are read here, before any
model loads, so a bad file fails start-up in a fraction of a second: the monitoring config
(`MonitoringConfig`), the SSL config (`SSLConfig`) and the batching parameters
(`BatchingParameters`), all text protos as TF Serving reads them. No TensorFlow here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from exporter.errors import BadInputError

DEFAULT_PROMETHEUS_PATH = "/monitoring/prometheus/metrics"


@dataclass
class BatchingOptions:
    """TF Serving's --enable_batching and --batching_parameters_file, parsed.

    Attributes:
        enabled: --enable_batching.
        parameters: the BatchingParameters text proto (`serving.protos.server_config_pb2`);
            None when no file was given (TF Serving's defaults apply).
        parameters_file: where `parameters` came from.
        per_model: --enable_per_model_batching_parameters (a `batching_params.pbtxt` per version).
    """

    enabled: bool = False
    parameters: object = None
    parameters_file: Path | None = None
    per_model: bool = False


@dataclass
class ServeOptions:
    """How to serve: models, listeners, and behaviour switches.

    Attributes:
        path: a bundle, a models.config file, or a model base path (`--model_base_path`).
        model_name: the model's name when `path` is a base path.
        config_poll_seconds: re-read the models.config every this many seconds; 0 reads it once
            (--model_config_file_poll_wait_seconds).
        poll_seconds: look for new and removed versions this often; 0 never after start-up
            (--file_system_poll_wait_seconds).
        host: interface of the TCP listeners; loopback unless asked.
        port: gRPC port; 0 picks a free one.
        grpc_socket_path: also listen for gRPC on this UNIX socket.
        rest_port: REST API port; None serves no REST API, 0 picks a free port.
        rest_timeout_ms: seconds a REST connection may stay idle, in ms (--rest_api_timeout_in_ms).
        rest_cors: add CORS headers to REST replies.
        prometheus_path: serve Prometheus metrics at this REST path; None serves none.
        tensor_content: reply with tensor_content bytes instead of typed fields.
        max_workers: gRPC requests handled at once.
        warmup: replay assets.extra warm-up records at load.
        credentials: grpc.ServerCredentials for TLS; plain text when None.
        channel_arguments: extra gRPC server options (--grpc_channel_arguments).
        batching: server-side batching settings.
        prefer_tflite_model: serve `model.tflite` of a version when it has one.
        signature_method_check: check SignatureDef method names for Classify/Regress.
        tuning_flags: TF Serving flags accepted without effect, for the record.
    """

    path: Path | None = None
    model_name: str = "default"
    config_poll_seconds: float = 0.0
    poll_seconds: float = 1.0
    host: str = "127.0.0.1"
    port: int = 8500
    grpc_socket_path: str | None = None
    rest_port: int | None = None
    rest_timeout_ms: int = 30000
    rest_cors: bool = False
    prometheus_path: str | None = None
    tensor_content: bool = False
    max_workers: int = 16
    warmup: bool = True
    credentials: object = None
    channel_arguments: list = field(default_factory=list)
    batching: BatchingOptions = field(default_factory=BatchingOptions)
    prefer_tflite_model: bool = False
    signature_method_check: bool = True
    tuning_flags: tuple[str, ...] = ()


def serve_options(path: Path | None, *, model_base_path: Path | None = None,
                  model_config_file: Path | None = None, ssl_config_file: Path | None = None,
                  tls_cert: Path | None = None, tls_key: Path | None = None,
                  monitoring_config_file: Path | None = None, enable_batching: bool = False,
                  batching_parameters_file: Path | None = None, per_model_batching: bool = False,
                  grpc_channel_arguments: str = "", **fields) -> ServeOptions:
    """ServeOptions from the command line: where the models are, and the config files read.

    PATH (kexport's), --model_base_path and --model_config_file name what to serve; the config
    file wins as in TF Serving, and naming two places at once is refused.

    Raises:
        BadInputError: nothing or two things to serve, unreadable or invalid config files.
    """
    from serving.server import tls_credentials
    from serving.tfs_flags import parse_channel_arguments

    given = [p for p in (path, model_base_path, model_config_file) if p is not None]
    if not given:
        raise BadInputError("Both --model_base_path and --model_config_file are empty, and no "
                            "PATH was given.", hint="Pass a bundle or base path to serve.")
    if len(given) > 1:
        raise BadInputError("Pass one of PATH, --model_base_path and --model_config_file.")
    if ssl_config_file is not None and (tls_cert or tls_key):
        raise BadInputError("--ssl_config_file and --tls-cert/--tls-key exclude each other.")
    credentials = ssl_credentials(ssl_config_file) or tls_credentials(tls_cert, tls_key)
    return ServeOptions(
        path=given[0], credentials=credentials,
        prometheus_path=prometheus_path(monitoring_config_file),
        batching=batching_options(enable_batching, batching_parameters_file, per_model_batching),
        channel_arguments=parse_channel_arguments(grpc_channel_arguments), **fields)


def read_text_proto(path: str | Path, message, what: str):
    """Parse a text-format proto file into `message` (returned).

    Raises:
        BadInputError: the file cannot be read or parsed; the message names the proto type as
            TF Serving's start-up error does.
    """
    from google.protobuf import text_format

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise BadInputError(f"cannot read {what} {path}: {err.strerror}.") from None
    try:
        text_format.Parse(text, message)
    except (text_format.ParseError, UnicodeDecodeError) as err:
        # TF Serving's own words, which scripts grep for (its type lives in tensorflow.serving).
        name = message.DESCRIPTOR.full_name.replace("kexport.tfs", "tensorflow.serving")
        raise BadInputError(f"Error parsing text-format {name} {path}: {err}") from None
    return message


def prometheus_path(monitoring_config_file: str | Path | None) -> str | None:
    """The metrics path a --monitoring_config_file enables, or None when it enables none."""
    if not monitoring_config_file:
        return None
    from serving.protos import server_config_pb2

    config = read_text_proto(monitoring_config_file, server_config_pb2.MonitoringConfig(),
                             "--monitoring_config_file")
    if not config.prometheus_config.enable:
        return None
    path = config.prometheus_config.path or DEFAULT_PROMETHEUS_PATH
    if not path.startswith("/"):
        raise BadInputError(f"{monitoring_config_file}: prometheus_config.path '{path}' must "
                            "start with '/'.")
    return path


def batching_options(enabled: bool, parameters_file: str | Path | None,
                     per_model: bool = False) -> BatchingOptions:
    """Read --batching_parameters_file (when given) into BatchingOptions."""
    if not parameters_file:
        return BatchingOptions(enabled, None, None, per_model)
    from serving.protos import server_config_pb2

    parameters = read_text_proto(parameters_file, server_config_pb2.BatchingParameters(),
                                 "--batching_parameters_file")
    return BatchingOptions(enabled, parameters, Path(parameters_file), per_model)


def ssl_credentials(ssl_config_file: str | Path | None):
    """grpc.ServerCredentials from TF Serving's SSLConfig (PEM text inline), or None."""
    if not ssl_config_file:
        return None
    import grpc

    from serving.protos import server_config_pb2

    config = read_text_proto(ssl_config_file, server_config_pb2.SSLConfig(), "--ssl_config_file")
    if not config.server_key or not config.server_cert:
        raise BadInputError(f"{ssl_config_file}: an SSLConfig needs server_key and server_cert.")
    return grpc.ssl_server_credentials(
        [(config.server_key.encode(), config.server_cert.encode())],
        root_certificates=config.custom_ca.encode() or None,
        require_client_auth=config.client_verify)
