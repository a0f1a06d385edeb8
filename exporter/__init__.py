"""kexport: convert, slice, verify and serve trained Keras models.

The Python API (each function is what the `kexport` command of the same verb calls):

- `inspect_artifact(path)`: describe a model file, as `kexport inspect --json` prints it.
- `convert_model(source, destination, to=...)`: convert, verify, publish atomically;
  returns a `ConvertResult`.
- `slice_model(source, destination, outputs, inputs)`: cut a sub-model at named layers;
  returns a `SliceResult`.
- `verify_models(reference, candidate)`: compare two models' outputs; returns a
  `VerificationReport`.

The serving side (`build_bundle`, `PredictClient`, `serve`) lives in the `serving` package.

Errors: every failure is a `KexportError` (exporter.errors), each subclass carrying the CLI's
exit code:

- `BadInputError` (2): missing, unreadable or inconsistent input, a wrong option; its
  subclasses `FormatError`, `IncompatibleWeightsError`, `UnknownLayerError`,
  `DestinationExistsError` and `MissingDependencyError`.
- `VerificationError` (1): two models computed different outputs; `.report` holds the report.
- `UnsafeArtifactError` (3): the artifact carries code and `unsafe=True` was not given.
- `serving.errors.ServingError` (4): a serving or RPC failure, raised by the `serving` package.

Importing this package is cheap (no TensorFlow): the names above are loaded on first use, and
the heavy modules are imported by the functions that need them, so `kexport --help` and
`inspect` of a config file answer quickly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from exporter.lazy import lazy_attributes

__version__ = "0.1.0"

# Public name -> the module that defines it, imported on first access (PEP 562).
_LAZY = {
    "inspect_artifact": "exporter.api",
    "convert_model": "exporter.api",
    "slice_model": "exporter.api",
    "verify_models": "exporter.api",
    "ConvertResult": "exporter.convert",
    "SliceResult": "exporter.slice_artifact",
    "VerificationReport": "exporter.verify",
    "OutputComparison": "exporter.verify",
    "KexportError": "exporter.errors",
    "BadInputError": "exporter.errors",
    "FormatError": "exporter.errors",
    "IncompatibleWeightsError": "exporter.errors",
    "UnknownLayerError": "exporter.errors",
    "DestinationExistsError": "exporter.errors",
    "MissingDependencyError": "exporter.errors",
    "UnsafeArtifactError": "exporter.errors",
    "VerificationError": "exporter.errors",
}

__all__ = [  # the lazy names, spelled out for linters and star-imports
    "BadInputError",
    "ConvertResult",
    "DestinationExistsError",
    "FormatError",
    "IncompatibleWeightsError",
    "KexportError",
    "MissingDependencyError",
    "OutputComparison",
    "SliceResult",
    "UnknownLayerError",
    "UnsafeArtifactError",
    "VerificationError",
    "VerificationReport",
    "__version__",
    "convert_model",
    "inspect_artifact",
    "slice_model",
    "verify_models",
]

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ loads them
    from exporter.api import convert_model, inspect_artifact, slice_model, verify_models
    from exporter.convert import ConvertResult
    from exporter.errors import (
        BadInputError,
        DestinationExistsError,
        FormatError,
        IncompatibleWeightsError,
        KexportError,
        MissingDependencyError,
        UnknownLayerError,
        UnsafeArtifactError,
        VerificationError,
    )
    from exporter.slice_artifact import SliceResult
    from exporter.verify import OutputComparison, VerificationReport


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
