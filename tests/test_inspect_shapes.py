"""`inspect` derives layer output shapes from the config alone (no TensorFlow), checked against
the shapes the real Keras 3 and tf-keras models report, and says `unknown` where it cannot."""

from __future__ import annotations

import json

import pytest

from tests.cli_helpers import run


def _zoo(keras):
    """One functional model with the layers inspect sizes, its last layer a Dense."""
    L = keras.layers
    image = keras.Input((12, 12, 3), name="image")
    x = L.Conv2D(4, 3, strides=2, padding="same", name="conv_same")(image)
    x = L.MaxPooling2D(name="pool")(x)
    x = L.Conv2D(5, 2, dilation_rate=2, name="conv_dilated")(x)
    x = L.Activation("relu", name="relu")(L.BatchNormalization(name="bn")(x))
    pooled = L.GlobalAveragePooling2D(name="gap")(x)
    flat = L.Dense(6, name="dense6")(L.Flatten(name="flat")(x))
    reshaped = L.Flatten(name="flat2")(L.Reshape((2, -1), name="reshape")(flat))
    sequence = keras.Input((7, 3), name="sequence")
    recurrent = L.GRU(2, name="gru")(L.LSTM(4, return_sequences=True, name="lstm")(sequence))
    tokens = keras.Input((5,), dtype="int32", name="tokens")
    embedded = L.GlobalMaxPooling1D(name="gmp")(L.Embedding(10, 3, name="embed")(tokens))
    merged = L.Concatenate(name="merge")([pooled, reshaped, recurrent, embedded])
    out = L.Softmax(name="softmax")(L.Dense(3, name="logits")(L.Dropout(0.1, name="drop")(merged)))
    return keras.Model([image, sequence, tokens], L.Dense(2, name="last")(out))


def _expected(model, keras_version: int) -> dict:
    if keras_version == 3:
        return {layer.name: list(layer.output.shape) for layer in model.layers}
    shapes = {layer.name: layer.output_shape for layer in model.layers}
    return {name: list(s[0] if isinstance(s, list) else s) for name, s in shapes.items()}


@pytest.mark.parametrize("version, name", [(3, "zoo.keras"), (2, "zoo.h5")])
def test_every_layer_shape_matches_keras(version, name, keras3, tf_keras, tmp_path):
    keras = keras3 if version == 3 else tf_keras
    model = _zoo(keras)
    model.save(tmp_path / name)
    info = json.loads(run("inspect", tmp_path / name, "--json").stdout)
    shapes = {row["name"]: row["output_shape"] for row in info["layers"]}
    assert shapes == _expected(model, version)
    assert shapes["last"] == [None, 2]  # the layer no consumer records


def test_sequential_last_layer_is_sized(k3_files):
    info = json.loads(run("inspect", k3_files["sequential"], "--json").stdout)
    assert info["layers"][-1]["output_shape"] == [None, 3]


def test_a_shape_it_cannot_derive_is_called_unknown(keras3, tmp_path):
    L = keras3.layers
    x = keras3.Input((4, 3), name="x")
    keras3.Model(x, L.Permute((2, 1), name="swap")(L.Dense(5, name="d")(x))).save(tmp_path / "p.keras")
    info = json.loads(run("inspect", tmp_path / "p.keras", "--json").stdout)
    assert [row["output_shape"] for row in info["layers"]] == [[None, 4, 3], [None, 4, 5], None]
    table = run("inspect", tmp_path / "p.keras").output
    assert "?" not in table
    swap = next(line for line in table.splitlines() if line.startswith("swap"))
    assert "unknown" in swap and "without TensorFlow" in table
