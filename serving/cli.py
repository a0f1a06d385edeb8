"""The `kexport predict` and `kexport serve` commands: declare options, call the library, render.

`register(app)` adds both to the kexport Typer app. Heavy modules (grpc, numpy, TensorFlow) are
imported inside the commands so `kexport --help` stays fast. Failures are raised as KexportError
subclasses; the CLI edge prints them as one line with their exit code.
"""

from __future__ import annotations

import functools
import json
import sys
import traceback
from pathlib import Path
from typing import Annotated

import typer

PREPROCESS_HELP = "Image preprocessing, as keras.applications preprocess_input: none, tf, caffe, torch."


def register(app: typer.Typer, wrap=None) -> None:
    """Add the `predict` and `serve` commands to a Typer app.

    Args:
        app: the kexport Typer app.
        wrap: the app's error edge, a decorator that renders KexportError as one line and exits
            with its code (it sees the commands' `json_output` and `debug` keyword arguments).
            Without one, `render_errors` does that job.
    """
    wrap = wrap or render_errors
    app.command("predict")(wrap(predict))
    app.command("serve")(wrap(serve))


def render_errors(command):
    """Run a command; print a KexportError as `error: <message>` and exit with its code."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from exporter.errors import KexportError

        try:
            return command(*args, **kwargs)
        except KexportError as error:
            if kwargs.get("debug"):
                traceback.print_exc()
            typer.echo(f"error: {error}", err=True)
            if kwargs.get("json_output"):
                typer.echo(json.dumps({"ok": False, "exit_code": error.exit_code,
                                       "error": str(error)}))
            raise typer.Exit(error.exit_code) from None
        except KeyboardInterrupt:
            typer.echo("kexport: interrupted", err=True)
            raise typer.Exit(130) from None

    return wrapper


def predict(
    model: Annotated[str, typer.Option(help="Model name.", show_default=False)],
    files: Annotated[list[str] | None, typer.Argument(
        metavar="[FILE]...", help="Inputs: .npy, .npz, .json or images (PNG/JPEG); many files "
        "are batched.", show_default=False)] = None,
    target: Annotated[str, typer.Option(help="Server HOST:PORT.")] = "localhost:8500",
    signature: Annotated[str | None, typer.Option(help="Signature (serving_default).")] = None,
    version: Annotated[int | None, typer.Option(help="Model version (default: latest).")] = None,
    label: Annotated[str | None, typer.Option(help="Model version label, e.g. stable.")] = None,
    inputs: Annotated[list[str] | None, typer.Option(
        "--input", metavar="NAME=FILE", help="A file for one named input (repeatable).")] = None,
    batch_size: Annotated[int, typer.Option(help="Examples per request.")] = 32,
    concurrency: Annotated[int, typer.Option(help="Requests in flight at once.")] = 4,
    timeout: Annotated[float, typer.Option(help="Seconds to connect and per request.")] = 10.0,
    tls: Annotated[bool, typer.Option(help="Connect with TLS.")] = False,
    ca_cert: Annotated[Path | None, typer.Option(help="PEM file of trusted roots for TLS.")] = None,
    output: Annotated[str, typer.Option(metavar="json|table|npz:FILE",
                                        help="How to give the outputs.")] = "json",
    top: Annotated[int | None, typer.Option(metavar="K", help="Show the K best classes.")] = None,
    labels: Annotated[Path | None, typer.Option(
        help="Class names: one per line, or Keras's imagenet_class_index.json.")] = None,
    preprocess: Annotated[str, typer.Option(help=PREPROCESS_HELP)] = "none",
    force: Annotated[bool, typer.Option(help="Overwrite an existing npz file.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="JSON result on stdout.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
) -> None:
    """Send predictions to a TF Serving gRPC endpoint (a container, or `kexport serve`)."""
    from serving.client_cli import ProgressPrinter, describe, run_predict

    result = run_predict(
        target, model, files=files or [], inputs=inputs or [], signature=signature,
        version=version, label=label, batch_size=batch_size, concurrency=concurrency,
        timeout=timeout, tls=tls, ca_cert=str(ca_cert) if ca_cert else None,
        output="json" if json_output and not output.startswith("npz:") else output, top=top,
        labels=str(labels) if labels else None, preprocess=preprocess, force=force,
        progress=ProgressPrinter())
    typer.echo(describe(result.prediction), err=True)
    if result.text:
        typer.echo(result.text)
    elif json_output:
        typer.echo(json.dumps({"saved": output[4:], "model": result.prediction.model,
                               "versions": sorted(result.prediction.versions),
                               "signature": result.prediction.signature}))
    else:
        typer.echo(f"wrote {output[4:]}", err=True)


def serve(
    path: Annotated[Path, typer.Argument(help="A bundle (with models.config) or a model base path "
                                         "with numbered version folders.", show_default=False)],
    host: Annotated[str, typer.Option(help="Interface to bind; 0.0.0.0 exposes the server "
                                      "to the network.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="gRPC port; 0 picks a free one.")] = 8500,
    model_name: Annotated[str, typer.Option(help="Model name when PATH is a base path.")] = "default",
    poll_seconds: Annotated[float, typer.Option(
        help="Seconds between looks for new or removed versions; 0 never.")] = 1.0,
    tensor_content: Annotated[bool, typer.Option(
        help="Reply with tensor_content bytes instead of typed fields.")] = False,
    max_workers: Annotated[int, typer.Option(help="Requests handled at once.")] = 16,
    warmup: Annotated[bool, typer.Option(help="Replay assets.extra warm-up records at load.")] = True,
    tls_cert: Annotated[Path | None, typer.Option(help="PEM certificate chain: serve TLS.")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="PEM private key of --tls-cert.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v",
                                          help="Log one line per request.")] = False,
    json_output: Annotated[bool, typer.Option(
        "--json", help="Print {address, host, port, models} as JSON on stdout once serving.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
) -> None:
    """Serve models over TF Serving's gRPC API until Ctrl-C or SIGTERM (a local stand-in for the
    tensorflow/serving container)."""
    import logging

    from serving.server import serve as run_server

    logger = logging.getLogger("kexport.serving")
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)

    def announce(running) -> None:
        if json_output:
            typer.echo(json.dumps({"address": running.address, "host": running.host,
                                   "port": running.port, "models": running.manager.available()}))
            sys.stdout.flush()

    from serving.server import tls_credentials

    credentials = tls_credentials(tls_cert, tls_key)  # before loading models: cheap refusals first
    run_server(path, host=host, port=port, model_name=model_name, poll_seconds=poll_seconds,
               tensor_content=tensor_content, max_workers=max_workers, warmup=warmup,
               on_ready=announce, credentials=credentials)
