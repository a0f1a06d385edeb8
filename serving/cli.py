"""The serving commands `kexport bundle`, `predict` and `serve`: declare options, call the library,
render.

`register(app)` adds them, and `bundle`, to the kexport Typer app. Heavy modules (grpc, numpy, TensorFlow) are
imported inside the commands so `kexport --help` stays fast. Failures are raised as KexportError
subclasses; the CLI edge prints them as one line with their exit code.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from exporter.cli_common import (
    DebugOpt,
    ForceOpt,
    JsonOpt,
    NoVerifyOpt,
    QuietOpt,
    handle_errors,
    print_json,
    progress_printer,
)

PREPROCESS_HELP = "Image preprocessing, as keras.applications preprocess_input: none, tf, caffe, torch."


def register(app: typer.Typer) -> None:
    """Add the `bundle`, `predict` and `serve` commands to the kexport Typer app."""
    app.command("bundle")(handle_errors(bundle))
    app.command("predict")(handle_errors(predict))
    app.command("serve")(handle_errors(serve))


def bundle(
    out_dir: Annotated[Path, typer.Argument(help="Bundle folder to create or extend.")],
    model: Annotated[list[str], typer.Option("--model", help="NAME=PATH[@VERSION] (repeatable).")],
    label: Annotated[list[str] | None, typer.Option("--label", help="NAME:LABEL=VERSION (repeatable).")] = None,
    policy: Annotated[list[str] | None, typer.Option("--policy", help="NAME:latest|all|specific (repeatable).")] = None,
    batching: Annotated[bool, typer.Option("--batching", help="Write batching.config and enable batching.")] = False,
    warmup: Annotated[int, typer.Option("--warmup", help="Warm-up records per model version (at most 1000).")] = 0,
    warmup_inputs: Annotated[Path | None, typer.Option("--warmup-inputs", help=".npz of warm-up inputs.")] = None,
    image: Annotated[str | None, typer.Option("--image", help="Base image (default: a pinned tensorflow/serving).")] = None,
    no_verify: NoVerifyOpt = False,
    force: ForceOpt = False,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
):
    """Bundle models into a TensorFlow Serving repository with models.config and a Dockerfile."""
    from serving.bundle import (
        DEFAULT_IMAGE,
        BundleRequest,
        build_bundle,
        parse_label,
        parse_model_spec,
        parse_policy,
    )

    request = BundleRequest(
        out_dir=out_dir,
        sources=[parse_model_spec(text) for text in model],
        labels=[parse_label(text) for text in label or []],
        policies=[parse_policy(text) for text in policy or []],
        batching=batching,
        warmup=warmup,
        warmup_inputs=warmup_inputs,
        image=image or DEFAULT_IMAGE,
        force=force,
        verify=not no_verify,
    )
    manifest = build_bundle(request, progress=progress_printer(quiet or json_output))
    if json_output:
        print_json(manifest)
        return
    for name, entry in sorted(manifest["models"].items()):
        versions = ", ".join(sorted(entry["versions"], key=int))
        typer.echo(f"{name}: versions {versions} ({entry['policy']})")
    typer.echo(f"wrote {out_dir}")


def predict(
    model: Annotated[str, typer.Option(help="Model name.", show_default=False)],
    files: Annotated[list[str] | None, typer.Argument(
        metavar="[FILE]...", help="Inputs: .npy, .npz, .json or images (PNG/JPEG); many files "
        "are batched.", show_default=False)] = None,
    target: Annotated[str, typer.Option(help="Server HOST:PORT.")] = "localhost:8500",
    signature: Annotated[str | None, typer.Option(help="Signature (serving_default).")] = None,
    method: Annotated[str, typer.Option(
        metavar="predict|classify|regress", help="predict tensors, or classify/regress FILEs of "
        "tf.Example features as JSON ([{\"x\": 2.0}] or {\"examples\": ..., \"context\": ...}).")] = "predict",
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
    json_output: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Send predictions to a TF Serving gRPC endpoint (a container, or `kexport serve`)."""
    from serving.client_cli import ProgressPrinter, describe, run_examples, run_predict

    if method != "predict":
        answer, text = run_examples(target, model, method, files or [], signature=signature,
                                    version=version, label=label, timeout=timeout, tls=tls,
                                    ca_cert=str(ca_cert) if ca_cert else None)
        typer.echo(describe(answer), err=True)
        typer.echo(text)
        return

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
    debug: DebugOpt = False,
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
