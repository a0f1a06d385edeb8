"""Shared fixtures: tiny deterministic models built once per session, with Keras 3 and tf-keras.

Models are small (a few hundred weights) and seeded, so every test is fast and repeatable.
The real-world files other projects wrote are read from ../shared/fixtures, never copied here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

# TensorFlow's environment (log level, oneDNN for channels_first kernels) before anything imports it.
import exporter.runtime  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
SHARED_FIXTURES = REPO.parent / "shared" / "fixtures"


def shared_fixture(*parts: str) -> Path:
    """A file under ../shared/fixtures; a missing one fails the test (never a silent skip)."""
    path = SHARED_FIXTURES.joinpath(*parts)
    if not path.exists():
        pytest.fail(f"shared fixture missing: {path}; the real-model fixtures are expected in "
                    f"{SHARED_FIXTURES} (the repository's sibling folder shared/fixtures, "
                    "see its README.md)", pytrace=False)
    return path


@pytest.fixture(scope="session")
def keras3():
    from exporter.runtime import keras_module

    keras = keras_module()
    keras.utils.set_random_seed(7)
    return keras


@pytest.fixture(scope="session")
def tf_keras():
    from exporter.runtime import tf_keras_module

    tf_keras = tf_keras_module()
    tf_keras.utils.set_random_seed(7)
    return tf_keras


def _randomize(model, seed: int = 3):
    """Give every weight a random value, so zero-initialized biases and BN statistics count."""
    import numpy as np

    rng = np.random.default_rng(seed)
    model.set_weights([
        (np.abs(rng.standard_normal(w.shape)) + 0.5 if "variance" in getattr(v, "name", "")
         else rng.standard_normal(w.shape) * 0.5).astype(w.dtype)
        for w, v in zip(model.get_weights(), model.weights)
    ])
    return model


def keras3_models(keras) -> dict:
    L = keras.layers
    models = {}
    models["sequential"] = keras.Sequential(
        [keras.Input((6,), name="features"), L.Dense(8, activation="relu", name="hidden"),
         L.Dense(3, activation="softmax", name="probs")], name="seq")
    a, b = keras.Input((4,), name="left"), keras.Input((5,), name="right")
    merged = L.Concatenate(name="merge")([L.Dense(3, name="left_dense")(a), b])
    models["two_in_two_out"] = keras.Model(
        [a, b], [L.Dense(2, name="score")(merged), L.Dense(1, activation="sigmoid", name="flag")(merged)])
    inner = keras.Sequential([keras.Input((4,)), L.Dense(5, activation="tanh", name="enc_dense")], name="encoder")
    x = keras.Input((4,), name="x")
    models["nested"] = keras.Model(x, L.Dense(2, name="head")(inner(x)), name="nested")
    seq = keras.Input((7, 3), name="sequence")
    models["rnn"] = keras.Model(seq, L.Dense(2, name="rnn_out")(L.GRU(4, name="gru")(L.LSTM(5, return_sequences=True, name="lstm")(seq))))
    img = keras.Input((8, 8, 3), name="image")
    y = L.BatchNormalization(name="bn")(L.Conv2D(4, 3, name="conv")(img))
    models["batchnorm"] = keras.Model(img, L.Dense(2, name="logits")(L.GlobalAveragePooling2D(name="gap")(y)))
    tokens = keras.Input((6,), dtype="int32", name="tokens")
    emb = L.Embedding(12, 4, name="embed")(tokens)
    models["embedding"] = keras.Model(tokens, L.Dense(2, name="cls")(L.GlobalAveragePooling1D(name="pool")(emb)))
    return {name: _randomize(model) for name, model in models.items()}


def keras2_models(tf_keras) -> dict:
    L = tf_keras.layers
    models = {}
    models["sequential"] = tf_keras.Sequential(
        [L.InputLayer((6,), name="features"), L.Dense(8, activation="relu", name="hidden"),
         L.Dense(3, activation="softmax", name="probs")])
    a, b = L.Input((4,), name="left"), L.Input((5,), name="right")
    merged = L.Concatenate(name="merge")([L.Dense(3, name="left_dense")(a), b])
    models["two_in_two_out"] = tf_keras.Model([a, b], [L.Dense(2, name="score")(merged), L.Dense(1, name="flag")(merged)])
    inner = tf_keras.Sequential([L.InputLayer((4,)), L.Dense(5, activation="tanh", name="enc_dense")], name="encoder")
    x = L.Input((4,), name="x")
    models["nested"] = tf_keras.Model(x, L.Dense(2, name="head")(inner(x)))
    seq = L.Input((7, 3), name="sequence")
    models["gru"] = tf_keras.Model(seq, L.GRU(4, name="gru")(seq))
    models["gru_v1"] = tf_keras.Model(seq, L.GRU(4, reset_after=False, name="gru_v1")(seq))
    models["bilstm"] = tf_keras.Model(seq, L.Bidirectional(L.LSTM(4), name="bilstm")(seq))
    img = L.Input((8, 8, 3), name="image")
    z = L.DepthwiseConv2D(3, name="depthwise")(L.SeparableConv2D(4, 3, name="separable")(img))
    models["separable"] = tf_keras.Model(img, L.BatchNormalization(name="bn")(z))
    tokens = L.Input((6,), dtype="int32", name="tokens")
    emb = L.LayerNormalization(name="ln")(L.Embedding(12, 8, name="embed")(tokens))
    att = L.MultiHeadAttention(2, 4, name="mha")(emb, emb)
    models["attention"] = tf_keras.Model(tokens, L.GlobalAveragePooling1D(name="pool")(att))
    return {name: _randomize(model) for name, model in models.items()}


@pytest.fixture(scope="session")
def k3_files(keras3, tmp_path_factory) -> dict:
    """Each Keras 3 model saved as .keras: {name: path}."""
    root = tmp_path_factory.mktemp("keras3")
    paths = {}
    for name, model in keras3_models(keras3).items():
        paths[name] = root / f"{name}.keras"
        model.save(paths[name])
    return paths


@pytest.fixture(scope="session")
def k2_files(tf_keras, tmp_path_factory) -> dict:
    """Each tf-keras model as h5, SavedModel, and JSON + Keras 2 weights: {name: {kind: path}}."""
    root = tmp_path_factory.mktemp("keras2")
    paths = {}
    for name, model in keras2_models(tf_keras).items():
        entry = {"h5": root / f"{name}.h5", "savedmodel": root / f"{name}_savedmodel",
                 "json": root / f"{name}.json", "weights": root / f"{name}_w.h5"}
        model.save(entry["h5"])
        model.save(entry["savedmodel"])
        entry["json"].write_text(model.to_json())
        model.save_weights(entry["weights"])
        paths[name] = entry
    return paths
