"""tf.Example requests and results for the client (`PredictClient.classify`/`regress`, `kexport
predict --method classify|regress`), with TF Serving's REST JSON rules, which the REST API
(serving/rest_examples.py) applies on the server: a JSON number with a fraction is a float feature,
an integer (or boolean) an int64 feature, a string or `{"b64": ...}` a bytes feature.
TF-free.
"""

from __future__ import annotations

import json

from exporter.errors import BadInputError
from serving.protos import classification_pb2, regression_pb2
from serving.rpc import RpcFailure

REQUESTS = {"Classify": classification_pb2.ClassificationRequest,
            "Regress": regression_pb2.RegressionRequest}


def fill_input(model_input, examples: list, context: dict | None = None) -> None:
    """Fill a request's `input` with examples (dicts of feature -> value(s)), and a context
    merged into each.

    Raises:
        BadInputError: examples TF Serving's REST API would refuse, with its message.
    """
    from serving import rest_examples

    doc = {"examples": examples} if context is None else {"examples": examples, "context": context}
    try:
        rest_examples.examples_from_json(doc, model_input)
    except RpcFailure as failure:
        raise BadInputError(f"Invalid examples: {failure.message}") from None


def results_json(kind: str, result) -> list:
    """The `results` of a Classify or Regress result, as TF Serving's REST API gives them:
    per example [label, score] pairs, or one value per example."""
    from serving import rest_examples

    reply = (rest_examples.classify_reply(result) if kind == "Classify"
             else rest_examples.regress_reply(result))
    return json.loads(reply)["results"]
