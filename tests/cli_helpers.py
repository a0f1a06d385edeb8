"""Running `kexport` commands in-process, as the tests of the CLI contract do."""

from __future__ import annotations

from typer.testing import CliRunner

from exporter.cli import app

runner = CliRunner()


def run(*args):
    """Invoke kexport with `args`; a traceback in the output fails the test on the spot."""
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    return result


def one_error_line(result) -> str:
    """The single `error: ...` line a failed command prints."""
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    return lines[0]
