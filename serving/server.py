"""A local server that speaks TF Serving's gRPC and REST APIs over a model repository or bundle.

PredictionService and ModelService are served with TF Serving's status codes and messages (see
serving/servicer.py, which both front ends call, and serving/grpc_handlers.py, the gRPC one);
the REST API (serving/rest.py), Prometheus metrics, a UNIX-socket gRPC listener and config
reloads follow the flags TF Serving has for them.
It is a stand-in for development and CI on machines without a container engine; production is
the tensorflow/serving container.

    running = start_server("bundle/", port=0, rest_port=0)   # returns once the models are loaded
    print(running.port, running.rest_port); ...; running.stop()

`serve()` does the same and blocks until SIGTERM or Ctrl-C. Settings are `ServeOptions` fields
(serving/options.py), passed as an `options=` object or as keywords.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import grpc

from exporter.errors import BadInputError
from serving.errors import ServingError
from serving.grpc_handlers import grpc_handlers
from serving.manager import ModelManager
from serving.options import ServeOptions
from serving.reload import ConfigWatcher, config_reloader
from serving.servable import LoadOptions
from serving.servicer import SERVICE_METHODS, Servicer
from serving.version_folders import config_file, load_repository

log = logging.getLogger("kexport.serving")

SERVER_OPTIONS = [
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
    # Without this, a second server could silently share a busy port on Linux.
    ("grpc.so_reuseport", 0),
]
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass
class RunningServer:
    """A started server: where it listens, and how to stop it."""

    server: grpc.Server
    manager: ModelManager
    health: object
    host: str
    port: int
    servicer: Servicer | None = None
    rest: object = None
    watcher: ConfigWatcher | None = None
    socket_path: str | None = None

    @property
    def address(self) -> str:
        """HOST:PORT gRPC clients connect to."""
        return _host_port(self.host, self.port)

    @property
    def rest_port(self) -> int | None:
        """The REST API's port, None without one."""
        return self.rest.port if self.rest is not None else None

    @property
    def rest_url(self) -> str | None:
        """http://HOST:PORT of the REST API, None without one."""
        return f"http://{_host_port(self.host, self.rest.port)}" if self.rest is not None else None

    def stop(self, grace: float | None = 2.0) -> None:
        """Stop accepting requests, let running ones finish for `grace` seconds, unload models."""
        self.health.enter_graceful_shutdown()
        if self.rest is not None:
            self.rest.stop()
        self.server.stop(grace).wait()
        if self.watcher is not None:
            self.watcher.stop()
        self.manager.stop()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server stops; False on timeout."""
        return self.server.wait_for_termination(timeout)


def start_server(path: str | Path | None = None, *, options: ServeOptions | None = None,
                 **settings) -> RunningServer:
    """Load the models under PATH and start serving them; return once they are loaded.

    Args:
        path: a bundle (with models.config), a models.config file, or a model base path;
            overrides `options.path`.
        options: how to serve (`ServeOptions`); defaults for anything not given.
        **settings: `ServeOptions` fields to override, e.g. `port=0, rest_port=0`.

    Raises:
        BadInputError: nothing to serve, or PATH or its models.config is invalid.
        ServingError: an address cannot be bound.
    """
    options = replace(options or ServeOptions(), **settings)
    if path is not None:
        options = replace(options, path=Path(path))
    if options.path is None:
        raise BadInputError("Nothing to serve.", hint="Pass a bundle or base path, "
                            "--model_base_path or --model_config_file.")
    manager = ModelManager(load_repository(options.path, options.model_name),
                           options=load_options(options),
                           labels_for_unavailable=options.labels_for_unavailable)
    manager.refresh()
    source = config_file(options.path)
    metrics = None
    if options.prometheus_path:
        from serving.metrics import ServingMetrics

        metrics = ServingMetrics()
    servicer = Servicer(manager, tensor_content=options.tensor_content, metrics=metrics,
                        reload_config=config_reloader(manager, source[1] if source else None))
    try:
        running = _start_listeners(options, manager, servicer, metrics)
    except BaseException:
        manager.stop()
        raise
    if source is not None:
        running.watcher = ConfigWatcher(manager, source[0], source[1], options.config_poll_seconds)
        running.watcher.start()
    manager.start_polling(options.poll_seconds)
    _log_started(running, options)
    return running


def load_options(options: ServeOptions) -> LoadOptions:
    """How versions load and run, from the serve options: warm-up, TFLite, batching (a bundle
    built with `kexport bundle --batching` batches as its container would), method checks."""
    from serving.batching_config import batching_config

    return LoadOptions(warmup=options.warmup, prefer_tflite=options.prefer_tflite_model,
                       batching=batching_config(options.batching, options.path),
                       per_model_batching=getattr(options.batching, "per_model", False),
                       method_name_check=options.signature_method_check)


def _start_listeners(options: ServeOptions, manager: ModelManager, servicer: Servicer,
                     metrics) -> RunningServer:
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    server = grpc.server(
        ThreadPoolExecutor(max_workers=options.max_workers, thread_name_prefix="kexport"),
        options=SERVER_OPTIONS + list(options.channel_arguments))
    server.add_generic_rpc_handlers(grpc_handlers(servicer))
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    bound = _bind(server, _host_port(options.host, options.port), options.credentials)
    if options.grpc_socket_path:
        # gRPC replaces a stale socket file; TF Serving's tests start servers on one fixed path.
        _bind(server, f"unix:{options.grpc_socket_path}", options.credentials)
    rest = None
    if options.rest_port is not None:
        rest = _rest_server(servicer, options, metrics)
    server.start()
    if rest is not None:
        rest.start()
    for service in ("", *SERVICE_METHODS):
        health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    return RunningServer(server, manager, health_servicer, options.host, bound, servicer, rest,
                         socket_path=options.grpc_socket_path)


def _bind(server: grpc.Server, address: str, credentials) -> int:
    try:
        if credentials is None:
            bound = server.add_insecure_port(address)
        else:
            bound = server.add_secure_port(address, credentials)
    except RuntimeError:
        bound = 0
    if not bound:
        if address.startswith("unix:"):
            raise ServingError(f"Cannot listen on {address}.",
                               hint="Check that --grpc_socket_path is in a writable folder.")
        raise ServingError(f"Cannot listen on {address}: the port is in use or the address is "
                           "not on this machine.", hint="Pick another --port, or --port 0.")
    return bound


def _rest_server(servicer: Servicer, options: ServeOptions, metrics):
    from serving.rest import RestServer

    try:
        return RestServer(servicer, options.host, options.rest_port,
                          timeout_ms=options.rest_timeout_ms, cors=options.rest_cors,
                          metrics=(metrics, options.prometheus_path) if metrics else None)
    except OSError as err:
        raise ServingError(f"Cannot listen on {_host_port(options.host, options.rest_port)} for "
                           f"the REST API: {err.strerror}.",
                           hint="Pick another --rest_api_port, or 0.") from None


def _log_started(running: RunningServer, options: ServeOptions) -> None:
    scope = ("this machine only" if running.host in LOOPBACK
             else "the network: anyone who can reach it may call it")
    log.info("serving on %s (%s, %s)", running.address,
             "TLS" if options.credentials else "plain text", scope)
    if running.socket_path:
        log.info("gRPC also on unix:%s", running.socket_path)
    if running.rest is not None:
        log.info("REST API on %s", running.rest_url)
        if options.prometheus_path:
            log.info("Prometheus metrics at %s%s", running.rest_url, options.prometheus_path)
    for name, versions in running.manager.available().items():
        log.info("model %s: versions %s", name, versions or "none loaded")


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def serve(path: str | Path | None = None, *, options: ServeOptions | None = None, on_ready=None,
          **settings) -> None:
    """Serve until SIGTERM or Ctrl-C, then stop cleanly; "serving on HOST:PORT" goes to stderr.

    Arguments are those of `start_server`; `on_ready(running)` is called once serving (e.g. to
    print the bound ports as JSON). Logging goes to stderr through the `kexport.serving` logger,
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
    running = start_server(path, options=options, **settings)
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
