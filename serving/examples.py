"""tf.Example requests and results as plain Python, without TensorFlow: what the client, `kexport
predict --method classify|regress` and the REST API (`:classify`, `:regress`) share.

Feature values follow TF Serving's JSON rules for examples: a string is a bytes feature
(`{"b64": "..."}` for binary), an integer an int64 feature, a number with a fraction a float
feature; a list takes the kind of its elements (floats win over integers).
"""

from __future__ import annotations

import base64
import binascii
import numbers

from exporter.errors import BadInputError
from serving.protos import classification_pb2, example_pb2, input_pb2, regression_pb2

__all__ = ["REQUESTS", "classification_lists", "example", "fill_input", "input_from_json",
           "regression_list", "results_json"]

REQUESTS = {"Classify": classification_pb2.ClassificationRequest,
            "Regress": regression_pb2.RegressionRequest}


def example(features: dict) -> example_pb2.Example:
    """A tf.Example from {feature name: value or list of values}.

    Raises:
        BadInputError: a value that is not a number, a string, bytes or {"b64": ...}.
    """
    if not isinstance(features, dict):
        raise BadInputError(f"An example must be an object of feature name -> value(s), got "
                            f"{type(features).__name__}.")
    message = example_pb2.Example()
    for name, value in features.items():
        _fill_feature(message.features.feature[name], name, value)
    return message


def fill_input(model_input: input_pb2.Input, examples: list, context: dict | None = None) -> None:
    """Fill a request's `input` with examples (dicts), and a context merged into each."""
    if not isinstance(examples, list):
        raise BadInputError(f"'examples' must be a list of objects, got {type(examples).__name__}.")
    if context is None:
        listed = model_input.example_list.examples
    else:
        target = model_input.example_list_with_context
        target.context.CopyFrom(example(context))
        listed = target.examples
    for features in examples:
        listed.append(example(features))


def input_from_json(body: dict, model_input: input_pb2.Input) -> None:
    """Fill `model_input` from a REST `:classify`/`:regress` body (`examples`, `context`)."""
    if not isinstance(body, dict) or "examples" not in body:
        raise BadInputError("The request must be a JSON object with an 'examples' list.")
    context = body.get("context")
    if context is not None and not isinstance(context, dict):
        raise BadInputError("'context' must be an object of feature name -> value(s).")
    fill_input(model_input, body["examples"], context)


def classification_lists(result) -> list[list[list]]:
    """A ClassificationResult as TF Serving's REST `results`: per example, [label, score] pairs."""
    return [[[c.label, c.score] for c in entry.classes] for entry in result.classifications]


def regression_list(result) -> list[float]:
    """A RegressionResult as TF Serving's REST `results`: one value per example."""
    return [r.value for r in result.regressions]


def results_json(kind: str, result) -> list:
    """The `results` of a Classify or Regress result, as TF Serving's REST API gives them."""
    return classification_lists(result) if kind == "Classify" else regression_list(result)


def _fill_feature(feature, name: str, value) -> None:
    values = value if isinstance(value, list) else [value]
    kinds = {_kind(name, v) for v in values}
    if not values:
        raise BadInputError(f"Feature '{name}' has no values.")
    if kinds == {"bytes"}:
        feature.bytes_list.value.extend(_bytes(v) for v in values)
    elif kinds == {"int64"}:
        feature.int64_list.value.extend(int(v) for v in values)
    elif kinds <= {"int64", "float"}:
        feature.float_list.value.extend(float(v) for v in values)
    else:
        raise BadInputError(f"Feature '{name}' mixes strings and numbers: {value!r}.")


def _kind(name: str, value) -> str:
    if isinstance(value, (str, bytes)) or (isinstance(value, dict) and set(value) == {"b64"}):
        return "bytes"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise BadInputError(f"Feature '{name}' holds {value!r}; expected numbers, strings or "
                            '{"b64": "..."}.')
    return "int64" if isinstance(value, numbers.Integral) else "float"


def _bytes(value) -> bytes:
    if isinstance(value, dict):
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise BadInputError(f"Invalid base64 in {value!r}.") from None
    return value.encode("utf-8") if isinstance(value, str) else value
