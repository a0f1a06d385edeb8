"""The TF-free wire layer: TensorProto <-> numpy, lossless casts, and byte-level compatibility of
the private `kexport.tfs` protos with TensorFlow's and TF Serving's own."""

from __future__ import annotations

import numpy as np
import pytest

from exporter.errors import BadInputError
from serving import tensors
from serving.lossless_cast import cast_lossless
from serving.protos import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    meta_graph_pb2,
    predict_pb2,
    prediction_log_pb2,
    tensor_pb2,
    types_pb2,
)

ROUND_TRIP = [
    np.arange(6, dtype=np.float32).reshape(2, 3),
    np.array([0.1, -2.5e300, np.inf], dtype=np.float64),
    np.array([1.5, -2.0], dtype=np.float16),
    np.array([-128, 0, 127], dtype=np.int8),
    np.array([-3, 30000], dtype=np.int16),
    np.array([[1, -2], [3, 2**31 - 1]], dtype=np.int32),
    np.array([-(2**62), 2**40], dtype=np.int64),
    np.array([0, 255], dtype=np.uint8),
    np.array([65535], dtype=np.uint16),
    np.array([2**32 - 1], dtype=np.uint32),
    np.array([2**64 - 1], dtype=np.uint64),
    np.array([[True, False]]),
    np.array([1 + 2j, -3.5j], dtype=np.complex64),
    np.array([1 + 2j], dtype=np.complex128),
    np.zeros((0, 3), dtype=np.float32),
    np.array(7.0, dtype=np.float32),
]


@pytest.mark.parametrize("tensor_content", [True, False], ids=["tensor_content", "typed"])
@pytest.mark.parametrize("arr", ROUND_TRIP, ids=lambda a: f"{a.dtype}{list(a.shape)}")
def test_round_trip_every_dtype(arr, tensor_content):
    proto = tensors.to_tensor_proto(arr, tensor_content=tensor_content)
    wire = tensor_pb2.TensorProto.FromString(proto.SerializeToString())
    assert bool(wire.tensor_content) == (tensor_content and arr.size > 0)
    back = tensors.to_ndarray(wire)
    assert back.dtype == arr.dtype and back.shape == arr.shape
    np.testing.assert_array_equal(back, arr)


def test_strings_use_string_val_and_decode_to_bytes():
    proto = tensors.to_tensor_proto(np.array(["a", "bé"]))
    assert proto.dtype == types_pb2.DT_STRING and not proto.tensor_content
    assert list(proto.string_val) == [b"a", "bé".encode()]
    assert tensors.to_ndarray(proto).tolist() == [b"a", "bé".encode()]


def test_short_typed_field_is_padded_with_its_last_value():
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[7.0])
    proto.tensor_shape.dim.add().size = 3
    np.testing.assert_array_equal(tensors.to_ndarray(proto), [7.0, 7.0, 7.0])
    proto.ClearField("float_val")
    np.testing.assert_array_equal(tensors.to_ndarray(proto), [0.0, 0.0, 0.0])


def test_inconsistent_tensors_are_refused():
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[1, 2, 3])
    proto.tensor_shape.dim.add().size = 2
    with pytest.raises(BadInputError, match="holds 2 values, but 3 were sent"):
        tensors.to_ndarray(proto)
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_content=b"\0" * 5)
    with pytest.raises(BadInputError, match="5 bytes"):
        tensors.to_ndarray(proto)
    with pytest.raises(BadInputError, match="resource"):
        tensors.to_ndarray(tensor_pb2.TensorProto(dtype=types_pb2.DT_RESOURCE))


def test_dtype_names_follow_tensorflow():
    assert tensors.dtype_name(types_pb2.DT_FLOAT) == "float"
    assert tensors.dtype_name(types_pb2.DT_STRING) == "string"
    assert tensors.dtype_name(types_pb2.DT_HALF) == "half"
    assert tensors.dtype_from_numpy(np.dtype("<U3")) == types_pb2.DT_STRING


@pytest.mark.parametrize("values, dtype, expected", [
    ([1.0, 2.0], types_pb2.DT_INT32, np.array([1, 2], np.int32)),
    ([0.1, 2.5], types_pb2.DT_FLOAT, np.array([0.1, 2.5], np.float32)),
    ([1, 0], types_pb2.DT_BOOL, np.array([True, False])),
    ([255], types_pb2.DT_UINT8, np.array([255], np.uint8)),
    ([True], types_pb2.DT_FLOAT, np.array([1.0], np.float32)),
    (["a"], types_pb2.DT_STRING, np.array([b"a"], object)),
])
def test_lossless_casts_are_done(values, dtype, expected):
    out = cast_lossless(np.asarray(values), dtype, "x")
    assert out.dtype == expected.dtype
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("values, dtype, reason", [
    ([1.5], types_pb2.DT_INT32, "non-integer values \\(e.g. 1.5\\)"),
    ([300], types_pb2.DT_UINT8, "value 300 outside uint8's range 0..255"),
    ([2], types_pb2.DT_BOOL, "only 0 and 1"),
    ([2**25 + 1], types_pb2.DT_FLOAT, "lose precision in float32"),
    ([1e300], types_pb2.DT_FLOAT, "overflows float32"),
    (["x"], types_pb2.DT_FLOAT, "holds text"),
    ([1.0], types_pb2.DT_STRING, "holds float64 values"),
    ([np.nan], types_pb2.DT_INT64, "NaN or infinity"),
])
def test_lossy_casts_say_why(values, dtype, reason):
    with pytest.raises(BadInputError, match=f"Input 'x'.*{reason}") as err:
        cast_lossless(np.asarray(values), dtype, "x")
    assert err.value.exit_code == 2


# --- wire compatibility with TensorFlow's own definitions ---------------------------------------

def _fields(descriptor):
    return {f.number: (f.name, f.type, f.is_repeated) for f in descriptor.fields}


def test_private_messages_have_tensorflow_field_numbers():
    from tensorflow.core.framework import tensor_pb2 as tf_tensor
    from tensorflow.core.framework import types_pb2 as tf_types
    from tensorflow.core.protobuf import meta_graph_pb2 as tf_meta
    from tensorflow_serving.apis import get_model_metadata_pb2 as tfs_meta
    from tensorflow_serving.apis import get_model_status_pb2 as tfs_status
    from tensorflow_serving.apis import predict_pb2 as tfs_predict
    from tensorflow_serving.apis import prediction_log_pb2 as tfs_log

    pairs = [
        (tensor_pb2.TensorProto, tf_tensor.TensorProto),
        (tensor_pb2.TensorProto.DESCRIPTOR.fields_by_name["tensor_shape"].message_type,
         tf_tensor.TensorProto.DESCRIPTOR.fields_by_name["tensor_shape"].message_type),
        (meta_graph_pb2.SignatureDef, tf_meta.SignatureDef),
        (meta_graph_pb2.TensorInfo, tf_meta.TensorInfo),
        (predict_pb2.PredictRequest, tfs_predict.PredictRequest),
        (predict_pb2.PredictResponse, tfs_predict.PredictResponse),
        (get_model_metadata_pb2.GetModelMetadataRequest, tfs_meta.GetModelMetadataRequest),
        (get_model_metadata_pb2.GetModelMetadataResponse, tfs_meta.GetModelMetadataResponse),
        (get_model_metadata_pb2.SignatureDefMap, tfs_meta.SignatureDefMap),
        (get_model_status_pb2.GetModelStatusRequest, tfs_status.GetModelStatusRequest),
        (get_model_status_pb2.ModelVersionStatus, tfs_status.ModelVersionStatus),
        (get_model_status_pb2.GetModelStatusResponse, tfs_status.GetModelStatusResponse),
        (predict_pb2.PredictRequest.DESCRIPTOR.fields_by_name["model_spec"].message_type,
         tfs_predict.PredictRequest.DESCRIPTOR.fields_by_name["model_spec"].message_type),
        (prediction_log_pb2.PredictLog, tfs_log.PredictLog),
    ]
    for ours, theirs in pairs:
        ours = getattr(ours, "DESCRIPTOR", ours)
        theirs = getattr(theirs, "DESCRIPTOR", theirs)
        mine, official = _fields(ours), _fields(theirs)
        for number, spec in mine.items():
            assert official[number] == spec, (ours.full_name, number)
    official_types = {v.name: v.number for v in tf_types.DataType.DESCRIPTOR.values}
    for value in types_pb2.DataType.DESCRIPTOR.values:
        assert official_types[value.name] == value.number


def test_tf_serving_decodes_our_predict_request():
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2 as tfs_predict

    request = predict_pb2.PredictRequest(output_filter=["y"])
    request.model_spec.name = "half_plus_two"
    request.model_spec.version.value = 123
    request.model_spec.signature_name = "serving_default"
    x = np.array([[1.0], [2.0], [5.0]], dtype=np.float32)
    tensors.to_tensor_proto(x, out=request.inputs["x"])
    tensors.to_tensor_proto(np.array([3, 4], np.int64), tensor_content=False, out=request.inputs["n"])
    tensors.to_tensor_proto(np.array([b"a", b"b"], object), out=request.inputs["s"])
    official = tfs_predict.PredictRequest.FromString(request.SerializeToString())
    assert official.model_spec.name == "half_plus_two"
    assert official.model_spec.version.value == 123
    assert list(official.output_filter) == ["y"]
    np.testing.assert_array_equal(tf.make_ndarray(official.inputs["x"]), x)
    np.testing.assert_array_equal(tf.make_ndarray(official.inputs["n"]), [3, 4])
    assert tf.make_ndarray(official.inputs["s"]).tolist() == [b"a", b"b"]


def test_we_decode_tensorflow_tensors():
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2 as tfs_predict

    response = tfs_predict.PredictResponse()
    response.model_spec.name = "m"
    values = {"f": np.arange(6, dtype=np.float32).reshape(3, 2),
              "h": np.array([0.5, 1.5], np.float16), "b": np.array([True, False]),
              "i": np.array([[1, 2]], np.int32), "s": np.array([b"x", b"yz"], object)}
    for name, arr in values.items():
        response.outputs[name].CopyFrom(tf.make_tensor_proto(arr))
    # typed fields, as the real server writes them
    response.outputs["typed"].CopyFrom(tf.make_tensor_proto([1.5, 2.5], dtype=tf.float32))
    response.outputs["typed"].ClearField("tensor_content")
    response.outputs["typed"].float_val.extend([1.5, 2.5])
    ours = predict_pb2.PredictResponse.FromString(response.SerializeToString())
    for name, arr in values.items():
        back = tensors.to_ndarray(ours.outputs[name])
        assert back.dtype == arr.dtype
        np.testing.assert_array_equal(back, arr)
    np.testing.assert_array_equal(tensors.to_ndarray(ours.outputs["typed"]), [1.5, 2.5])
