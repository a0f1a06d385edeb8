"""One exception hierarchy for kexport, rendered once at the CLI edge.

Every error carries the exit code of the CLI contract (DESIGN.md) and a one-line message that says
what happened, what was expected and how to fix it. The CLI prints `str(error)` and exits with
`error.exit_code`; `--debug` adds the traceback. Nothing in the library prints or exits.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

EXIT_OK = 0
EXIT_VERIFY_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_UNSAFE = 3
EXIT_SERVING = 4


class KexportError(Exception):
    """Base class: a failure the user can act on, with its exit code."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, message: str, *, hint: str | None = None):
        self.message = message
        self.hint = hint
        super().__init__(message if not hint else f"{message} {hint}")


class BadInputError(KexportError):
    """Missing, unreadable, corrupt or inconsistent input; a wrong option (exit 2)."""


class FormatError(BadInputError):
    """The file is not in a format kexport knows, or not in the one asked for (exit 2)."""


class IncompatibleWeightsError(BadInputError):
    """A weights file that does not fit the architecture (exit 2)."""


class UnknownLayerError(BadInputError):
    """A layer class or layer name that does not exist (exit 2)."""


class DestinationExistsError(BadInputError):
    """The output exists and `--force` was not given (exit 2)."""


class UnsafeArtifactError(KexportError):
    """The artifact carries code (Lambda bytecode, python tags) and `--unsafe` was not given."""

    exit_code = EXIT_UNSAFE


class VerificationError(KexportError):
    """Two models computed different outputs (exit 1). Carries the structured report."""

    exit_code = EXIT_VERIFY_FAILED

    def __init__(self, message: str, *, report=None, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.report = report


class MissingDependencyError(BadInputError):
    """The command needs an optional dependency this install lacks (exit 2)."""


# Top-level modules of the optional extras, and the extra that brings each (pyproject.toml).
EXTRA_OF_MODULE = {"tensorflow": "tf", "keras": "tf", "tf_keras": "tf", "tensorflow_serving": "tf",
                   "prometheus_client": "tf"}


def missing_dependency(error: ModuleNotFoundError) -> MissingDependencyError | None:
    """The one-line error for an optional module that is not installed, or None for others."""
    module = (error.name or "").split(".")[0]
    extra = EXTRA_OF_MODULE.get(module)
    if extra is None:
        return None
    return MissingDependencyError(
        f"this command needs {module}, which is not installed: this is kexport's base install "
        "(predict, the client, inspect of HDF5/.keras/JSON/YAML files and bundles).",
        hint=f"Install the TensorFlow extra: pip install 'kexport[{extra}]'.",
    )


def closest_names(word: str, choices: Iterable[str], limit: int = 3) -> list[str]:
    """The choices that look most like `word` (typos, case), best first."""
    return difflib.get_close_matches(word, list(choices), n=limit, cutoff=0.6)


def did_you_mean(word: str, choices: Iterable[str], limit: int = 3) -> str:
    """Return ' Did you mean: a, b?' for the closest choices, or '' when none is close."""
    matches = closest_names(word, choices, limit)
    return f" Did you mean: {', '.join(matches)}?" if matches else ""
