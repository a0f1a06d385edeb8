"""kexport's serving side: TF Serving bundles, a gRPC/REST client and a local model server.

The Python API:

- `build_bundle(out_dir, models)`: write or extend a TensorFlow Serving repository with
  models.config and a Dockerfile; returns the manifest. `check_bundle(out_dir)` re-checks one,
  `inspect_bundle(out_dir)` describes one.
- `PredictClient(target)`: predict, classify and regress against any TF Serving gRPC endpoint
  (TensorFlow-free).
- `serve(path, port=..., rest_port=...)`: serve a bundle until SIGTERM; `start_server` returns
  a `RunningServer` instead (for notebooks and tests); settings are `ServeOptions` fields.

Failures are `exporter.errors.KexportError` subclasses, `serving.errors.ServingError` (exit
code 4) for RPC and serving failures. Importing this package is cheap: the names are loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from exporter.lazy import lazy_attributes

# Public name -> the module that defines it, imported on first access (PEP 562).
_LAZY = {
    "build_bundle": "serving.api",
    "check_bundle": "serving.api",
    "inspect_bundle": "serving.api",
    "ModelSource": "serving.bundle_builder",
    "PredictClient": "serving.client",
    "Prediction": "serving.client",
    "serve": "serving.server",
    "start_server": "serving.server",
    "RunningServer": "serving.server",
    "ServeOptions": "serving.options",
    "ServingError": "serving.errors",
}

__all__ = [  # the lazy names, spelled out for linters and star-imports
    "ModelSource",
    "PredictClient",
    "Prediction",
    "RunningServer",
    "ServeOptions",
    "ServingError",
    "build_bundle",
    "check_bundle",
    "inspect_bundle",
    "serve",
    "start_server",
]

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ loads them
    from serving.api import build_bundle, check_bundle, inspect_bundle
    from serving.bundle_builder import ModelSource
    from serving.client import PredictClient, Prediction
    from serving.errors import ServingError
    from serving.options import ServeOptions
    from serving.server import RunningServer, serve, start_server


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
