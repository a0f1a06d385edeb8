"""The serving commands `kexport bundle`, `predict` and `serve`: declare options, call the library,
render.

`register(app)` adds them to the kexport Typer app; `predict` is declared in `serving.predict_cli`,
which the standalone script `serving/client.py` runs too. Heavy modules (grpc, numpy, TensorFlow)
are imported inside the commands so `kexport --help` stays fast. Failures are raised as KexportError
subclasses; the CLI edge prints them as one line with their exit code.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperCommand

from exporter.cli_common import (
    DebugOpt,
    ForceOpt,
    InputShapeOpt,
    JsonOpt,
    NoVerifyOpt,
    QuietOpt,
    handle_errors,
    print_json,
    progress_printer,
)
from serving.predict_cli import predict


def register(app: typer.Typer) -> None:
    """Add the `bundle`, `predict` and `serve` commands to the kexport Typer app."""
    app.command("bundle")(handle_errors(bundle))
    app.command("predict")(handle_errors(predict))
    app.command("serve", cls=TFServingCommand)(handle_errors(serve))


def bundle(
    out_dir: Annotated[Path, typer.Argument(help="Bundle folder to create or extend.")],
    model: Annotated[list[str] | None, typer.Option(
        "--model", help="NAME=PATH[@VERSION] (repeatable); none with --check-runtime checks "
        "the existing bundle.")] = None,
    label: Annotated[list[str] | None, typer.Option("--label", help="NAME:LABEL=VERSION (repeatable).")] = None,
    policy: Annotated[list[str] | None, typer.Option("--policy", help="NAME:latest|all|specific (repeatable).")] = None,
    batching: Annotated[bool, typer.Option("--batching", help="Write batching.config and enable batching.")] = False,
    warmup: Annotated[int, typer.Option("--warmup", help="Warm-up records per model version (at most 1000).")] = 0,
    warmup_inputs: Annotated[Path | None, typer.Option("--warmup-inputs", help=".npz of warm-up inputs.")] = None,
    image: Annotated[str | None, typer.Option("--image", help="Base image (default: tensorflow/serving of --serving-version).")] = None,
    serving_version: Annotated[str | None, typer.Option(
        "--serving-version", help="TensorFlow Serving release the image carries (default "
        "2.20.0, or the bundle's).")] = None,
    k8s: Annotated[bool, typer.Option("--k8s", help="Also write k8s/ (Deployment, Service, HPA, PDB, kustomization).")] = False,
    kserve: Annotated[bool, typer.Option("--kserve", help="Also write a KServe InferenceService per model (implies --k8s).")] = False,
    check_runtime: Annotated[bool, typer.Option(
        "--check-runtime", help="Load every version under the image's TensorFlow (installed "
        "once into ~/.cache/kexport) and compare the recorded outputs.")] = False,
    no_verify: NoVerifyOpt = False,
    input_shape: InputShapeOpt = None,
    force: ForceOpt = False,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
):
    """Bundle models into a TensorFlow Serving repository with models.config and a Dockerfile."""
    from exporter.inputs import parse_input_shapes
    from serving.api import build_bundle

    if not model and check_runtime:
        _check_runtime_only(out_dir, serving_version, json_output, quiet)
        return
    manifest = build_bundle(
        out_dir, list(model or []), labels=list(label or []), policies=list(policy or []),
        batching=batching, warmup=warmup, warmup_inputs=warmup_inputs, image=image,
        serving_version=serving_version, k8s=k8s, kserve=kserve, check_runtime=check_runtime,
        verify=not no_verify, input_shapes=parse_input_shapes(input_shape), force=force,
        progress=progress_printer(quiet or json_output),
    )
    if json_output:
        print_json(manifest)
        return
    for name, entry in sorted(manifest["models"].items()):
        versions = ", ".join(sorted(entry["versions"], key=int))
        typer.echo(f"{name}: versions {versions} ({entry['policy']})")
    typer.echo(f"wrote {out_dir}")


def _check_runtime_only(out_dir: Path, serving_version, json_output: bool, quiet: bool) -> None:
    """`kexport bundle OUT --check-runtime` with no --model: check the bundle as it is."""
    from exporter.errors import EXIT_VERIFY_FAILED
    from serving.api import check_bundle

    report = check_bundle(out_dir, serving_version, progress_printer(quiet or json_output))
    if json_output:
        print_json(report.as_dict())
    else:
        for line in report.lines():
            typer.echo(f"  {line}", err=True)
        typer.echo(report.summary(), err=not report.passed)
    if not report.passed:
        raise typer.Exit(EXIT_VERIFY_FAILED)


def serve(
    path: Annotated[Path | None, typer.Argument(
        help="A bundle (with models.config), a models.config file, or a model base path with "
        "numbered version folders.", show_default=False)] = None,
    host: Annotated[str, typer.Option(help="Interface to bind; 0.0.0.0 exposes the server "
                                      "to the network.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="gRPC port; 0 picks a free one.")] = 8500,
    rest_api_port: Annotated[int | None, typer.Option(
        "--rest-api-port", "--rest_api_port",
        help="Serve TF Serving's REST API on this port; 0 picks a free one.")] = None,
    rest_api_timeout_in_ms: Annotated[int, typer.Option(
        "--rest-api-timeout-in-ms", "--rest_api_timeout_in_ms",
        help="How long an idle REST connection stays open.")] = 30000,
    rest_api_cors: Annotated[bool, typer.Option(
        "--rest-api-cors/--no-rest-api-cors", "--rest_api_enable_cors_support",
        help="Add CORS headers to REST replies.")] = False,
    model_name: Annotated[str, typer.Option(
        "--model-name", "--model_name", help="Model name when serving a base path.")] = "default",
    model_base_path: Annotated[Path | None, typer.Option(
        "--model-base-path", "--model_base_path", help="A model base path (as PATH).")] = None,
    model_config_file: Annotated[Path | None, typer.Option(
        "--model-config-file", "--model_config_file", help="A models.config (as PATH).")] = None,
    config_poll_seconds: Annotated[float, typer.Option(
        "--model-config-file-poll-wait-seconds", "--model_config_file_poll_wait_seconds",
        help="Re-read models.config this often; 0 reads it once.")] = 0.0,
    poll_seconds: Annotated[float, typer.Option(
        "--poll-seconds", "--file_system_poll_wait_seconds",
        help="Seconds between looks for new or removed versions; 0 never.")] = 1.0,
    grpc_socket_path: Annotated[str | None, typer.Option(
        "--grpc-socket-path", "--grpc_socket_path",
        help="Also serve gRPC on this UNIX socket.")] = None,
    monitoring_config_file: Annotated[Path | None, typer.Option(
        "--monitoring-config-file", "--monitoring_config_file",
        help="A MonitoringConfig text proto; prometheus_config serves metrics on the REST "
        "port.")] = None,
    enable_batching: Annotated[bool, typer.Option(
        "--enable-batching/--no-enable-batching", "--enable_batching",
        help="Batch concurrent requests on the server.")] = False,
    batching_parameters_file: Annotated[Path | None, typer.Option(
        "--batching-parameters-file", "--batching_parameters_file",
        help="A BatchingParameters text proto (batching.config).")] = None,
    per_model_batching: Annotated[bool, typer.Option(
        "--per-model-batching/--no-per-model-batching", "--enable_per_model_batching_parameters",
        help="Read batching_params.pbtxt of each version.")] = False,
    prefer_tflite_model: Annotated[bool, typer.Option(
        "--prefer-tflite-model/--no-prefer-tflite-model", "--prefer_tflite_model",
        help="Serve a version's model.tflite when it has one.")] = False,
    signature_method_check: Annotated[bool, typer.Option(
        "--signature-method-name-check/--no-signature-method-name-check",
        "--enable_signature_method_name_check",
        help="Check SignatureDef method names on Classify and Regress (off by default, as in "
        "TF Serving, so TF2 exports can classify).")] = False,
    labels_for_unavailable: Annotated[bool, typer.Option(
        "--labels-for-unavailable-models/--no-labels-for-unavailable-models",
        "--allow_version_labels_for_unavailable_models",
        help="Let a config reload label versions that are not loaded.")] = False,
    tensor_content: Annotated[bool, typer.Option(
        "--tensor-content/--no-tensor-content", "--enable_serialization_as_tensor_content",
        help="Reply with tensor_content bytes instead of typed fields.")] = False,
    max_workers: Annotated[int, typer.Option(
        "--max-workers", "--grpc_max_threads", help="gRPC requests handled at once.")] = 16,
    grpc_channel_arguments: Annotated[str, typer.Option(
        "--grpc-channel-arguments", "--grpc_channel_arguments", metavar="KEY=VALUE,...",
        help="Extra gRPC server options.")] = "",
    warmup: Annotated[bool, typer.Option(
        "--warmup/--no-warmup", "--enable_model_warmup",
        help="Replay assets.extra warm-up records at load.")] = True,
    ssl_config_file: Annotated[Path | None, typer.Option(
        "--ssl-config-file", "--ssl_config_file", help="An SSLConfig text proto: serve TLS.")] = None,
    tls_cert: Annotated[Path | None, typer.Option(help="PEM certificate chain: serve TLS.")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="PEM private key of --tls-cert.")] = None,
    version: Annotated[bool, typer.Option("--version", help="Print versions and exit.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v",
                                          help="Log one line per request.")] = False,
    json_output: Annotated[bool, typer.Option(
        "--json", help="Print {address, port, rest_port, models, ...} as JSON on stdout once "
        "serving.")] = False,
    debug: DebugOpt = False,
) -> None:
    """Serve models over TF Serving's gRPC and REST APIs until Ctrl-C or SIGTERM (a local
    stand-in for the tensorflow/serving container; its flags are accepted as they are)."""
    import logging

    import click

    from serving.options import serve_options

    if version:
        typer.echo(serving_version())
        return
    tuning = click.get_current_context().meta.get(TUNING_FLAGS_KEY, [])
    if tuning:  # named once, so a copied command line is not silently half-honoured
        typer.echo(f"kexport serve: accepted without effect here: {', '.join(tuning)}", err=True)
    options = serve_options(
        path, model_base_path=model_base_path, model_config_file=model_config_file,
        ssl_config_file=ssl_config_file, tls_cert=tls_cert, tls_key=tls_key,
        monitoring_config_file=monitoring_config_file, enable_batching=enable_batching,
        batching_parameters_file=batching_parameters_file, per_model_batching=per_model_batching,
        grpc_channel_arguments=grpc_channel_arguments, model_name=model_name, host=host,
        port=port, grpc_socket_path=grpc_socket_path, rest_port=rest_api_port,
        rest_timeout_ms=rest_api_timeout_in_ms, rest_cors=rest_api_cors,
        config_poll_seconds=config_poll_seconds, poll_seconds=poll_seconds,
        tensor_content=tensor_content, max_workers=max_workers, warmup=warmup,
        prefer_tflite_model=prefer_tflite_model, signature_method_check=signature_method_check,
        labels_for_unavailable=labels_for_unavailable,
        tuning_flags=tuple(tuning))
    from serving.server import serve as run_server

    logging.getLogger("kexport.serving").setLevel(logging.DEBUG if verbose else logging.INFO)

    def announce(running) -> None:
        if json_output:
            typer.echo(json.dumps({
                "address": running.address, "host": running.host, "port": running.port,
                "rest_port": running.rest_port, "rest_url": running.rest_url,
                "socket_path": running.socket_path, "models": running.manager.available()}))
            sys.stdout.flush()

    run_server(options=options, on_ready=announce)


TUNING_FLAGS_KEY = "kexport.tuning_flags"


class TFServingCommand(TyperCommand):
    """`kexport serve`: TF Serving's flag spellings are normalized before click parses them."""

    def declared_flags(self):
        """The TF Serving spellings (`--model_base_path`) this command's options declare."""
        import click

        from serving.tfs_flags import DeclaredFlags

        return DeclaredFlags.from_options(
            (param.opts, param.secondary_opts, param.is_flag)
            for param in self.params if isinstance(param, click.Option))

    def parse_args(self, ctx, args):
        import click

        from exporter.errors import BadInputError
        from serving.tfs_flags import normalize_argv

        try:
            args, tuning = normalize_argv(list(args), self.declared_flags())
        except BadInputError as err:
            raise click.UsageError(str(err), ctx) from None
        ctx.meta[TUNING_FLAGS_KEY] = tuning
        return super().parse_args(ctx, args)


def serving_version() -> str:
    """What `kexport serve --version` prints (TF Serving's two lines, for this stand-in)."""
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    return (f"TensorFlow ModelServer: kexport serve {installed('kexport')} (a local stand-in)\n"
            f"TensorFlow Library: {installed('tensorflow')}")
