"""The TF-free prediction client for TF Serving: the library's public face and the standalone script.

Library: `PredictClient` (signatures, status, predict, batched predict, classify, regress over
gRPC) and what it returns; its REST twin is `serving.rest_client.RestPredictClient`.
Script: `python serving/client.py --target HOST:PORT --model NAME FILE ...` (see `--help`), the
same command and options as `kexport predict`.

Imports run one way: this module only re-exports. The client lives in `serving.grpc_client`
(with `serving.client_messages` and `serving.client_examples`), the job of reading files,
predicting in batches and rendering in `serving.predict_job`, and the command line in
`serving.predict_cli`, which the script imports only when it runs (a library user never loads
typer). Neither `tensorflow` nor `tensorflow_serving` is imported, so the client also works in a
process where TensorFlow is loaded.

As a script the file needs the `kexport` package importable (installed, as `pip install` and
`make install` leave it); Python puts `serving/` itself first on `sys.path`, and nothing
imported here uses a top-level name that one of its modules could shadow.
"""

from __future__ import annotations

import sys

from serving.client_examples import ExampleResults
from serving.client_messages import Prediction, VersionStatus, split_batches
from serving.grpc_client import PredictClient
from serving.signatures import Signature, SignatureTensor

__all__ = ["ExampleResults", "PredictClient", "Prediction", "Signature", "SignatureTensor",
           "VersionStatus", "main", "split_batches"]


def main(argv: list[str] | None = None) -> int:
    """Run the command-line client (`python serving/client.py --help`); returns the exit code."""
    from serving.predict_cli import run_script

    return run_script(argv)


if __name__ == "__main__":
    sys.exit(main())
