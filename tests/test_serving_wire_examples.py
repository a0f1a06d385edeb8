"""Byte-level compatibility of the private Classify/Regress/MultiInference/tf.Example protos with
TensorFlow's and TF Serving's own definitions."""

from __future__ import annotations

from serving.protos import (
    classification_pb2,
    example_pb2,
    inference_pb2,
    input_pb2,
    prediction_log_pb2,
    regression_pb2,
    server_config_pb2,
)
from serving.tf_examples import fill_input


def _fields(descriptor):
    return {f.number: (f.name, f.type, f.is_repeated) for f in descriptor.fields}


def test_private_messages_have_tf_serving_field_numbers():
    from tensorflow.core.example import example_pb2 as tf_example
    from tensorflow.core.example import feature_pb2 as tf_feature
    from tensorflow_serving.apis import classification_pb2 as tfs_cls
    from tensorflow_serving.apis import inference_pb2 as tfs_inf
    from tensorflow_serving.apis import input_pb2 as tfs_input
    from tensorflow_serving.apis import prediction_log_pb2 as tfs_log
    from tensorflow_serving.apis import regression_pb2 as tfs_reg

    pairs = [
        (example_pb2.Example, tf_example.Example), (example_pb2.Features, tf_feature.Features),
        (example_pb2.Feature, tf_feature.Feature), (example_pb2.FloatList, tf_feature.FloatList),
        (example_pb2.Int64List, tf_feature.Int64List), (example_pb2.BytesList, tf_feature.BytesList),
        (input_pb2.Input, tfs_input.Input), (input_pb2.ExampleList, tfs_input.ExampleList),
        (input_pb2.ExampleListWithContext, tfs_input.ExampleListWithContext),
        (classification_pb2.Class, tfs_cls.Class),
        (classification_pb2.Classifications, tfs_cls.Classifications),
        (classification_pb2.ClassificationResult, tfs_cls.ClassificationResult),
        (classification_pb2.ClassificationRequest, tfs_cls.ClassificationRequest),
        (classification_pb2.ClassificationResponse, tfs_cls.ClassificationResponse),
        (regression_pb2.Regression, tfs_reg.Regression),
        (regression_pb2.RegressionResult, tfs_reg.RegressionResult),
        (regression_pb2.RegressionRequest, tfs_reg.RegressionRequest),
        (regression_pb2.RegressionResponse, tfs_reg.RegressionResponse),
        (inference_pb2.InferenceTask, tfs_inf.InferenceTask),
        (inference_pb2.InferenceResult, tfs_inf.InferenceResult),
        (inference_pb2.MultiInferenceRequest, tfs_inf.MultiInferenceRequest),
        (inference_pb2.MultiInferenceResponse, tfs_inf.MultiInferenceResponse),
        (prediction_log_pb2.PredictionLog, tfs_log.PredictionLog),
        (prediction_log_pb2.ClassifyLog, tfs_log.ClassifyLog),
        (prediction_log_pb2.RegressLog, tfs_log.RegressLog),
        (prediction_log_pb2.MultiInferenceLog, tfs_log.MultiInferenceLog),
    ]
    for ours, theirs in pairs:
        mine, official = _fields(ours.DESCRIPTOR), _fields(theirs.DESCRIPTOR)
        for number, spec in mine.items():
            assert official[number] == spec, (ours.DESCRIPTOR.full_name, number)


def test_tf_serving_reads_our_classification_request():
    import tensorflow as tf
    from tensorflow_serving.apis import classification_pb2 as tfs_cls

    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "m"
    fill_input(request.input, [{"x": 2.0, "tag": "a"}, {"n": [1, 2]}], context={"c": 7})
    official = tfs_cls.ClassificationRequest.FromString(request.SerializeToString())
    listed = official.input.example_list_with_context
    assert official.model_spec.name == "m"
    assert list(listed.examples[0].features.feature["x"].float_list.value) == [2.0]
    assert list(listed.examples[1].features.feature["n"].int64_list.value) == [1, 2]
    assert list(listed.context.features.feature["c"].int64_list.value) == [7]
    parsed = tf.io.parse_single_example(listed.examples[0].SerializeToString(), {
        "x": tf.io.FixedLenFeature([1], tf.float32), "tag": tf.io.FixedLenFeature([1], tf.string)})
    assert parsed["x"].numpy().tolist() == [2.0] and parsed["tag"].numpy().tolist() == [b"a"]


def test_we_read_tf_examples_and_tf_serving_results():
    import tensorflow as tf
    from tensorflow_serving.apis import regression_pb2 as tfs_reg

    written = tf.train.Example(features=tf.train.Features(feature={
        "x": tf.train.Feature(float_list=tf.train.FloatList(value=[1.5]))}))
    ours = example_pb2.Example.FromString(written.SerializeToString())
    mine = regression_pb2.RegressionRequest()
    fill_input(mine.input, [{"x": 1.5}])
    assert ours == mine.input.example_list.examples[0]
    response = tfs_reg.RegressionResponse()
    response.result.regressions.add(value=3.0)
    response.model_spec.version.value = 7
    back = regression_pb2.RegressionResponse.FromString(response.SerializeToString())
    assert [r.value for r in back.result.regressions] == [3.0] and back.model_spec.version.value == 7


def test_batching_parameters_match_session_bundle_config():
    # tensorflow-serving-api does not ship BatchingParameters; its numbers, from
    # tensorflow_serving/servables/tensorflow/session_bundle_config.proto:
    expected = {1: "max_batch_size", 2: "batch_timeout_micros", 3: "max_enqueued_batches",
                4: "num_batch_threads", 5: "thread_pool_name", 6: "allowed_batch_sizes",
                7: "pad_variable_length_inputs"}
    fields = server_config_pb2.BatchingParameters.DESCRIPTOR.fields_by_number
    assert {number: fields[number].name for number in expected} == expected
    wrappers = {fields[n].name: fields[n].message_type.full_name for n in expected
                if fields[n].message_type}
    assert wrappers == {name: "google.protobuf.Int64Value" for name in expected.values()
                        if name not in ("thread_pool_name", "allowed_batch_sizes",
                                        "pad_variable_length_inputs")} | {
        "thread_pool_name": "google.protobuf.StringValue"}
    assert fields[6].is_repeated and fields[7].type == fields[7].TYPE_BOOL
