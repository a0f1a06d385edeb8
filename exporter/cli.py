"""The `kexport` command line: thin Typer commands over the library.

Each command declares its options, makes one library call and renders the result: a JSON
document on stdout with `--json`, else text (results on stdout, progress and errors on stderr).
Errors are rendered once, here: one line and the exit code of the contract; `--debug` adds the
traceback. Library modules are imported inside the commands so `--help` stays fast.
"""

from __future__ import annotations

import functools
import json
import sys
import traceback
from pathlib import Path
from typing import Annotated

import typer

from exporter import __version__
from exporter.errors import EXIT_BAD_INPUT, KexportError

app = typer.Typer(
    name="kexport",
    help="Convert, slice, verify and serve trained Keras models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr.")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Replace an existing destination.")]
UnsafeOpt = Annotated[
    bool, typer.Option("--unsafe", help="Allow artifacts that carry code (Lambda layers).")
]
CustomOpt = Annotated[
    str | None,
    typer.Option("--custom-objects", help="Module path or .py file defining custom layers."),
]
FromOpt = Annotated[str | None, typer.Option("--from", help="Source format (else detected).")]
AtolOpt = Annotated[float, typer.Option("--atol", help="Absolute tolerance.")]
RtolOpt = Annotated[float, typer.Option("--rtol", help="Relative tolerance.")]
InputsOpt = Annotated[
    Path | None, typer.Option("--inputs", help=".npz of inputs named after the model inputs.")
]
WeightsOpt = Annotated[
    Path | None, typer.Option("--weights", help="Weights file for a json/yaml architecture.")
]
ArchOpt = Annotated[
    Path | None,
    typer.Option("--architecture", help="Architecture (json, yaml, h5, keras) for a weights file."),
]


def echo(message: str) -> None:
    typer.echo(message, err=True)


def progress_printer(quiet: bool):
    return (lambda message: None) if quiet else (lambda message: echo(f"kexport: {message}"))


def print_json(data) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def handle_errors(command):
    """Render library errors as one line and the contract's exit code (traceback with --debug)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except typer.Exit:
            raise
        except KexportError as error:
            failure = error
            code, message, report = error.exit_code, str(error), getattr(error, "report", None)
        except KeyboardInterrupt:
            echo("kexport: interrupted")
            raise typer.Exit(130) from None
        except Exception as error:  # noqa: BLE001 - the edge: nothing escapes as a traceback
            failure = error
            code = EXIT_BAD_INPUT
            first = str(error).splitlines()[0] if str(error) else ""
            message = f"unexpected error: {type(error).__name__}: {first}"
            report = None
        if kwargs.get("debug"):
            traceback.print_exception(failure)
        echo(f"error: {message}")
        if kwargs.get("json_output"):
            print_json({
                "ok": False,
                "exit_code": code,
                "error": message,
                "report": report.as_dict() if report is not None else None,
            })
        raise typer.Exit(code)

    return wrapper


def load_options(
    source_format=None, weights=None, architecture=None, custom_objects=None, unsafe=False,
    by_name=False, skip_mismatch=False,
):
    from exporter.custom import load_custom_objects
    from exporter.loaded import LoadOptions

    return LoadOptions(
        source_format=source_format,
        weights=weights,
        architecture=architecture,
        custom_objects=load_custom_objects(custom_objects),
        unsafe=unsafe,
        by_name=by_name,
        skip_mismatch=skip_mismatch,
    )


def render_report(report) -> None:
    for out in report.outputs:
        status = "ok  " if out.passed else "FAIL"
        diff = "-" if out.max_abs_diff is None else f"{out.max_abs_diff:.3g}"
        rel = "-" if out.max_rel_diff is None else f"{out.max_rel_diff:.3g}"
        echo(f"  {status} {out.name}: shape {out.candidate_shape}, max abs {diff}, max rel {rel}"
             + (f" ({out.reason})" if out.reason else ""))


def render_written(result, json_output: bool) -> None:
    """Show what convert or slice wrote: repairs, the verification report, the paths."""
    if json_output:
        print_json(result.as_dict())
        return
    for note in result.notes:
        echo(f"  repair {note}")
    if result.report:
        render_report(result.report)
        echo(result.report.summary())
    for path in result.written:
        typer.echo(f"wrote {path}")


@app.command("inspect")
@handle_errors
def inspect_command(
    path: Annotated[Path, typer.Argument(help="Model file, weights file or SavedModel folder.")],
    source_format: FromOpt = None,
    layers: Annotated[bool, typer.Option(
        "--layers", help="Also list every name `slice` accepts (loads the model).")] = False,
    check: Annotated[bool, typer.Option(
        "--check", help="Load the model: say whether it loads, why not, and what was repaired.")
    ] = False,
    weights: WeightsOpt = None,
    architecture: ArchOpt = None,
    custom_objects: CustomOpt = None,
    unsafe: UnsafeOpt = False,
    json_output: JsonOpt = False,
    debug: DebugOpt = False,
):
    """Describe a model: format, writer, inputs, outputs, layers, parameters, signatures."""
    from exporter.inspect import format_table, inspect_artifact

    info = inspect_artifact(path, source_format)
    if layers or check:
        from exporter.inspect import addressable_layers, check_loadable

        options = load_options(source_format, weights, architecture, custom_objects, unsafe)
        if check:
            info.update(check_loadable(path, options))
        if layers:
            info["addressable_layers"] = addressable_layers(path, options)
    if json_output:
        print_json(info)
    else:
        typer.echo(format_table(info))


@app.command("convert")
@handle_errors
def convert_command(
    source: Annotated[Path, typer.Argument(help="The model to convert.")],
    destination: Annotated[Path, typer.Argument(help="Where to write it.")],
    to: Annotated[str | None, typer.Option("--to", help="h5, keras, savedmodel, json, yaml, weights.")] = None,
    source_format: FromOpt = None,
    weights: WeightsOpt = None,
    architecture: ArchOpt = None,
    by_name: Annotated[bool, typer.Option("--by-name", help="Load weights by layer name.")] = False,
    skip_mismatch: Annotated[bool, typer.Option("--skip-mismatch", help="With --by-name: skip layers whose shapes differ.")] = False,
    config_only: Annotated[bool, typer.Option("--config-only", help="json/yaml: write no weights file.")] = False,
    keras_compat: Annotated[int | None, typer.Option(
        "--keras-compat", help="2: write an HDF5 that tf-keras (Keras 2) loads (with --to h5).")] = None,
    custom_objects: CustomOpt = None,
    unsafe: UnsafeOpt = False,
    no_verify: Annotated[bool, typer.Option("--no-verify", help="Skip numerical verification.")] = False,
    atol: AtolOpt = 1e-5,
    rtol: RtolOpt = 1e-4,
    inputs: InputsOpt = None,
    force: ForceOpt = False,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
):
    """Convert a model to another format, verified against the source, published atomically."""
    from exporter.convert import convert

    options = load_options(source_format, weights, architecture, custom_objects, unsafe,
                           by_name, skip_mismatch)
    result = convert(
        source, destination, to, options, verify=not no_verify, atol=atol, rtol=rtol,
        inputs_file=inputs, force=force, config_only=config_only, keras_compat=keras_compat,
        progress=progress_printer(quiet or json_output),
    )
    render_written(result, json_output)


@app.command("slice")
@handle_errors
def slice_command(
    source: Annotated[Path, typer.Argument(help="The model to cut.")],
    destination: Annotated[Path, typer.Argument(help="Where to write the sub-model.")],
    output: Annotated[list[str] | None, typer.Option("--output", help="Layer whose output becomes an output: NAME, NAME:NODE or OUTER/INNER (repeatable, in order).")] = None,
    input_: Annotated[list[str] | None, typer.Option("--input", help="Layer whose output becomes a new input (repeatable).")] = None,
    to: Annotated[str | None, typer.Option("--to", help="h5, keras, savedmodel, json, yaml, weights.")] = None,
    custom_objects: CustomOpt = None,
    unsafe: UnsafeOpt = False,
    no_verify: Annotated[bool, typer.Option("--no-verify", help="Skip numerical verification.")] = False,
    atol: AtolOpt = 1e-5,
    rtol: RtolOpt = 1e-4,
    inputs: InputsOpt = None,
    force: ForceOpt = False,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
):
    """Cut a sub-model out at named layers, verified against the source, published atomically."""
    from exporter.slicing import slice_artifact

    result = slice_artifact(
        source, destination, list(output or []), list(input_ or []), to,
        load_options(None, None, None, custom_objects, unsafe), verify=not no_verify,
        atol=atol, rtol=rtol, inputs_file=inputs, force=force,
        progress=progress_printer(quiet or json_output),
    )
    render_written(result, json_output)


@app.command("verify")
@handle_errors
def verify_command(
    first: Annotated[Path, typer.Argument(help="The reference model.")],
    second: Annotated[Path, typer.Argument(help="The model that should compute the same.")],
    weights: WeightsOpt = None,
    architecture: ArchOpt = None,
    custom_objects: CustomOpt = None,
    unsafe: UnsafeOpt = False,
    atol: AtolOpt = 1e-5,
    rtol: RtolOpt = 1e-4,
    inputs: InputsOpt = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
):
    """Check that two artifacts compute the same outputs on the same inputs (exit 1 if not)."""
    from exporter.convert import verify_artifacts
    from exporter.errors import EXIT_VERIFY_FAILED

    options = load_options(None, weights, architecture, custom_objects, unsafe)
    report = verify_artifacts(first, second, options, inputs_file=inputs, atol=atol, rtol=rtol)
    if json_output:
        print_json({"ok": report.passed, "report": report.as_dict()})
    else:
        if not quiet:
            render_report(report)
        typer.echo(report.summary(), err=not report.passed)
    if not report.passed:
        raise typer.Exit(EXIT_VERIFY_FAILED)


def _register_optional_commands() -> None:
    """Commands of other packages (serving) plug in here when they are present."""
    try:
        from serving.cli import register
    except ImportError:
        return
    register(app, wrap=handle_errors)


@app.command("bundle")
@handle_errors
def bundle_command(
    out_dir: Annotated[Path, typer.Argument(help="Bundle folder to create or extend.")],
    model: Annotated[list[str], typer.Option("--model", help="NAME=PATH[@VERSION] (repeatable).")],
    label: Annotated[list[str] | None, typer.Option("--label", help="NAME:LABEL=VERSION (repeatable).")] = None,
    policy: Annotated[list[str] | None, typer.Option("--policy", help="NAME:latest|all|specific (repeatable).")] = None,
    batching: Annotated[bool, typer.Option("--batching", help="Write batching.config and enable batching.")] = False,
    warmup: Annotated[int, typer.Option("--warmup", help="Warm-up records per model version (at most 1000).")] = 0,
    warmup_inputs: Annotated[Path | None, typer.Option("--warmup-inputs", help=".npz of warm-up inputs.")] = None,
    image: Annotated[str | None, typer.Option("--image", help="Base image (default: a pinned tensorflow/serving).")] = None,
    no_verify: Annotated[bool, typer.Option("--no-verify", help="Skip numerical verification.")] = False,
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


_register_optional_commands()


def main() -> None:
    """Console-script entry point."""
    if sys.argv[1:] == ["--version"]:
        typer.echo(f"kexport {__version__}")
        return
    app()


if __name__ == "__main__":
    main()
