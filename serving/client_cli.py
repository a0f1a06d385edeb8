"""The command line of the prediction client: `python serving/client.py` and `kexport predict`.

`run_predict` is the whole job (read files, predict in batches, render) for both front ends;
`main` is the standalone script's argparse front end. Errors become one line on stderr and the
exit code of the CLI contract (2 bad input, 4 serving/RPC failure), never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from exporter.errors import BadInputError, DestinationExistsError, KexportError
from serving.client import PredictClient, Prediction
from serving.outputs import load_labels, render


@dataclass
class PredictResult:
    """What `run_predict` did: the prediction and the text it renders to stdout."""

    prediction: Prediction
    text: str


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


def parse_named_input(text: str) -> tuple[str, str]:
    """Split `NAME=FILE` (from --input)."""
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise BadInputError(f"--input expects NAME=FILE, got '{text}'.")
    return name, path


def check_output(output: str, force: bool) -> None:
    """Refuse a bad --output before any work is done."""
    from pathlib import Path

    if output in ("json", "table"):
        return
    if not output.startswith("npz:"):
        raise BadInputError(f"Unknown --output '{output}'; expected json, table or npz:FILE.")
    if Path(output[4:]).exists() and not force:
        raise DestinationExistsError(f"{output[4:]} exists.", hint="Pass --force to overwrite it.")


def predict_files(client: PredictClient, model: str, *, files=(), named=(), preprocess="none",
                  batch_size: int = 32, concurrency: int = 4, progress=None,
                  **options) -> Prediction:
    """Read input files for a model's signature and predict them in concurrent batches.

    Args:
        client: an open `PredictClient`.
        model: model name.
        files: files for the single input, or .npz / JSON objects keyed by input name.
        named: (input name, file) pairs.
        preprocess: image preprocessing (`none`, `tf`, `caffe`, `torch`).
        batch_size, concurrency, progress: as for `PredictClient.predict_batched`.
        **options: signature, version, label, output_filter.
    """
    from serving.inputs import load_inputs  # Pillow and friends only when files are read

    spec = client.signature(model, options.get("signature"), version=options.get("version"),
                            label=options.get("label"))
    arrays = load_inputs(spec, files, named, preprocess)
    return client.predict_batched(model, arrays, batch_size=batch_size, concurrency=concurrency,
                                  progress=progress, **options)


def run_predict(target: str, model: str, *, files=(), inputs=(), signature: str | None = None,
                version: int | None = None, label: str | None = None, batch_size: int = 32,
                concurrency: int = 4, timeout: float = 10.0, tls: bool = False,
                ca_cert: str | None = None, output: str = "json", top: int | None = None,
                labels: str | None = None, preprocess: str = "none", force: bool = False,
                progress=None, rest: str | None = None) -> PredictResult:
    """Predict files on a TF Serving endpoint and render the outputs.

    Args:
        target: HOST:PORT.
        model: model name.
        files: positional files (see `serving.inputs.load_inputs`).
        inputs: `NAME=FILE` strings.
        signature, version, label: which signature and model version (version and label exclude
            each other; neither means the latest).
        batch_size, concurrency: examples per request, requests in flight.
        timeout: seconds for the connection and for each request.
        tls, ca_cert: TLS, and a PEM file of trusted roots.
        output: `json`, `table` or `npz:FILE`.
        top, labels: show the top-K classes, named from a labels file.
        preprocess: image preprocessing mode.
        force: overwrite an existing npz file.
        progress: called as progress(done, total) after each batch.
        rest: a REST base URL (http://HOST:8501): use TF Serving's REST API instead of gRPC at
            `target`, with the same outputs and errors.

    Raises:
        BadInputError: bad options or input files (exit 2).
        ServingError: the server is unreachable or refused the request (exit 4).
    """
    named = [parse_named_input(text) for text in inputs]
    check_output(output, force)
    class_names = load_labels(labels) if labels else None
    if version is not None and label:
        raise BadInputError("--version and --label exclude each other; pass one.")
    if rest:
        from serving.rest_client import RestPredictClient

        client_type, target = RestPredictClient, rest
    else:
        client_type = PredictClient
    with client_type(target, timeout=timeout, tls=tls, ca_cert=ca_cert) as client:
        prediction = predict_files(client, model, files=files, named=named, preprocess=preprocess,
                                   batch_size=batch_size, concurrency=concurrency,
                                   progress=progress, signature=signature, version=version,
                                   label=label)
    text = render(prediction.outputs, output, top=top, labels=class_names, force=force)
    return PredictResult(prediction, text)


METHODS = ("predict", "classify", "regress")


def read_examples(files) -> tuple[list, dict | None]:
    """Examples from JSON files: each a list of {feature: value(s)} objects, or a REST body
    {"examples": [...], "context": {...}}; the examples of all files in order, and the context.

    Raises:
        BadInputError: unreadable files, no examples, or files with different contexts.
    """
    import json

    examples, contexts = [], []
    for path in files:
        try:
            with open(path, encoding="utf-8") as handle:
                body = json.load(handle)
        except (OSError, ValueError) as err:
            raise BadInputError(f"Cannot read examples from {path}: {err}") from None
        if isinstance(body, dict):
            contexts.append(body.get("context"))
            body = body.get("examples")
        if not isinstance(body, list):
            raise BadInputError(f"{path} must hold a list of examples or an object with an "
                                "'examples' list, as TF Serving's REST :classify takes.")
        examples.extend(body)
    if not examples:
        raise BadInputError("No examples given: pass JSON files of tf.Example features.")
    distinct = {json.dumps(c, sort_keys=True) for c in contexts if c is not None}
    if len(distinct) > 1:
        raise BadInputError("The files give different contexts; one request has one context.")
    return examples, next((c for c in contexts if c is not None), None)


def run_examples(target: str, model: str, method: str, files, *, signature: str | None = None,
                 version: int | None = None, label: str | None = None, timeout: float = 10.0,
                 tls: bool = False, ca_cert: str | None = None, rest: str | None = None):
    """Classify or regress the examples of JSON files, over gRPC or (with `rest`, a base URL)
    TF Serving's REST API; return (ExampleResults, JSON text in TF Serving's REST shape
    `{"results": ...}`).

    Raises:
        BadInputError: bad options or files (exit 2).
        ServingError: the server is unreachable or refused the request (exit 4).
    """
    import json

    if method not in ("classify", "regress"):
        raise BadInputError(f"Unknown --method '{method}'; expected one of {', '.join(METHODS)}.")
    if version is not None and label:
        raise BadInputError("--version and --label exclude each other; pass one.")
    examples, context = read_examples(files)
    client_type = PredictClient
    if rest:
        from serving.rest_client import RestPredictClient

        client_type, target = RestPredictClient, rest
    with client_type(target, timeout=timeout, tls=tls, ca_cert=ca_cert) as client:
        call = client.classify if method == "classify" else client.regress
        answer = call(model, examples, context=context, signature=signature, version=version,
                      label=label)
    return answer, json.dumps({"results": answer.results})


def describe(prediction) -> str:
    """One human line about who answered, for stderr."""
    if not hasattr(prediction, "versions"):  # a Classify/Regress answer
        return (f"model {prediction.model} version {prediction.version or '?'} "
                f"signature {prediction.signature}")
    versions = sorted(prediction.versions)
    which = ", ".join(map(str, versions)) if versions else "?"
    return f"model {prediction.model} version {which} signature {prediction.signature}"


def build_parser() -> argparse.ArgumentParser:
    """The script's options; `kexport predict` declares the same ones."""
    parser = argparse.ArgumentParser(
        prog="client.py", description="Send predictions to a TF Serving gRPC endpoint, or its "
        "REST API with --rest (no TensorFlow needed). Outputs go to stdout as JSON by default.")
    parser.add_argument("files", nargs="*", metavar="FILE",
                        help="inputs: .npy, .npz, .json or images; many files are batched")
    parser.add_argument("--target", default="localhost:8500", help="HOST:PORT (localhost:8500)")
    parser.add_argument("--rest", metavar="URL", help="use TF Serving's REST API at URL "
                        "(http://HOST:8501) instead of gRPC")
    parser.add_argument("--model", required=True, help="model name")
    parser.add_argument("--signature", help="signature name (serving_default)")
    parser.add_argument("--method", choices=METHODS, default="predict",
                        help="predict (tensors), or classify/regress (FILEs of tf.Example "
                        "features as JSON)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--version", type=int, help="model version (default: latest)")
    which.add_argument("--label", help="model version label, e.g. stable")
    parser.add_argument("--input", action="append", default=[], metavar="NAME=FILE",
                        help="a file for one named input (repeatable)")
    parser.add_argument("--batch-size", type=int, default=32, help="examples per request (32)")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight (4)")
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="seconds to connect and per request (10)")
    parser.add_argument("--tls", action="store_true", help="connect with TLS")
    parser.add_argument("--ca-cert", metavar="FILE", help="PEM file of trusted roots for TLS")
    parser.add_argument("--output", default="json", metavar="json|table|npz:FILE",
                        help="how to give the outputs (json)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing npz file")
    parser.add_argument("--top", type=int, metavar="K", help="show the K best classes")
    parser.add_argument("--labels", metavar="FILE", help="class names: one per line, or "
                        "Keras's imagenet_class_index.json")
    parser.add_argument("--preprocess", choices=["none", "tf", "caffe", "torch"], default="none",
                        help="image preprocessing, as keras.applications preprocess_input")
    return parser


def main(argv: list[str] | None = None) -> int:
    """The script: parse options, run, print; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.method != "predict":
        return _examples_main(parser, args)
    try:
        result = run_predict(
            args.target, args.model, files=args.files, inputs=args.input,
            signature=args.signature, version=args.version, label=args.label,
            batch_size=args.batch_size, concurrency=args.concurrency, timeout=args.timeout,
            tls=args.tls, ca_cert=args.ca_cert, output=args.output, top=args.top,
            labels=args.labels, preprocess=args.preprocess, force=args.force,
            progress=ProgressPrinter(), rest=args.rest)
    except KexportError as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130
    print(describe(result.prediction), file=sys.stderr)
    if result.text:
        print(result.text)
    elif args.output.startswith("npz:"):
        print(f"wrote {args.output[4:]}", file=sys.stderr)
    return 0


def _examples_main(parser: argparse.ArgumentParser, args) -> int:
    try:
        answer, text = run_examples(args.target, args.model, args.method, args.files,
                                    signature=args.signature, version=args.version,
                                    label=args.label, timeout=args.timeout, tls=args.tls,
                                    ca_cert=args.ca_cert, rest=args.rest)
    except KexportError as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return err.exit_code
    print(describe(answer), file=sys.stderr)
    print(text)
    return 0
