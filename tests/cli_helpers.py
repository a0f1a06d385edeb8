"""Running `kexport` commands in-process, as the tests of the CLI contract do."""

from __future__ import annotations

import functools

import click.testing
import typer.main
from typer.testing import CliRunner

from exporter.cli import app


class CachedCommandRunner(CliRunner):
    """typer's runner rebuilds the whole click command tree on every invoke (~80 ms, most of it
    signature introspection); the robustness suite invokes thousands of commands, so each app's
    tree is built once and click's own runner invokes it."""

    def invoke(self, app, args=None, **kwargs):
        return click.testing.CliRunner.invoke(self, command_of(app), args, **kwargs)


@functools.cache
def command_of(typer_app):
    """The click command tree of a Typer app, built once."""
    return typer.main.get_command(typer_app)


runner = CachedCommandRunner()


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


def run_script_without_tensorflow(script, args, cwd):
    """Run a script's __main__ in a fresh interpreter; fail if TensorFlow, tensorflow_serving or
    Keras got imported. Returns the completed process (stdout: the script's output)."""
    import subprocess
    import sys

    probe = ("import runpy, sys\n"
             f"sys.argv = {[str(script), *map(str, args)]!r}\n"
             "try:\n"
             f"    runpy.run_path({str(script)!r}, run_name='__main__')\n"
             "except SystemExit as exit:\n"
             "    assert exit.code == 0, exit.code\n"
             "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
             "('tensorflow', 'tensorflow_serving', 'keras'))\n"
             "assert not heavy, heavy\n"
             "print('clean', sorted(m for m in sys.modules if m.startswith('serving.')))\n")
    result = subprocess.run([sys.executable, "-c", probe], cwd=cwd, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return result
