"""TF Serving's REST JSON rules at the conversion level: JSON values to tensors, tf.Example
features for classify/regress (checked by parsing them with TensorFlow, as a model would), and
the JSON replies, without a server."""

from __future__ import annotations

import json

import numpy as np
import pytest

from serving import rest_examples, rest_json, rest_json_reply, tensors
from serving.protos import predict_pb2, types_pb2
from serving.rpc import RpcFailure


def test_values_become_tensors_of_the_signature_dtype():
    cases = [
        ([[1, 2.5]], types_pb2.DT_FLOAT, np.float32, [[1.0, 2.5]]),
        ([1, 2], types_pb2.DT_INT64, np.int64, [1, 2]),
        ([True, False], types_pb2.DT_BOOL, np.bool_, [True, False]),
        (3.5, types_pb2.DT_DOUBLE, np.float64, 3.5),
    ]
    for value, dtype, numpy_type, expected in cases:
        arr = rest_json.json_to_array(value, dtype)
        assert arr.dtype == numpy_type and arr.tolist() == expected
    strings = rest_json.json_to_array([["a", {"b64": "AP8="}]], types_pb2.DT_STRING)
    assert strings.shape == (1, 2) and strings.tolist() == [[b"a", b"\x00\xff"]]


@pytest.mark.parametrize(("value", "dtype", "message"), [
    ([1.5], types_pb2.DT_INT32, "JSON Value: [1.5] Type: Array is not of expected type: int32"),
    (["x"], types_pb2.DT_FLOAT, "is not of expected type: float"),
    ([1e39], types_pb2.DT_FLOAT, ("Cannot convert JSON value: [1e+39] to float without loss of "
                                 "precision.")),
    ([16777217], types_pb2.DT_FLOAT, "to float without loss of precision"),
    ([[1], [2, 3]], types_pb2.DT_FLOAT, "not a rectangular list"),
    ([["a"], "b"], types_pb2.DT_STRING, "found at incorrect level"),
    ([{"b64": 1}], types_pb2.DT_STRING, "not formatted correctly for base64 data"),
    ([1], types_pb2.DT_STRING, "Type: Number is not of expected type: string"),
    ([256], types_pb2.DT_UINT8, "is not of expected type: uint8 (out of range)"),
    ([2 ** 31], types_pb2.DT_INT32, "is not of expected type: int32 (out of range)"),
])
def test_bad_values_are_refused_with_tf_serving_messages(value, dtype, message):
    with pytest.raises(RpcFailure) as caught:
        rest_json.json_to_array(value, dtype)
    assert caught.value.code.name == "INVALID_ARGUMENT" and message in caught.value.message


def test_row_and_column_requests_fill_typed_fields():
    request = predict_pb2.PredictRequest()
    dtypes = {"a": types_pb2.DT_FLOAT, "b": types_pb2.DT_STRING}
    fmt = rest_json.fill_predict_inputs(
        {"instances": [{"a": [1, 2], "b": "x"}, {"a": [3, 4], "b": {"b64": "eQ=="}}]}, dtypes,
        request)
    assert fmt == "row"
    assert tensors.shape_of(request.inputs["a"]) == [2, 2]
    assert list(request.inputs["a"].float_val) == [1, 2, 3, 4]  # typed fields, as TF Serving
    assert list(request.inputs["b"].string_val) == [b"x", b"y"]
    request = predict_pb2.PredictRequest()
    assert rest_json.fill_predict_inputs({"inputs": {"a": 7, "b": ["z"], "extra": 1}}, dtypes,
                                         request) == "columnar"
    assert tensors.shape_of(request.inputs["a"]) == [] and list(request.inputs["a"].float_val) \
        == [7]


def test_examples_become_tf_examples_tensorflow_parses():
    import tensorflow as tf
    from tensorflow_serving.apis import classification_pb2

    request = classification_pb2.ClassificationRequest()
    doc = {"context": {"user": "u1", "bias": 0.5},
           "examples": [{"x": 2.0, "ids": [1, 2], "flag": True, "raw": {"b64": "AAE="}},
                        {"x": [3.5, 4.0], "ids": 7, "flag": False, "raw": "t"}]}
    rest_examples.examples_from_json(doc, request.input)
    with_context = request.input.example_list_with_context
    assert len(with_context.examples) == 2
    spec = {"x": tf.io.VarLenFeature(tf.float32), "ids": tf.io.VarLenFeature(tf.int64),
            "flag": tf.io.FixedLenFeature([], tf.int64), "raw": tf.io.FixedLenFeature([], tf.string)}
    parsed = tf.io.parse_example([e.SerializeToString() for e in with_context.examples], spec)
    assert tf.sparse.to_dense(parsed["x"]).numpy().tolist() == [[2.0, 0.0], [3.5, 4.0]]
    assert tf.sparse.to_dense(parsed["ids"]).numpy().tolist() == [[1, 2], [7, 0]]
    assert parsed["flag"].numpy().tolist() == [1, 0]
    assert parsed["raw"].numpy().tolist() == [b"\x00\x01", b"t"]
    context = tf.io.parse_single_example(with_context.context.SerializeToString(), {
        "user": tf.io.FixedLenFeature([], tf.string), "bias": tf.io.FixedLenFeature([], tf.float32)})
    assert context["user"].numpy() == b"u1" and context["bias"].numpy() == 0.5
    plain = classification_pb2.ClassificationRequest()
    rest_examples.examples_from_json({"examples": [{"x": 2.0}]}, plain.input)
    assert plain.input.WhichOneof("kind") == "example_list"
    assert list(plain.input.example_list.examples[0].features.feature["x"].float_list.value) == [2]


@pytest.mark.parametrize(("doc", "message"), [
    ({}, "When method is classify, key 'examples' is expected and was not found"),
    ({"examples": {}}, "Expecting 'examples' value to be an list/array"),
    ({"examples": []}, "'examples' value is an empty array"),
    ({"examples": [1]}, "Example must be JSON object but got JSON Number"),
    ({"examples": [{"x": [1.5, 2]}]}, "Unexpected element type in feature: x expecting type: float"),
    ({"examples": [{"x": None}]}, "Feature: x has element with unexpected JSON type: Null"),
    ({"examples": [{"x": [[1]]}]}, "Feature: x has element with unexpected JSON type: Array"),
])
def test_bad_examples_are_refused(doc, message):
    from tensorflow_serving.apis import regression_pb2

    with pytest.raises(RpcFailure) as caught:
        rest_examples.examples_from_json(doc, regression_pb2.RegressionRequest().input)
    assert message in caught.value.message


def test_replies_are_tf_serving_json():
    y = np.array([[0.1], [np.nan], [np.inf]], np.float32)
    assert rest_json_reply.predict_reply({"y": y}, "row") == \
        b'{"predictions": [[0.1],[NaN],[Infinity]]}'
    both = rest_json_reply.predict_reply({"p": np.array([1, 2], np.int64),
                                    "q": np.array([[True], [False]])}, "row")
    assert json.loads(both) == {"predictions": [{"p": 1, "q": [True]}, {"p": 2, "q": [False]}]}
    assert json.loads(rest_json_reply.predict_reply({"p": np.array(3.0, np.float64),
                                               "t_bytes": np.array([b"\xff"], object)},
                                              "columnar")) == {
        "outputs": {"p": 3.0, "t_bytes": [{"b64": "/w=="}]}}
    with pytest.raises(RpcFailure, match="inconsistent batch size"):
        rest_json_reply.predict_reply({"a": np.zeros((2, 1)), "b": np.zeros((3, 1))}, "row")
    with pytest.raises(RpcFailure, match="has no shape information"):
        rest_json_reply.predict_reply({"a": np.array(1.0)}, "row")
