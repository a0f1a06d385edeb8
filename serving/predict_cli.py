"""`predict`, the one command line of the prediction client: `kexport predict` and the standalone
script `python serving/client.py` run this same Typer command, so they take the same options.

The command declares the options, calls `serving.predict_job` (imported when it runs, so
`kexport --help` stays fast) and renders the result. `serving.cli` registers it in kexport behind
the shared error edge (`error: ...`); `run_script` runs it as the script, whose errors keep the
argparse shape scripts already read (`client.py: error: ...`). Both exit with the CLI contract's
codes (2 bad input or usage, 4 serving/RPC failure). Typer and click are base dependencies, so
the script stays TensorFlow-free.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import click
import typer

from exporter.cli_common import DebugOpt, JsonOpt, handle_errors

SCRIPT = "client.py"
PREPROCESS_HELP = "Image preprocessing, as keras.applications preprocess_input: none, tf, caffe, torch."


def predict(
    model: Annotated[str, typer.Option(help="Model name.", show_default=False)],
    files: Annotated[list[str] | None, typer.Argument(
        metavar="[FILE]...", help="Inputs: .npy, .npz, .json or images (PNG/JPEG); many files "
        "are batched.", show_default=False)] = None,
    target: Annotated[str, typer.Option(help="Server HOST:PORT.")] = "localhost:8500",
    rest: Annotated[str | None, typer.Option(
        metavar="URL", help="Use TF Serving's REST API at URL (http://HOST:8501) instead of "
        "gRPC.")] = None,
    signature: Annotated[str | None, typer.Option(help="Signature (serving_default).")] = None,
    method: Annotated[str, typer.Option(
        metavar="predict|classify|regress", help="predict tensors, or classify/regress FILEs of "
        "tf.Example features as JSON ([{\"x\": 2.0}] or {\"examples\": ..., \"context\": ...})."
    )] = "predict",
    version: Annotated[int | None, typer.Option(
        help="Model version (default: latest); excludes --label.")] = None,
    label: Annotated[str | None, typer.Option(
        help="Model version label, e.g. stable; excludes --version.")] = None,
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
    preprocess: Annotated[str, typer.Option(metavar="none|tf|caffe|torch",
                                            help=PREPROCESS_HELP)] = "none",
    force: Annotated[bool, typer.Option(help="Overwrite an existing npz file.")] = False,
    json_output: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Send predictions to a TF Serving gRPC or REST endpoint (a container, or `kexport serve`)."""
    from serving.predict_job import run_examples, run_predict

    if method != "predict":
        answer, text = run_examples(target, model, method, files or [], signature=signature,
                                    version=version, label=label, timeout=timeout, tls=tls,
                                    ca_cert=str(ca_cert) if ca_cert else None, rest=rest)
        typer.echo(describe(answer), err=True)
        typer.echo(text)
        return

    result = run_predict(
        target, model, files=files or [], inputs=inputs or [], signature=signature,
        version=version, label=label, batch_size=batch_size, concurrency=concurrency,
        timeout=timeout, tls=tls, ca_cert=str(ca_cert) if ca_cert else None,
        output="json" if json_output and not output.startswith("npz:") else output, top=top,
        labels=str(labels) if labels else None, preprocess=preprocess, force=force,
        progress=ProgressPrinter(), rest=rest)
    typer.echo(describe(result.prediction), err=True)
    if result.text:
        typer.echo(result.text)
    elif json_output:
        typer.echo(json.dumps({"saved": output[4:], "model": result.prediction.model,
                               "versions": sorted(result.prediction.versions),
                               "signature": result.prediction.signature}))
    else:
        typer.echo(f"wrote {output[4:]}", err=True)


class ProgressPrinter:
    """Batch progress on stderr: a redrawn bar on a terminal, one line per batch otherwise."""

    def __init__(self, stream=None, width: int = 30):
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    def __call__(self, done: int, total: int) -> None:
        if total <= 1:
            return
        if self.tty:
            filled = self.width * done // total
            bar = "#" * filled + "." * (self.width - filled)
            end = "\n" if done == total else ""
            self.stream.write(f"\rpredict [{bar}] {done}/{total} batches{end}")
        else:
            self.stream.write(f"predict: {done}/{total} batches\n")
        self.stream.flush()


def describe(prediction) -> str:
    """One human line about who answered, for stderr."""
    if not hasattr(prediction, "versions"):  # a Classify/Regress answer
        return (f"model {prediction.model} version {prediction.version or '?'} "
                f"signature {prediction.signature}")
    versions = sorted(prediction.versions)
    which = ", ".join(map(str, versions)) if versions else "?"
    return f"model {prediction.model} version {which} signature {prediction.signature}"


def run_script(argv: list[str] | None = None) -> int:
    """`python serving/client.py`: run `predict` as the script; returns the exit code.

    Usage errors print click's usage line and `client.py: error: MESSAGE` (exit 2), as the
    script's argparse front end did; other errors go through the shared error edge
    (`exporter.cli_common.handle_errors`) under the script's name.
    """
    app = typer.Typer(add_completion=False)
    app.command()(handle_errors(predict, script=SCRIPT))
    command = typer.main.get_command(app)  # one command: it is the script, no sub-command
    try:
        code = command.main(argv, prog_name=SCRIPT, standalone_mode=False)
    except click.UsageError as err:
        if err.ctx is not None:
            typer.echo(err.ctx.get_usage(), err=True)
        typer.echo(f"{SCRIPT}: error: {err.format_message()}", err=True)
        return err.exit_code
    return code or 0
