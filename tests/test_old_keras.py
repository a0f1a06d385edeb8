"""Models from the wild: files in the layouts Keras 1, Keras 2.0-2.2, cuDNN layers and the Theano
backend wrote, converted and checked against what the old model computed (golden outputs)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from exporter.convert import convert
from exporter.model_io import load_model
from exporter.model_types import LoadOptions
from tests import old_writers
from tests.cli_helpers import one_error_line, run


def _keras3_outputs(path, x):
    from exporter.runtime import keras_module

    model = keras_module().models.load_model(path, compile=False)
    return np.asarray(model(x, training=False))


@pytest.mark.parametrize("writer", ["write_keras1_mlp", "write_keras1_lstm", "write_cudnn_lstm"])
def test_old_layouts_convert_and_match_golden_outputs(tmp_path, writer):
    source = tmp_path / f"{writer}.h5"
    x, golden = getattr(old_writers, writer)(source)
    result = convert(source, tmp_path / "out.keras")
    assert result.report.passed and result.notes
    np.testing.assert_allclose(_keras3_outputs(tmp_path / "out.keras", x), golden,
                               rtol=1e-4, atol=1e-5)


def test_keras1_repairs_are_reported(tmp_path):
    old_writers.write_keras1_lstm(tmp_path / "lstm.h5")
    notes = load_model(tmp_path / "lstm.h5").notes
    assert "keras1-argument: lstm_1: output_dim -> units" in notes
    assert "keras1-argument: lstm_1: inner_activation -> recurrent_activation" in notes
    assert any(note.startswith("keras2-hard-sigmoid: lstm_1") for note in notes)


def test_cudnn_layer_becomes_lstm(tmp_path):
    old_writers.write_cudnn_lstm(tmp_path / "cudnn.h5")
    loaded = load_model(tmp_path / "cudnn.h5")
    assert type(loaded.model.get_layer("cu_dnnlstm_1")).__name__ == "LSTM"
    assert "cudnn-layer: cu_dnnlstm_1: CuDNNLSTM -> LSTM" in loaded.notes


def test_theano_kernels_are_flipped(tmp_path, tf_keras):
    x, golden = old_writers.write_theano_conv(tmp_path / "theano.h5", tf_keras)
    result = convert(tmp_path / "theano.h5", tmp_path / "out.keras")
    assert "theano-kernel-flip: conv: spatial axes flipped" in result.notes
    np.testing.assert_allclose(_keras3_outputs(tmp_path / "out.keras", x), golden,
                               rtol=1e-4, atol=1e-5)


def test_keras2_hard_sigmoid_keeps_its_slope(tf_keras, tmp_path):
    L = tf_keras.layers
    x = L.Input((5, 3), name="seq")
    model = tf_keras.Model(x, L.LSTM(4, recurrent_activation="hard_sigmoid", name="lstm")(x))
    model.save(tmp_path / "hs.h5")
    result = convert(tmp_path / "hs.h5", tmp_path / "hs.keras")
    assert result.report.passed
    feed = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)
    np.testing.assert_allclose(_keras3_outputs(tmp_path / "hs.keras", feed),
                               model.predict(feed, verbose=0), rtol=1e-5, atol=1e-6)


def test_training_state_is_reported(tf_keras, tmp_path):
    L = tf_keras.layers
    model = tf_keras.Sequential([L.InputLayer((4,)), L.Dense(2, name="d")])
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.ones((4, 4)), np.ones((4, 2)), verbose=0, epochs=1)
    model.save(tmp_path / "trained.h5")
    result = run("convert", tmp_path / "trained.h5", tmp_path / "out.keras", "--json")
    assert result.exit_code == 0, result.output
    notes = json.loads(result.stdout)["notes"]
    assert any(note.startswith("training-state") for note in notes)


def test_nested_weights_only_file_against_architectures(tf_keras, keras3, tmp_path):
    """Keras 2 `save_weights('x.h5')` of a model with a nested sub-model (a group per model)."""
    L = tf_keras.layers
    inner = tf_keras.Sequential([L.InputLayer((4,)), L.Dense(3, name="inner_dense")], name="inner")
    x = L.Input((4,), name="x")
    model = tf_keras.Model(x, L.Dense(2, name="head")(inner(x)))
    model.save_weights(tmp_path / "nested_w.h5")
    (tmp_path / "arch.json").write_text(model.to_json())
    result = convert(tmp_path / "nested_w.h5", tmp_path / "out.keras",
                     options=LoadOptions(architecture=tmp_path / "arch.json"))
    assert result.report.passed
    feed = np.random.default_rng(1).standard_normal((2, 4)).astype(np.float32)
    np.testing.assert_allclose(_keras3_outputs(tmp_path / "out.keras", feed),
                               model.predict(feed, verbose=0), rtol=1e-5, atol=1e-6)


def test_lambda_bytecode_from_another_python_is_named(tmp_path):
    from tests.conftest import shared_fixture

    fixture = shared_fixture("keras-real", "nnom_mnist_densenet", "keras_mnist_model.h5")
    result = run("convert", fixture, tmp_path / "out.keras", "--unsafe")
    assert result.exit_code == 2
    line = one_error_line(result)
    assert "Python" in line and "lambda_1" in line


def test_every_missing_custom_class_is_named_with_its_module(keras3, tmp_path):
    model = keras3.Sequential([keras3.Input((3,)), keras3.layers.Dense(2, name="d")])
    config = json.loads(model.to_json())
    layers = config["config"]["layers"]
    layers.insert(1, {"module": "acme.layers", "class_name": "Gizmo", "config": {"name": "g"},
                      "registered_name": "acme>Gizmo"})
    layers.insert(2, {"module": "acme.layers", "class_name": "Widget", "config": {"name": "w"},
                      "registered_name": "acme>Widget"})
    (tmp_path / "custom.json").write_text(json.dumps(config))
    result = run("convert", tmp_path / "custom.json", tmp_path / "a.json", "--config-only")
    assert result.exit_code == 2
    line = one_error_line(result)
    assert "Gizmo (module acme.layers)" in line and "Widget (module acme.layers)" in line
    assert "--custom-objects" in line


@pytest.mark.parametrize("writer", ["write_keras1_mlp", "write_cudnn_lstm"])
def test_inspect_check_says_loadable(tmp_path, writer):
    getattr(old_writers, writer)(tmp_path / "m.h5")
    info = json.loads(run("inspect", tmp_path / "m.h5", "--check", "--json").stdout)
    assert info["loadable"] is True and info["repairs"]


def test_inspect_check_says_why_not(tmp_path):
    from tests.conftest import shared_fixture

    fixture = shared_fixture("keras-real", "nnom_mnist_densenet", "keras_mnist_model.h5")
    info = json.loads(run("inspect", fixture, "--check", "--json").stdout)
    assert info["loadable"] is False and "Lambda" in info["reason"]


@pytest.mark.parametrize("model", ["sequential", "two_in_two_out", "nested", "rnn", "batchnorm",
                                   "embedding"])
def test_keras_compat_2_writes_what_tf_keras_loads(k3_files, tf_keras, tmp_path, model):
    result = convert(k3_files[model], tmp_path / "k2.h5", keras_compat=2)
    assert result.report.passed  # re-read by tf-keras itself and compared with the source
    reloaded = tf_keras.models.load_model(tmp_path / "k2.h5", compile=False)
    assert reloaded.count_params() > 0


def test_keras_compat_2_refuses_what_keras_2_cannot_compute(keras3, tmp_path):
    x = keras3.Input((4,), name="x")
    model = keras3.Model(x, keras3.layers.LayerNormalization(rms_scaling=True, name="ln")(x))
    model.save(tmp_path / "rms.keras")
    result = run("convert", tmp_path / "rms.keras", tmp_path / "k2.h5", "--keras-compat", 2)
    assert result.exit_code == 2
    assert "rms_scaling=True" in one_error_line(result)
    assert not (tmp_path / "k2.h5").exists()
    wrong_format = run("convert", tmp_path / "rms.keras", tmp_path / "k2.keras", "--keras-compat", 2)
    assert wrong_format.exit_code == 2 and "--to h5" in one_error_line(wrong_format)


def test_tf_op_layers_become_keras_layers(tf_keras, tmp_path):
    """tf.keras recorded `x * 2.0`, `tf.nn.relu(...)` etc. as TFOpLambda layers."""
    from exporter.runtime import tf_module

    tf = tf_module()
    L = tf_keras.layers
    x, y = L.Input((4,), name="x"), L.Input((4,), name="y")
    hidden = tf.nn.relu(x * 2.0 + y - 1.0)
    grid = tf.reshape(hidden / 4.0, (-1, 2, 2))
    out = tf.nn.softmax(tf.concat([grid, grid], axis=-1), axis=-1)
    tf_keras.Model([x, y], out).save(tmp_path / "ops.h5")
    result = convert(tmp_path / "ops.h5", tmp_path / "ops.keras")
    assert result.report.passed
    rewritten = {note.split(" -> ")[-1] for note in result.notes if note.startswith("tf-op-layer")}
    assert rewritten == {"Rescaling", "Add", "Activation", "Reshape", "Concatenate", "Softmax"}


def test_tf_op_without_a_keras_layer_is_refused_by_name(tf_keras, tmp_path):
    from exporter.runtime import tf_module

    tf = tf_module()
    x = tf_keras.layers.Input((4, 3), name="x")
    tf_keras.Model(x, tf.math.reduce_mean(x, axis=1)).save(tmp_path / "mean.h5")
    result = run("convert", tmp_path / "mean.h5", tmp_path / "mean.keras")
    assert result.exit_code == 2
    assert "tf.math.reduce_mean" in one_error_line(result)


def test_keras1_theano_channels_first_convolution(keras3, tmp_path):
    x, golden = old_writers.write_keras1_theano_conv(tmp_path / "th.h5", keras3)
    result = convert(tmp_path / "th.h5", tmp_path / "th.keras")
    assert "theano-kernel-flip: convolution2d_1: spatial axes flipped" in result.notes
    assert any("dim_ordering='th' -> data_format" in note for note in result.notes)
    np.testing.assert_allclose(_keras3_outputs(tmp_path / "th.keras", x), golden,
                               rtol=1e-4, atol=1e-5)


def _keras3_channels_first_bias_is_wrong(keras) -> bool:
    layer = keras.layers.Conv2D(4, 3, data_format="channels_first")
    layer.build((None, 1, 6, 6))
    layer.set_weights([np.zeros((3, 3, 1, 4), np.float32), np.arange(4, dtype=np.float32)])
    out = np.asarray(layer(np.zeros((1, 1, 6, 6), np.float32)))
    return not np.allclose(out[0, :, 0, 0], np.arange(4))


def test_verification_catches_keras3_channels_first_bias_bug(keras3, tmp_path):
    """Keras 3.15 on TensorFlow adds a channels_first Conv2D's bias wrongly when the number of
    filters equals the output width (4 filters, 4x4 output here). tf-keras computes it right, so
    while Keras has the bug the translated model must fail verification, not be published."""
    from exporter.errors import VerificationError

    x, golden = old_writers.write_keras1_theano_conv(tmp_path / "th4.h5", keras3, filters=4)
    if not _keras3_channels_first_bias_is_wrong(keras3):
        convert(tmp_path / "th4.h5", tmp_path / "th4.keras")
        np.testing.assert_allclose(_keras3_outputs(tmp_path / "th4.keras", x), golden, rtol=1e-4,
                                   atol=1e-5)
        return
    with pytest.raises(VerificationError):
        convert(tmp_path / "th4.h5", tmp_path / "th4.keras")
    assert not (tmp_path / "th4.keras").exists()


def test_nested_keras2_weights_into_a_keras3_architecture(tf_keras, keras3, tmp_path):
    L = tf_keras.layers
    inner = tf_keras.Sequential([L.InputLayer((4,)), L.Dense(3, name="inner_dense")], name="inner")
    x = L.Input((4,), name="x")
    keras2_model = tf_keras.Model(x, L.Dense(2, name="head")(inner(x)))
    keras2_model.save_weights(tmp_path / "nested_w.h5")
    inner3 = keras3.Sequential([keras3.Input((4,)), keras3.layers.Dense(3, name="inner_dense")],
                               name="inner")
    x3 = keras3.Input((4,), name="x")
    (tmp_path / "arch3.json").write_text(
        keras3.Model(x3, keras3.layers.Dense(2, name="head")(inner3(x3))).to_json())
    convert(tmp_path / "nested_w.h5", tmp_path / "out.keras",
            options=LoadOptions(architecture=tmp_path / "arch3.json"))
    feed = np.random.default_rng(2).standard_normal((2, 4)).astype(np.float32)
    np.testing.assert_allclose(_keras3_outputs(tmp_path / "out.keras", feed),
                               keras2_model.predict(feed, verbose=0), rtol=1e-5, atol=1e-6)


def test_files_that_are_not_models_say_what_they_are(k3_files, keras3, tmp_path):
    import h5py

    with h5py.File(tmp_path / "data.h5", "w") as handle:
        handle["inputs"] = np.zeros((4, 3))
        handle["outputs"] = np.zeros((4, 1))
    result = run("convert", tmp_path / "data.h5", tmp_path / "a.keras")
    assert result.exit_code == 2
    assert "neither a Keras model nor Keras weights" in one_error_line(result)
    keras3.models.load_model(k3_files["sequential"]).save_weights(tmp_path / "only.weights.h5")
    result = run("convert", tmp_path / "only.weights.h5", tmp_path / "b.keras")
    assert result.exit_code == 2
    assert "weights only" in one_error_line(result) and "--architecture" in result.output
