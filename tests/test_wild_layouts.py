"""The failure classes real files showed, each on a file of that exact layout from its old writer.

tf-keras writes most of them itself; the Keras 2.0.4 layout comes from tests/old_writers.py.
Each converted file is read back the way a user would and compared with what the old model
computed (tf-keras's predict, or numpy for the Keras 2.0 layers).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from exporter.convert import convert
from exporter.custom_objects import load_custom_objects
from exporter.formats.savedmodel import load_signature
from tests import old_writers
from tests.cli_helpers import one_error_line, run

RNG = np.random.default_rng(5)


def _keras3_predict(keras3, path, feed):
    model = keras3.models.load_model(path, compile=False)
    return np.asarray(model(feed, training=False))


def _check_keras(keras3, model, tmp_path, feed, name="model"):
    """Save `model` (tf-keras) as h5, convert it to .keras, compare with tf-keras's outputs."""
    model.save(tmp_path / f"{name}.h5")
    result = convert(tmp_path / f"{name}.h5", tmp_path / f"{name}.keras")
    assert result.report.passed and result.route == "keras3"
    expected = model.predict(feed, verbose=0)
    np.testing.assert_allclose(_keras3_predict(keras3, tmp_path / f"{name}.keras", feed), expected,
                               rtol=1e-5, atol=1e-6)
    return result


@pytest.mark.slow
def test_hard_sigmoid_in_convlstm2d_and_bidirectional_lstm(tf_keras, keras3, tmp_path):
    L = tf_keras.layers
    video = L.Input((3, 5, 5, 2), name="video")
    convlstm = tf_keras.Model(video, L.ConvLSTM2D(
        3, 3, recurrent_activation="hard_sigmoid", name="convlstm")(video))
    seq = L.Input((6, 3), name="seq")
    bilstm = tf_keras.Model(seq, L.Bidirectional(L.LSTM(
        4, recurrent_activation="hard_sigmoid"), name="bi")(seq))
    for name, model, feed in (
        ("convlstm", convlstm, RNG.standard_normal((2, 3, 5, 5, 2)).astype(np.float32)),
        ("bilstm", bilstm, RNG.standard_normal((2, 6, 3)).astype(np.float32)),
    ):
        result = _check_keras(keras3, model, tmp_path, feed, name)
        assert result.load_requires == [
            "import exporter first (it registers kexport>keras2_hard_sigmoid)"]


def test_where_a_written_file_loads_is_reported(tf_keras, tmp_path):
    L = tf_keras.layers
    seq = L.Input((4, 3), name="seq")
    tf_keras.Model(seq, L.LSTM(2, recurrent_activation="hard_sigmoid", name="lstm")(seq)).save(
        tmp_path / "hs.h5")
    as_keras = run("convert", tmp_path / "hs.h5", tmp_path / "hs.keras", "--json")
    assert as_keras.exit_code == 0, as_keras.output
    assert "kexport>keras2_hard_sigmoid" in json.loads(as_keras.stdout)["load_requires"][0]
    as_text = run("convert", tmp_path / "hs.h5", tmp_path / "hs.keras", "--force")
    assert "to load it: import exporter first" in as_text.output
    as_savedmodel = run("convert", tmp_path / "hs.h5", tmp_path / "hs_sm", "--json")
    assert json.loads(as_savedmodel.stdout)["load_requires"] == []


def test_attention_layer_score_mode(tf_keras, keras3, tmp_path):
    L = tf_keras.layers
    query, value = L.Input((5, 4), name="query"), L.Input((7, 4), name="value")
    model = tf_keras.Model([query, value], L.Attention(use_scale=True, name="att")([query, value]))
    feed = [RNG.standard_normal((2, 5, 4)).astype(np.float32),
            RNG.standard_normal((2, 7, 4)).astype(np.float32)]
    _check_keras(keras3, model, tmp_path, feed)


def test_keras204_embedding_gru(keras3, tmp_path):
    tokens, golden = old_writers.write_keras204_embedding_gru(tmp_path / "k204.h5")
    result = convert(tmp_path / "k204.h5", tmp_path / "k204.keras")
    assert result.report.passed
    assert any(note.startswith("keras20-embedding-dtype") for note in result.notes)
    assert any(note.startswith("keras20-gru") for note in result.notes)
    assert result.report.inputs == {"embedding_1_input": [2, 6]}  # token ids: an int32 input
    np.testing.assert_allclose(_keras3_predict(keras3, tmp_path / "k204.keras", tokens), golden,
                               rtol=1e-4, atol=1e-6)


def test_siamese_shared_submodel_from_h5_and_savedmodel(tf_keras, keras3, tmp_path):
    L = tf_keras.layers
    inner_input = L.Input((6,), name="inner_in")
    encoder = tf_keras.Model(inner_input, L.Dense(4, activation="tanh", name="emb")(inner_input),
                             name="encoder")
    left, right = L.Input((6,), name="left"), L.Input((6,), name="right")
    model = tf_keras.Model([left, right], L.Subtract(name="diff")([encoder(left), encoder(right)]))
    feed = [RNG.standard_normal((2, 6)).astype(np.float32) for _ in range(2)]
    _check_keras(keras3, model, tmp_path, feed, "siamese")
    model.save(tmp_path / "siamese_sm")
    assert convert(tmp_path / "siamese_sm", tmp_path / "from_sm.keras").report.passed
    np.testing.assert_allclose(_keras3_predict(keras3, tmp_path / "from_sm.keras", feed),
                               model.predict(feed, verbose=0), rtol=1e-5, atol=1e-6)


def _raw_op_model(tf_keras, op: str, constants: dict, extra_inputs=()):
    """A tf.keras 2.0-2.3 style model: Dense -> TensorFlowOpLayer(op) on its output."""
    from tf_keras.src.engine.base_layer import TensorFlowOpLayer

    from exporter.runtime import tf_module

    tf = tf_module()
    node_def = tf.compat.v1.NodeDef(name=op, op=op,
                                    input=["dense/BiasAdd", *(f"{op}/c{i}" for i in constants)])
    node_def.attr["T"].type = tf.float32.as_datatype_enum
    if op == "Reshape":
        node_def.attr["Tshape"].type = tf.int32.as_datatype_enum
    features = tf_keras.layers.Input((4,), name="features")
    dense = tf_keras.layers.Dense(4, name="dense")(features)
    layer = TensorFlowOpLayer(node_def.SerializeToString(), constants=constants, name=op)
    return tf_keras.Model(features, layer([dense]))


def test_tensorflow_op_layer_reshape_becomes_reshape(tf_keras, keras3, tmp_path):
    model = _raw_op_model(tf_keras, "Reshape", {1: np.array([-1, 2, 2], np.int32)})
    result = _check_keras(keras3, model, tmp_path, RNG.standard_normal((3, 4)).astype(np.float32))
    assert "tf-op-layer: tf_op_layer_Reshape: TensorFlowOpLayer Reshape -> Reshape" in result.notes


def test_raw_op_without_keras_layer_refused_by_name_but_served_via_tf_keras(tf_keras, tmp_path):
    model = _raw_op_model(tf_keras, "Square", {})
    model.save(tmp_path / "square.h5")
    refused = run("convert", tmp_path / "square.h5", tmp_path / "square.keras")
    assert refused.exit_code == 2 and "raw TensorFlow op Square" in one_error_line(refused)
    assert not (tmp_path / "square.keras").exists()
    result = run("convert", tmp_path / "square.h5", tmp_path / "square_sm", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["route"] == "tf-keras" and "Square" in data["route_reason"]
    assert data["verified"] and data["load_requires"] == []
    check = json.loads(run("inspect", tmp_path / "square.h5", "--check", "--json").stdout)
    assert check["loadable"] and not check["convertible"] and check["route"] == "tf-keras"
    served = load_signature(tmp_path / "square_sm")
    assert [s.name for s in served.inputs] == ["features"]
    assert [s.name for s in served.outputs] == ["tf_op_layer_Square"]
    feed = RNG.standard_normal((2, 4)).astype(np.float32)
    np.testing.assert_allclose(served.reference({"features": feed})["tf_op_layer_Square"],
                               model.predict(feed, verbose=0), rtol=1e-5, atol=1e-6)


CUSTOM_LAYER = '''
import tf_keras


class Twice(tf_keras.layers.Layer):
    def call(self, inputs):
        return inputs * 2.0
'''


def test_custom_keras2_layer_is_served_via_tf_keras(tf_keras, tmp_path):
    (tmp_path / "twice.py").write_text(CUSTOM_LAYER)
    twice = load_custom_objects(str(tmp_path / "twice.py"))["Twice"]
    x = tf_keras.layers.Input((3,), name="x")
    model = tf_keras.Model(x, twice(name="twice")(tf_keras.layers.Dense(2, name="d")(x)))
    model.save(tmp_path / "custom.h5")
    keras_run = run("convert", tmp_path / "custom.h5", tmp_path / "custom.keras",
                    "--custom-objects", tmp_path / "twice.py")
    assert keras_run.exit_code == 2
    sm_run = run("convert", tmp_path / "custom.h5", tmp_path / "custom_sm", "--json",
                 "--custom-objects", tmp_path / "twice.py")
    assert sm_run.exit_code == 0, sm_run.output
    data = json.loads(sm_run.stdout)
    assert data["route"] == "tf-keras" and data["verified"]


def test_tf_keras_only_model_is_bundled(tf_keras, tmp_path):
    _raw_op_model(tf_keras, "Square", {}).save(tmp_path / "square.h5")
    result = run("bundle", tmp_path / "bundle", "--model", f"square={tmp_path / 'square.h5'}")
    assert result.exit_code == 0, result.output
    version = tmp_path / "bundle" / "models" / "square" / "1"
    assert [s.name for s in load_signature(version).outputs] == ["tf_op_layer_Square"]


def test_lambda_in_a_savedmodel_object_graph_is_refused(tmp_path):
    """TF 2.0-2.4 SavedModels keep the Keras config in saved_model.pb, where tf-keras revives
    it from: the safety scan reads it there when keras_metadata.pb is absent."""
    from exporter.errors import UnsafeArtifactError
    from exporter.formats.detection import detect
    from exporter.safety import check_safe

    folder = tmp_path / "tf21_savedmodel"
    folder.mkdir()
    (folder / "saved_model.pb").write_bytes(
        b'\x08\x01 ... {"class_name": "Lambda", "config": {"name": "double", "function": []}}')
    with pytest.raises(UnsafeArtifactError, match="double"):
        check_safe(detect(folder), unsafe=False)


def test_unsafe_lambda_model_says_how_to_load_it(tf_keras, tmp_path):
    x = tf_keras.layers.Input((3,), name="x")
    tf_keras.Model(x, tf_keras.layers.Lambda(lambda t: t * 2.0, name="double")(x)).save(
        tmp_path / "lambda.h5")
    as_keras = run("convert", tmp_path / "lambda.h5", tmp_path / "lambda.keras", "--unsafe", "--json")
    assert as_keras.exit_code == 0, as_keras.output
    assert any("safe_mode=False" in need and "double" in need
               for need in json.loads(as_keras.stdout)["load_requires"])
    as_savedmodel = run("convert", tmp_path / "lambda.h5", tmp_path / "lambda_sm", "--unsafe", "--json")
    assert as_savedmodel.exit_code == 0 and json.loads(as_savedmodel.stdout)["load_requires"] == []
