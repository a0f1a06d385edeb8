"""TF Serving's REST JSON for :classify and :regress: tf.Example features in, results out.

A body's `examples` (and optional `context`) become the `Input` of a ClassificationRequest or
RegressionRequest by field name only, so any wire-compatible message class works; JSON numbers
with a fraction become float_list, integers and booleans int64_list, strings and `{"b64": ...}`
bytes_list, as TF Serving reads them (json_tensor.cc). Replies are `{"results": ...}`.
"""

from __future__ import annotations

import json

import numpy as np

from serving.rest_json import is_b64, json_type, short, string_value
from serving.rest_json_reply import float_token
from serving.rpc import invalid


def examples_from_json(doc: dict, input_message) -> None:
    """Fill a tensorflow.serving.Input message from `examples` (and the optional `context`)."""
    examples = doc.get("examples")
    if examples is None:
        raise invalid(f"JSON Value: {short(doc)} When method is classify, key 'examples' is "
                      "expected and was not found")
    if not isinstance(examples, list):
        raise invalid(f"JSON Value: {short(doc)} Expecting 'examples' value to be an list/array")
    if not examples:
        raise invalid(f"JSON Value: {short(doc)} 'examples' value is an empty array")
    if "context" in doc:
        with_context = input_message.example_list_with_context
        fill_example(doc["context"], with_context.context)
        targets = with_context.examples
    else:
        targets = input_message.example_list.examples
    for example in examples:
        fill_example(example, targets.add())


def fill_example(obj, example) -> None:
    """One JSON object of features into a tf.Example message."""
    if not isinstance(obj, dict):
        raise invalid(f"Example must be JSON object but got JSON {json_type(obj)}")
    for name, content in obj.items():
        feature = example.features.feature[name]
        for value in content if isinstance(content, list) else [content]:
            _add_feature_value(name, value, feature)


def _add_feature_value(name: str, value, feature) -> None:
    if isinstance(value, int):  # booleans too: TF Serving stores them as 0 and 1
        kind, stored = "int64_list", int(value)
        if stored >= 1 << 63:
            raise invalid(f"Feature: {name} has uint64 element. Only int64 is supported.")
    elif isinstance(value, float):
        kind, stored = "float_list", value
        if np.isfinite(value) and abs(value) > np.finfo(np.float32).max:
            raise invalid(f"Cannot convert JSON value: {value} to float without loss of precision.")
    elif isinstance(value, str) or is_b64(value):
        kind, stored = "bytes_list", string_value(value)
    else:
        raise invalid(f"Feature: {name} has element with unexpected JSON type: {json_type(value)}")
    current = feature.WhichOneof("kind")
    if current not in (None, kind):
        raise invalid(f"Unexpected element type in feature: {name} expecting type: "
                      f"{current.split('_')[0]}")
    getattr(feature, kind).value.append(stored)


def classify_reply(result) -> bytes:
    """`{"results": [[[label, score], ...], ...]}` from a ClassificationResult."""
    if not len(result.classifications):
        raise invalid("Cannot convert empty ClassificationResults to JSON")
    rows = ["[" + ",".join(f"[{json.dumps(c.label)},{float_token(c.score)}]" for c in item.classes)
            + "]" for item in result.classifications]
    return ('{"results": [' + ",".join(rows) + "]}").encode()


def regress_reply(result) -> bytes:
    """`{"results": [value, ...]}` from a RegressionResult."""
    if not len(result.regressions):
        raise invalid("Cannot convert empty RegressionResults to JSON")
    values = ",".join(float_token(r.value) for r in result.regressions)
    return ('{"results": [' + values + "]}").encode()
