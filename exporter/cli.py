"""The `kexport` command line: thin Typer commands over the library.

Each command declares its options, makes one call of the public API (exporter/api.py,
serving/api.py) and renders the result: a JSON
document on stdout with `--json`, else text (results on stdout, progress and errors on stderr).
Errors are rendered once, by `cli_common.handle_errors`. Library modules are imported inside the
commands so `--help` stays fast. The serving commands (`bundle`, `serve`, `predict`) live in
`serving/cli.py` and are registered on the same app.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from exporter import __version__
from exporter.cli_common import (
    ArchOpt,
    AtolOpt,
    CustomOpt,
    DebugOpt,
    ForceOpt,
    FromOpt,
    InputShapeOpt,
    InputsOpt,
    JsonOpt,
    NoVerifyOpt,
    QuietOpt,
    RtolOpt,
    ToOpt,
    UnsafeOpt,
    WeightsOpt,
    echo,
    handle_errors,
    print_json,
    progress_printer,
    render_report,
)

app = typer.Typer(
    name="kexport",
    help="Convert, slice, verify and serve trained Keras models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def render_written(result, json_output: bool) -> None:
    """Show what convert or slice wrote: repairs, the verification report, the paths."""
    if json_output:
        print_json(result.as_dict())
        return
    for note in result.notes:
        echo(f"  repair {note}")
    if getattr(result, "route_reason", ""):
        echo(f"  route {result.route}: {result.route_reason}")
    for need in getattr(result, "load_requires", []):
        echo(f"  to load it: {need}")
    if result.report:
        render_report(result.report)
        echo(result.report.summary())
    for path in result.written:
        typer.echo(f"wrote {path}")


@app.command("inspect")
@handle_errors
def inspect_command(
    path: Annotated[Path, typer.Argument(
        help="Model file, weights file, SavedModel folder or bundle.")],
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
    """Describe a model (format, writer, inputs, outputs, layers, parameters, signatures) or a
    bundle (its models, versions and image)."""
    from serving.bundle_manifest import is_bundle

    # The one place that knows both sides: a bundle is described by serving; with --layers,
    # --check or --from the conversion library answers (it refuses a model repository).
    if is_bundle(path) and not (layers or check or source_format):
        from serving.api import inspect_bundle
        from serving.bundle_manifest import format_bundle

        info, render = inspect_bundle(path), format_bundle
    else:
        from exporter.api import inspect_artifact
        from exporter.inspect import format_table

        info = inspect_artifact(
            path, source_format=source_format, layers=layers, check=check, weights=weights,
            architecture=architecture, custom_objects=custom_objects, unsafe=unsafe,
        )
        render = format_table
    if json_output:
        print_json(info)
    else:
        typer.echo(render(info))


@app.command("convert")
@handle_errors
def convert_command(
    source: Annotated[Path, typer.Argument(help="The model to convert.")],
    destination: Annotated[Path, typer.Argument(help="Where to write it.")],
    to: ToOpt = None,
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
    no_verify: NoVerifyOpt = False,
    atol: AtolOpt = 1e-5,
    rtol: RtolOpt = 1e-4,
    inputs: InputsOpt = None,
    input_shape: InputShapeOpt = None,
    force: ForceOpt = False,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
):
    """Convert a model to another format, verified against the source, published atomically."""
    from exporter.api import convert_model
    from exporter.inputs import parse_input_shapes

    result = convert_model(
        source, destination, to=to, source_format=source_format, weights=weights,
        architecture=architecture, by_name=by_name, skip_mismatch=skip_mismatch,
        config_only=config_only, keras_compat=keras_compat, custom_objects=custom_objects,
        unsafe=unsafe, verify=not no_verify, atol=atol, rtol=rtol, inputs_file=inputs,
        input_shapes=parse_input_shapes(input_shape), force=force,
        progress=progress_printer(quiet or json_output),
    )
    render_written(result, json_output)


@app.command("slice")
@handle_errors
def slice_command(
    source: Annotated[Path, typer.Argument(help="The model to cut.")],
    destination: Annotated[Path, typer.Argument(help="Where to write the sub-model.")],
    output: Annotated[list[str] | None, typer.Option("--output", help="Layer whose output becomes an output: NAME, NAME:NODE or OUTER/INNER (repeatable, in order; default with --input: the model's own outputs).")] = None,
    input_: Annotated[list[str] | None, typer.Option("--input", help="Layer whose output becomes a new input (repeatable).")] = None,
    to: ToOpt = None,
    custom_objects: CustomOpt = None,
    unsafe: UnsafeOpt = False,
    no_verify: NoVerifyOpt = False,
    atol: AtolOpt = 1e-5,
    rtol: RtolOpt = 1e-4,
    inputs: InputsOpt = None,
    input_shape: InputShapeOpt = None,
    force: ForceOpt = False,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
):
    """Cut a sub-model out at named layers, verified against the source, published atomically."""
    from exporter.api import slice_model
    from exporter.inputs import parse_input_shapes

    result = slice_model(
        source, destination, list(output or []), list(input_ or []), to=to,
        custom_objects=custom_objects, unsafe=unsafe, verify=not no_verify, atol=atol,
        rtol=rtol, inputs_file=inputs, input_shapes=parse_input_shapes(input_shape),
        force=force, progress=progress_printer(quiet or json_output),
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
    input_shape: InputShapeOpt = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
):
    """Check that two artifacts compute the same outputs on the same inputs (exit 1 if not)."""
    from exporter.api import verify_models
    from exporter.errors import EXIT_VERIFY_FAILED
    from exporter.inputs import parse_input_shapes

    report = verify_models(
        first, second, weights=weights, architecture=architecture,
        custom_objects=custom_objects, unsafe=unsafe, atol=atol, rtol=rtol, inputs_file=inputs,
        input_shapes=parse_input_shapes(input_shape),
    )
    if json_output:
        print_json({"ok": report.passed, "report": report.as_dict()})
    else:
        if not quiet:
            render_report(report)
        typer.echo(report.summary(), err=not report.passed)
    if not report.passed:
        raise typer.Exit(EXIT_VERIFY_FAILED)


def _register_serving_commands() -> None:
    """`bundle`, `serve` and `predict` are declared with the serving package, which ships in the
    same distribution: a broken import there must fail loudly, not silently drop three commands."""
    from serving.cli import register

    register(app)


_register_serving_commands()


def main() -> None:
    """Console-script entry point."""
    if sys.argv[1:] == ["--version"]:
        typer.echo(f"kexport {__version__}")
        return
    app()


if __name__ == "__main__":
    main()
