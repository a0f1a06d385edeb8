"""What every kexport command shares: option types, output helpers, and the error edge.

The error edge renders library errors once: one `error:` line and the exit code of the CLI
contract, a JSON document too with `--json`, the traceback only with `--debug`. Imported by
`exporter.cli` and by `serving.cli`, so both command sets behave alike.
"""

from __future__ import annotations

import functools
import json
import traceback
from pathlib import Path
from typing import Annotated

import typer

from exporter.errors import EXIT_BAD_INPUT, KexportError, missing_dependency

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
ToOpt = Annotated[
    str | None, typer.Option("--to", help="h5, keras, savedmodel, json, yaml, weights, tflite.")
]
NoVerifyOpt = Annotated[bool, typer.Option("--no-verify", help="Skip numerical verification.")]
AtolOpt = Annotated[float, typer.Option("--atol", help="Absolute tolerance.")]
RtolOpt = Annotated[float, typer.Option("--rtol", help="Relative tolerance.")]
InputsOpt = Annotated[
    Path | None, typer.Option("--inputs", help=".npz of inputs named after the model inputs.")
]
InputShapeOpt = Annotated[
    list[str] | None,
    typer.Option("--input-shape", metavar="NAME=D1,D2,...", help="Shape of one verification "
                 "input, batch dimension optional (repeatable); for unknown dimensions."),
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


def handle_errors(command=None, *, script: str | None = None):
    """Render library errors as one line and the contract's exit code (traceback with --debug).

    Used bare (`@handle_errors`) for kexport's commands, whose errors read `error: ...`; with
    `script="client.py"` for a standalone script, whose errors read `client.py: error: ...` as
    argparse scripts print them.
    """
    if command is None:
        return functools.partial(handle_errors, script=script)
    error_prefix = f"{script}: error: " if script else "error: "
    program = script or "kexport"

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except typer.Exit:
            raise
        except KexportError as error:
            failure = error
            code, message, report = error.exit_code, str(error), getattr(error, "report", None)
        except ModuleNotFoundError as error:
            # The base install lacks the [tf] extra: say which extra, not a bare import error.
            missing = missing_dependency(error)
            failure = missing or error
            code, message, report = EXIT_BAD_INPUT, str(missing or _unexpected(error)), None
        except KeyboardInterrupt:
            echo(f"{program}: interrupted")
            raise typer.Exit(130) from None
        except Exception as error:  # noqa: BLE001 - the edge: nothing escapes as a traceback
            failure = error
            code, message, report = EXIT_BAD_INPUT, _unexpected(error), None
        if kwargs.get("debug"):
            traceback.print_exception(failure)
        echo(f"{error_prefix}{message}")
        if kwargs.get("json_output"):
            print_json({
                "ok": False,
                "exit_code": code,
                "error": message,
                "report": report.as_dict() if report is not None else None,
            })
        raise typer.Exit(code)

    return wrapper


def _unexpected(error: Exception) -> str:
    first = str(error).splitlines()[0] if str(error) else ""
    return f"unexpected error: {type(error).__name__}: {first}"


def render_report(report) -> None:
    for name, choice in (getattr(report, "input_sources", None) or {}).items():
        echo(f"  input {name}: {choice['shape']} {choice['dtype']}, {choice['values']} "
             f"(shape: {choice['source']})")
    if getattr(report, "pairing", ""):
        echo(f"  inputs paired {report.pairing}")
    for out in report.outputs:
        status = "ok  " if out.passed else "FAIL"
        diff = "-" if out.max_abs_diff is None else f"{out.max_abs_diff:.3g}"
        rel = "-" if out.max_rel_diff is None else f"{out.max_rel_diff:.3g}"
        echo(f"  {status} {out.name}: shape {out.candidate_shape}, max abs {diff}, max rel {rel}"
             + (f" ({out.reason})" if out.reason else ""))
