"""The `predict` job of both front ends (`kexport predict` and `python serving/client.py`):
read input files, predict them in batches over gRPC or REST, render the outputs; and classify or
regress JSON files of tf.Examples.

TF-free library code: it raises KexportError subclasses (BadInputError exit 2, ServingError
exit 4), which the front ends in `serving.predict_cli` render as one line.
"""

from __future__ import annotations

from dataclasses import dataclass

from exporter.errors import BadInputError, DestinationExistsError
from serving.client_messages import Prediction, check_version_choice
from serving.grpc_client import PredictClient
from serving.predict_inputs import check_preprocess, load_inputs
from serving.predict_outputs import load_labels, render


@dataclass
class PredictResult:
    """What `run_predict` did: the prediction and the text it renders to stdout."""

    prediction: Prediction
    text: str


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


def open_client(target: str, rest: str | None = None, **options) -> PredictClient:
    """A gRPC client of `target` (HOST:PORT), or with `rest` (a base URL, http://HOST:8501) a
    REST client of that URL; `options` are timeout, tls and ca_cert."""
    if rest:
        from serving.rest_client import RestPredictClient  # http.client and ssl only for REST

        return RestPredictClient(rest, **options)
    return PredictClient(target, **options)


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
        files: positional files (see `serving.predict_inputs.load_inputs`).
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
    check_preprocess(preprocess)
    check_version_choice(version, label)
    class_names = load_labels(labels) if labels else None
    with open_client(target, rest, timeout=timeout, tls=tls, ca_cert=ca_cert) as client:
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
    check_version_choice(version, label)
    examples, context = read_examples(files)
    with open_client(target, rest, timeout=timeout, tls=tls, ca_cert=ca_cert) as client:
        call = client.classify if method == "classify" else client.regress
        answer = call(model, examples, context=context, signature=signature, version=version,
                      label=label)
    return answer, json.dumps({"results": answer.results})
